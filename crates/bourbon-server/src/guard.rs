//! The request guard: HTTP/1.1 message framing, validated and located in one pass.
//!
//! Every byte read from a client socket passes through a [`Guard`]. It follows the message
//! framing of RFC 9112 over a keep-alive (possibly pipelined) connection and decides how many
//! of the bytes received so far may be handed on to the request:
//!
//! - a request head is held back until the whole head (request line, header fields, empty
//!   line) has arrived and been validated, then released verbatim in one piece;
//! - body bytes are released as they are validated (`Content-Length` bodies as they arrive;
//!   chunked bodies with each framing line held until it is complete and valid);
//! - the first violation yields a [`Reject`] (status + one-line reason) and nothing from the
//!   faulty message past the last valid byte is ever released.
//!
//! While it validates a head it records where the method, the target and each field's name
//! and value are ([`HeadInfo`]), and while it validates a body where the payload is among the
//! framing ([`Guard::scan_data`]): the connection driver (`h1`) builds the request from that,
//! so nothing parses a message twice and two parsers can never disagree about where a message
//! ends (request smuggling). It keeps gunicorn's limits and error answers. The module is pure
//! logic: no I/O, no async; the driver owns the socket, the buffer and what to do with a
//! rejection.

use memchr::{memchr, memrchr};

/// Used instead of `request_line` / `field_size` when they are 0 (gunicorn's "unlimited"):
/// the guard still needs a bound to hold a head in memory.
const UNLIMITED_LINE: usize = 64 * 1024;
/// Empty lines accepted before a request line (RFC 9112 §2.2 "at least one" is a SHOULD).
const MAX_EMPTY_LINES: usize = 8;
/// Longest chunk-size line (size + extensions), excluding CRLF.
const MAX_CHUNK_LINE: usize = 4096;
/// Chunk-extension bytes accepted over one body (16 KiB, as hyper and nginx bound them).
const MAX_CHUNK_EXT_TOTAL: usize = 16 * 1024;
/// 16 hex digits fill a u64; more would overflow (or be absurd leading zeros).
const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// Request size limits, with gunicorn's names and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, excluding CRLF (`limit_request_line`; 0 = a 64 KiB cap).
    pub request_line: usize,
    /// Most header fields in a head, and separately most trailer fields in a chunked body
    /// (`limit_request_fields`).
    pub fields: usize,
    /// Longest single field line, excluding CRLF (`limit_request_field_size`; 0 = a 64 KiB
    /// cap).
    pub field_size: usize,
    /// Largest request body in bytes (declared `Content-Length` or decoded chunked length);
    /// `None` = unlimited.
    pub body: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            request_line: 4094,
            fields: 100,
            field_size: 8190,
            body: None,
        }
    }
}

impl Limits {
    fn line_cap(&self) -> usize {
        if self.request_line == 0 {
            UNLIMITED_LINE
        } else {
            self.request_line
        }
    }

    fn field_cap(&self) -> usize {
        if self.field_size == 0 {
            UNLIMITED_LINE
        } else {
            self.field_size
        }
    }

    /// The largest request head (leading empty lines, request line, fields, CRLFs) the guard
    /// can release; the driver's read buffer must be able to hold it.
    pub fn max_head_len(&self) -> usize {
        (MAX_EMPTY_LINES * 2)
            .saturating_add(self.line_cap())
            .saturating_add(2)
            .saturating_add(
                self.fields
                    .saturating_mul(self.field_cap().saturating_add(2)),
            )
            .saturating_add(2)
    }
}

/// A request the guard refuses: the status and a one-line reason for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    /// HTTP status code (400, 413, 414, 431, 501 or 505).
    pub status: u16,
    /// Short human-readable reason, sent as the response body.
    pub reason: &'static str,
}

impl Reject {
    const fn new(status: u16, reason: &'static str) -> Self {
        Self { status, reason }
    }

    /// Request line longer than the limit.
    pub const LINE_TOO_LONG: Self = Self::new(414, "URI Too Long: request line exceeds the limit");
    /// Request line not `method SP request-target SP HTTP-version` (RFC 9112 §3).
    pub const BAD_REQUEST_LINE: Self = Self::new(400, "Bad Request: invalid request line");
    /// Method not an upper-case token.
    pub const BAD_METHOD: Self = Self::new(400, "Bad Request: invalid method");
    /// Request target malformed or of a form not allowed for the method (RFC 9112 §3.2).
    pub const BAD_TARGET: Self = Self::new(400, "Bad Request: invalid request target");
    /// Version field not `HTTP/DIGIT.DIGIT`.
    pub const BAD_VERSION: Self = Self::new(400, "Bad Request: invalid HTTP version");
    /// CONNECT asks for a tunnel, which an application server does not offer (RFC 9110 §9.3.6
    /// lets an origin server refuse it).
    pub const CONNECT_UNSUPPORTED: Self =
        Self::new(501, "Not Implemented: CONNECT is not supported");
    /// Well-formed version other than HTTP/1.0 and HTTP/1.1.
    pub const UNSUPPORTED_VERSION: Self = Self::new(505, "HTTP Version Not Supported");
    /// Bare LF or bare CR (RFC 9112 §2.2).
    pub const BAD_LINE_ENDING: Self = Self::new(400, "Bad Request: invalid line ending");
    /// More header (or trailer) fields than the limit.
    pub const TOO_MANY_FIELDS: Self = Self::new(
        431,
        "Request Header Fields Too Large: too many header fields",
    );
    /// A field line longer than the limit.
    pub const FIELD_TOO_LONG: Self =
        Self::new(431, "Request Header Fields Too Large: header line too long");
    /// The head as a whole is larger than the limits allow.
    pub const HEAD_TOO_LARGE: Self = Self::new(
        431,
        "Request Header Fields Too Large: header section too large",
    );
    /// Field name empty, not a token, or whitespace before the colon (RFC 9112 §5.1).
    pub const BAD_FIELD_NAME: Self = Self::new(400, "Bad Request: invalid header name");
    /// Control character in a field value (RFC 9110 §5.5).
    pub const BAD_FIELD_VALUE: Self = Self::new(400, "Bad Request: invalid header value");
    /// Field line starting with whitespace (RFC 9112 §5.2).
    pub const OBS_FOLD: Self = Self::new(400, "Bad Request: obsolete line folding");
    /// `Content-Length` not `1*DIGIT` (RFC 9110 §8.6).
    pub const BAD_CONTENT_LENGTH: Self = Self::new(400, "Bad Request: invalid Content-Length");
    /// More than one `Content-Length` field.
    pub const DUP_CONTENT_LENGTH: Self = Self::new(400, "Bad Request: duplicate Content-Length");
    /// Both `Transfer-Encoding` and `Content-Length` (RFC 9112 §6.1).
    pub const TE_WITH_CL: Self = Self::new(
        400,
        "Bad Request: both Transfer-Encoding and Content-Length",
    );
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1).
    pub const TE_HTTP10: Self = Self::new(400, "Bad Request: Transfer-Encoding in HTTP/1.0");
    /// `chunked` not the final coding, or applied twice (RFC 9112 §6.3, §7).
    pub const BAD_TE: Self = Self::new(400, "Bad Request: invalid Transfer-Encoding");
    /// A transfer coding other than `chunked`.
    pub const UNSUPPORTED_TE: Self = Self::new(501, "Not Implemented: unsupported transfer coding");
    /// More than one `Host` field (RFC 9112 §3.2).
    pub const DUP_HOST: Self = Self::new(400, "Bad Request: duplicate Host");
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2: a server MUST answer 400).
    pub const MISSING_HOST: Self = Self::new(400, "Bad Request: missing Host");
    /// A `Host` value that is not `uri-host [":" port]` (RFC 9110 §7.2, RFC 9112 §3.2).
    pub const BAD_HOST: Self = Self::new(400, "Bad Request: invalid Host");
    /// Body larger than the limit.
    pub const BODY_TOO_LARGE: Self = Self::new(413, "Content Too Large: request body too large");
    /// Chunk size not `1*HEXDIG` or too large (RFC 9112 §7.1).
    pub const BAD_CHUNK_SIZE: Self = Self::new(400, "Bad Request: invalid chunk size");
    /// Malformed or oversized chunk extension (RFC 9112 §7.1.1).
    pub const BAD_CHUNK_EXT: Self = Self::new(400, "Bad Request: invalid chunk extension");
    /// Chunk data not followed by CRLF.
    pub const BAD_CHUNK_END: Self = Self::new(400, "Bad Request: missing CRLF after chunk data");
    /// A trailer field that must not be sent as a trailer (RFC 9110 §6.5.1).
    pub const FORBIDDEN_TRAILER: Self =
        Self::new(400, "Bad Request: field not allowed in trailers");
    /// The connection ended inside a request body.
    pub const INCOMPLETE_BODY: Self = Self::new(400, "Bad Request: incomplete request body");

    /// The complete HTTP/1.1 response for this rejection: status line, a plain-text body
    /// naming the problem, and `Connection: close`.
    pub fn response_bytes(&self) -> Vec<u8> {
        let mut status = itoa::Buffer::new();
        let mut length = itoa::Buffer::new();
        let body_len = self.reason.len() + 1;
        let mut out = Vec::with_capacity(128 + body_len);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.format(self.status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(status_phrase(self.status).as_bytes());
        // Every response carries Date (RFC 9110 §6.6.1) and Server, like the app's.
        out.extend_from_slice(b"\r\nDate: ");
        out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\nServer: bourbon");
        out.extend_from_slice(b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
        out.extend_from_slice(length.format(body_len).as_bytes());
        out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        out.extend_from_slice(self.reason.as_bytes());
        out.push(b'\n');
        out
    }
}

fn status_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        500..=599 => "Server Error",
        _ => "Client Error",
    }
}

/// Where the guard is in the message stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Between messages, no byte of the next head received yet.
    Idle,
    /// Part of a request head received (held back).
    Head,
    /// Inside a request body.
    Body,
}

/// HTTP/1.1 request framing validator for one connection; see the module docs.
#[derive(Debug)]
pub struct Guard {
    limits: Limits,
    max_head: usize,
    state: State,
    heads: u64,
    expect_continue: bool,
    /// The first violation; every later `scan` returns it.
    failed: Option<Reject>,
    /// The head released by the last `scan`, until taken.
    last_head: Option<HeadInfo>,
    /// HTTP/1.1 requests without Host are let through (see [`Guard::without_host_rule`]).
    host_optional: bool,
}

#[derive(Debug)]
enum State {
    Idle,
    Head(HeadScan),
    Body {
        body: BodyKind,
        close: bool,
    },
    /// The last message of the connection has been released; nothing more is.
    Closed,
}

/// Progress through a held head. Offsets are from the start of the head (the guard's
/// position, where every `pending` begins while the head is held).
#[derive(Debug, Default)]
struct HeadScan {
    /// Start of the first line not yet validated.
    line_start: usize,
    /// Bytes before this offset contain no LF beyond `line_start` (keeps rescans O(n)).
    searched: usize,
    empty_lines: usize,
    request_line_seen: bool,
    fields: usize,
    facts: Facts,
    /// Where the request line's method and target are, as offsets into the head.
    method: (u32, u32),
    target: (u32, u32),
    /// Where the target's authority (absolute-form, without userinfo) is, if it has one.
    target_authority: Option<(u32, u32)>,
    /// Where the `Host` field's value is.
    host_field: Option<(u32, u32)>,
    /// Each field's name and value (trimmed), as offsets into the head.
    positions: Vec<FieldPos>,
}

/// Where one header field's name and value sit in a request head: `[name_start, name_end,
/// value_start, value_end]`, offsets from the start of the head.
pub type FieldPos = [u32; 4];

/// What the guard learned from a complete, valid request head: the positions of its parts
/// (so nobody parses it again) and what it means for framing and the connection.
#[derive(Clone, Debug, Default)]
pub struct HeadInfo {
    /// Offsets of the method in the head.
    pub method: (u32, u32),
    /// Offsets of the request target in the head.
    pub target: (u32, u32),
    /// Offsets of the host the request is for: the authority of an absolute-form target
    /// (without userinfo), which wins over `Host` (RFC 9112 §3.2.2), else the `Host`
    /// value; `None` only for HTTP/1.0 without either.
    pub host: Option<(u32, u32)>,
    /// The header fields, in order.
    pub fields: Vec<FieldPos>,
    /// HTTP/1.0 (else HTTP/1.1).
    pub http10: bool,
    /// The declared Content-Length, if any.
    pub content_length: Option<u64>,
    /// The body is chunked.
    pub chunked: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The connection ends after this message (`Connection: close`, or HTTP/1.0 without
    /// keep-alive).
    pub close: bool,
    /// The request asked for keep-alive explicitly (`Connection: keep-alive`).
    pub keep_alive: bool,
}

/// What the head says about framing and connection handling.
#[derive(Debug, Default)]
struct Facts {
    http10: bool,
    connect: bool,
    content_length: Option<u64>,
    te_present: bool,
    te_chunked: u32,
    te_last_chunked: bool,
    te_other: bool,
    hosts: u32,
    conn_close: bool,
    conn_keep_alive: bool,
    expect_continue: bool,
}

/// Outcome of a complete, valid head.
struct AfterHead {
    body: Option<BodyKind>,
    close: bool,
    expect_continue: bool,
}

#[derive(Debug)]
enum BodyKind {
    /// Bytes of a `Content-Length` body still to come.
    Length(u64),
    Chunked(Chunked),
}

#[derive(Debug)]
struct Chunked {
    step: ChunkStep,
    decoded: u64,
    ext_total: usize,
    trailers: usize,
}

#[derive(Debug)]
enum ChunkStep {
    /// Holding a chunk-size line; `searched` bytes of it contain no LF.
    Size { searched: usize },
    /// Bytes of chunk data still to come.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Holding a trailer field line (or the final empty line).
    Trailer { searched: usize },
}

impl Guard {
    /// A guard for a new connection.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            max_head: limits.max_head_len(),
            state: State::Idle,
            heads: 0,
            expect_continue: false,
            failed: None,
            last_head: None,
            host_optional: false,
        }
    }

    /// This guard lets HTTP/1.1 requests without `Host` through, as gunicorn does, instead
    /// of answering 400 (RFC 9112 §3.2). The server never does this: it exists so that the
    /// gunicorn request corpus, many of whose cases omit Host while testing something else
    /// (chunked framing, transfer codings), keeps testing that something else.
    pub fn without_host_rule(mut self) -> Self {
        self.host_optional = true;
        self
    }

    /// Validate `pending`: all bytes received and not yet released, starting at the guard's
    /// position. `Ok(n)`: the first `n` bytes are released (0 = more bytes needed).
    ///
    /// One call never releases past the end of a head or the end of a message, so a caller
    /// that drains `n` bytes and calls again sees each head completed by its own call. When
    /// a violation follows valid body bytes in `pending`, the valid prefix is released first
    /// and the next call returns the rejection; after a rejection every call returns it.
    pub fn scan(&mut self, pending: &[u8]) -> Result<usize, Reject> {
        self.scan_data(pending, &mut Vec::new())
    }

    /// [`scan`](Self::scan), also noting where the body's payload is among the released
    /// bytes: `data` gets the `(start, end)` ranges of content bytes (the chunk data of a
    /// chunked body, everything of a `Content-Length` body), so the caller can decode the body
    /// without parsing its framing again.
    pub fn scan_data(
        &mut self,
        pending: &[u8],
        data: &mut Vec<(usize, usize)>,
    ) -> Result<usize, Reject> {
        if let Some(reject) = self.failed {
            return Err(reject);
        }
        let mut released = 0;
        match self.step(pending, &mut released, data) {
            Ok(()) => Ok(released),
            Err(reject) => {
                self.failed = Some(reject);
                if released > 0 {
                    Ok(released)
                } else {
                    Err(reject)
                }
            }
        }
    }

    fn step(
        &mut self,
        pending: &[u8],
        released: &mut usize,
        data: &mut Vec<(usize, usize)>,
    ) -> Result<(), Reject> {
        if pending.is_empty() {
            return Ok(());
        }
        if matches!(self.state, State::Idle) {
            // Typical heads carry 5–15 fields: one allocation up front instead of regrowing.
            self.state = State::Head(HeadScan {
                positions: Vec::with_capacity(16),
                ..HeadScan::default()
            });
        }
        match &mut self.state {
            State::Idle | State::Closed => Ok(()),
            State::Head(scan) => {
                let Some((n, after)) = scan_head(
                    scan,
                    pending,
                    &self.limits,
                    self.max_head,
                    self.host_optional,
                )?
                else {
                    return Ok(());
                };
                *released = n;
                self.heads += 1;
                self.expect_continue = after.expect_continue;
                let facts = &scan.facts;
                self.last_head = Some(HeadInfo {
                    method: scan.method,
                    target: scan.target,
                    host: scan.target_authority.or(scan.host_field),
                    fields: std::mem::take(&mut scan.positions),
                    http10: facts.http10,
                    content_length: facts.content_length,
                    chunked: matches!(after.body, Some(BodyKind::Chunked(_))),
                    expect_continue: after.expect_continue,
                    close: after.close,
                    keep_alive: facts.conn_keep_alive,
                });
                self.state = match after.body {
                    Some(body) => State::Body {
                        body,
                        close: after.close,
                    },
                    None => end_state(after.close),
                };
                Ok(())
            }
            State::Body { body, close } => {
                let close = *close;
                let done = match body {
                    BodyKind::Length(remaining) => {
                        let take = (*remaining).min(pending.len() as u64);
                        *remaining -= take;
                        *released = take as usize;
                        if take > 0 {
                            data.push((0, take as usize));
                        }
                        *remaining == 0
                    }
                    BodyKind::Chunked(chunked) => {
                        chunked.scan(pending, &self.limits, released, data)?
                    }
                };
                if done {
                    self.state = end_state(close);
                }
                Ok(())
            }
        }
    }

    /// Where the guard is between, or inside, messages.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle | State::Closed => Phase::Idle,
            State::Head(_) => Phase::Head,
            State::Body { .. } => Phase::Body,
        }
    }

    /// The head released by the last `scan`, once: its parts' positions and meaning.
    pub fn take_head(&mut self) -> Option<HeadInfo> {
        self.last_head.take()
    }

    /// Number of complete request heads released so far.
    pub fn heads_released(&self) -> u64 {
        self.heads
    }

    /// True when the last released head carried `Expect: 100-continue`.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue
    }

    /// True once a message that ends the connection (`Connection: close`, HTTP/1.0 without
    /// keep-alive, CONNECT) has been released completely. From then on `scan` releases
    /// nothing and judges nothing (`Ok(0)`): later bytes are not requests anyone will read,
    /// so the driver stops reading, as at a message boundary.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The client sent EOF. A partial head is simply dropped (`Ok`); inside a body the
    /// request is truncated (400).
    pub fn at_eof(&self) -> Result<(), Reject> {
        match self.state {
            State::Body { .. } => Err(Reject::INCOMPLETE_BODY),
            _ => Ok(()),
        }
    }
}

fn end_state(close: bool) -> State {
    if close {
        State::Closed
    } else {
        State::Idle
    }
}

/// Advance through a held head. `Ok(Some((len, after)))` once the whole head is valid.
fn scan_head(
    scan: &mut HeadScan,
    buf: &[u8],
    limits: &Limits,
    max_head: usize,
    host_optional: bool,
) -> Result<Option<(usize, AfterHead)>, Reject> {
    loop {
        let Some(off) = memchr(b'\n', &buf[scan.searched..]) else {
            scan.searched = buf.len();
            // Fail as soon as the line is certainly too long (one byte of slack for its CR).
            let partial = buf.len() - scan.line_start;
            if !scan.request_line_seen {
                if partial > limits.line_cap() + 1 {
                    return Err(Reject::LINE_TOO_LONG);
                }
            } else if partial > limits.field_cap() + 1 {
                return Err(Reject::FIELD_TOO_LONG);
            }
            if buf.len() > max_head {
                return Err(Reject::HEAD_TOO_LARGE);
            }
            return Ok(None);
        };
        let lf = scan.searched + off;
        let content = line_content(&buf[scan.line_start..lf])?;
        scan.line_start = lf + 1;
        scan.searched = lf + 1;
        if !scan.request_line_seen {
            if content.is_empty() {
                // RFC 9112 §2.2: empty lines before the request line are ignored.
                scan.empty_lines += 1;
                if scan.empty_lines > MAX_EMPTY_LINES {
                    return Err(Reject::BAD_REQUEST_LINE);
                }
                continue;
            }
            if content.len() > limits.line_cap() {
                return Err(Reject::LINE_TOO_LONG);
            }
            let (method, target, authority) = parse_request_line(content, &mut scan.facts)?;
            scan.method = span(buf, method);
            scan.target = span(buf, target);
            scan.target_authority = authority.map(|a| span(buf, a));
            scan.request_line_seen = true;
        } else if content.is_empty() {
            let after = finish_head(&scan.facts, limits, host_optional)?;
            return Ok(Some((lf + 1, after)));
        } else {
            if content.len() > limits.field_cap() {
                return Err(Reject::FIELD_TOO_LONG);
            }
            scan.fields += 1;
            if scan.fields > limits.fields {
                return Err(Reject::TOO_MANY_FIELDS);
            }
            let (name, value) = split_field(content)?;
            let hosts = scan.facts.hosts;
            note_field(name, value, &mut scan.facts)?;
            let (n, v) = (span(buf, name), span(buf, value));
            if scan.facts.hosts != hosts {
                scan.host_field = Some(v);
            }
            scan.positions.push([n.0, n.1, v.0, v.1]);
        }
        if scan.line_start > max_head {
            return Err(Reject::HEAD_TOO_LARGE);
        }
    }
}

/// Offsets of `part` (a sub-slice of `buf`) within `buf`. Heads are bounded far below 4 GiB
/// by the limits, so the offsets fit in u32.
fn span(buf: &[u8], part: &[u8]) -> (u32, u32) {
    let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
    let start = u32::try_from(start).unwrap_or(u32::MAX);
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    (start, start.saturating_add(len))
}

/// A line up to (not including) its LF, minus the CR that must precede the LF. Bare LF and
/// bare CR are rejected (RFC 9112 §2.2 lets a recipient accept bare LF; gunicorn does not).
fn line_content(line: &[u8]) -> Result<&[u8], Reject> {
    match line.strip_suffix(b"\r") {
        Some(content) if memchr(b'\r', content).is_none() => Ok(content),
        _ => Err(Reject::BAD_LINE_ENDING),
    }
}

/// The parts of a valid request line: method, target, and the target's authority when it
/// is in absolute-form.
type RequestLine<'a> = (&'a [u8], &'a [u8], Option<&'a [u8]>);

/// RFC 9112 §3: `method SP request-target SP HTTP-version`, single spaces.
fn parse_request_line<'a>(line: &'a [u8], facts: &mut Facts) -> Result<RequestLine<'a>, Reject> {
    let sp = memchr(b' ', line).ok_or(Reject::BAD_REQUEST_LINE)?;
    let (method, rest) = (&line[..sp], &line[sp + 1..]);
    if method.is_empty() {
        return Err(Reject::BAD_REQUEST_LINE);
    }
    // RFC 9110 §9.1: method = token. Like gunicorn, lower-case letters are refused too
    // (methods are case-sensitive and all registered ones are upper-case).
    if !method
        .iter()
        .all(|&b| is_tchar(b) && !b.is_ascii_lowercase())
    {
        return Err(Reject::BAD_METHOD);
    }
    let sp = memchr(b' ', rest).ok_or(Reject::BAD_REQUEST_LINE)?;
    let (target, version) = (&rest[..sp], &rest[sp + 1..]);
    if target.is_empty() {
        return Err(Reject::BAD_REQUEST_LINE);
    }
    facts.http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        // RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT (case-sensitive).
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Reject::UNSUPPORTED_VERSION)
        }
        _ => return Err(Reject::BAD_VERSION),
    };
    let authority = check_target(method, target)?;
    facts.connect = method == b"CONNECT";
    if facts.connect {
        return Err(Reject::CONNECT_UNSUPPORTED);
    }
    Ok((method, target, authority))
}

/// RFC 9112 §3.2: origin-form for most requests, absolute-form for any, authority-form only
/// for CONNECT, asterisk-form only for OPTIONS. Returns the host and port of an
/// absolute-form target.
fn check_target<'a>(method: &[u8], target: &'a [u8]) -> Result<Option<&'a [u8]>, Reject> {
    // RFC 3986 §2: a URI is visible ASCII; no controls, spaces or raw non-ASCII bytes.
    if !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(Reject::BAD_TARGET);
    }
    if method == b"CONNECT" {
        return match is_authority_form(target) {
            true => Ok(None),
            false => Err(Reject::BAD_TARGET),
        };
    }
    if target == b"*" {
        return match method == b"OPTIONS" {
            true => Ok(None),
            false => Err(Reject::BAD_TARGET),
        };
    }
    if target[0] == b'/' {
        return Ok(None);
    }
    absolute_form_host(target)
        .map(Some)
        .ok_or(Reject::BAD_TARGET)
}

/// `host ":" port` (RFC 9112 §3.2.3).
fn is_authority_form(target: &[u8]) -> bool {
    let Some(colon) = memrchr(b':', target) else {
        return false;
    };
    let (host, port) = (&target[..colon], &target[colon + 1..]);
    !port.is_empty() && port.iter().all(u8::is_ascii_digit) && is_host(host)
}

/// `scheme "://" authority [path-abempty] ["?" query]` (RFC 9112 §3.2.2, RFC 3986 §3):
/// the host and port of its authority (userinfo dropped, as a client's Host would be).
fn absolute_form_host(target: &[u8]) -> Option<&[u8]> {
    let colon = memchr(b':', target)?;
    let scheme = &target[..colon];
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    let rest = target[colon + 1..].strip_prefix(b"//")?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let auth = &rest[..end];
    let host_port = match memrchr(b'@', auth) {
        Some(at) => {
            let userinfo = &auth[..at];
            if !userinfo.iter().all(|&b| is_reg_name_char(b) || b == b':') {
                return None;
            }
            &auth[at + 1..]
        }
        None => auth,
    };
    (scheme_ok && is_host_port(host_port)).then_some(host_port)
}

/// `host [":" port]` with a non-empty host (RFC 3986 §3.2.2, §3.2.3): the authority of an
/// absolute-form target without its userinfo, and a non-empty `Host` value (RFC 9110 §7.2).
fn is_host_port(host_port: &[u8]) -> bool {
    let (host, port) = if host_port.first() == Some(&b'[') {
        match memchr(b']', host_port) {
            Some(close) => host_port.split_at(close + 1),
            None => return false,
        }
    } else {
        match memchr(b':', host_port) {
            Some(colon) => host_port.split_at(colon),
            None => (host_port, &b""[..]),
        }
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok && is_host(host)
}

/// IP-literal in brackets or a non-empty reg-name / IPv4 address (RFC 3986 §3.2.2).
fn is_host(host: &[u8]) -> bool {
    if let Some(inner) = host.strip_prefix(b"[") {
        return match inner.strip_suffix(b"]") {
            Some(ip) => !ip.is_empty() && ip.iter().all(|&b| is_reg_name_char(b) || b == b':'),
            None => false,
        };
    }
    !host.is_empty() && host.iter().all(|&b| is_reg_name_char(b))
}

/// unreserved / pct-encoded / sub-delims (RFC 3986 §2). A table: every request's Host goes
/// through here, byte by byte.
fn is_reg_name_char(b: u8) -> bool {
    REG_NAME[usize::from(b)]
}

static REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        // `i < 256`, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric();
        i += 1;
    }
    let extra = b"-._~%!$&'()*+,;=";
    let mut j = 0;
    while j < extra.len() {
        t[extra[j] as usize] = true;
        j += 1;
    }
    t
};

/// RFC 9112 §5: `field-name ":" OWS field-value OWS`. Returns the name and the trimmed value.
fn split_field(line: &[u8]) -> Result<(&[u8], &[u8]), Reject> {
    // RFC 9112 §5.2: obs-fold (a line starting with whitespace) is rejected, as is
    // whitespace between the start line and the first field (§2.2).
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(Reject::OBS_FOLD);
    }
    let colon = memchr(b':', line).ok_or(Reject::BAD_FIELD_NAME)?;
    let name = &line[..colon];
    // §5.1: no whitespace between name and colon; the name is a token (RFC 9110 §5.1).
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(Reject::BAD_FIELD_NAME);
    }
    let value = trim_ows(&line[colon + 1..]);
    // RFC 9110 §5.5: field-vchar / SP / HTAB / obs-text; no other CTL, no DEL.
    if !value.iter().all(|&b| FIELD_VALUE[usize::from(b)]) {
        return Err(Reject::BAD_FIELD_VALUE);
    }
    Ok((name, value))
}

/// Record what a header field means for framing and connection handling.
fn note_field(name: &[u8], value: &[u8], facts: &mut Facts) -> Result<(), Reject> {
    // Most fields mean nothing for framing: rule them out by length before comparing names.
    if !matches!(name.len(), 4 | 6 | 10 | 14 | 17) {
        return Ok(());
    }
    if name.eq_ignore_ascii_case(b"content-length") {
        // RFC 9110 §8.6 allows identical duplicates to be merged; like gunicorn, refuse any.
        if facts.content_length.is_some() {
            return Err(Reject::DUP_CONTENT_LENGTH);
        }
        facts.content_length = Some(parse_content_length(value)?);
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        facts.te_present = true;
        for coding in list_elements(value) {
            if !coding.iter().all(|&b| is_tchar(b)) {
                // Parameters or junk: no coding we accept carries parameters.
                return Err(Reject::BAD_TE);
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                facts.te_chunked += 1;
                facts.te_last_chunked = true;
            } else {
                facts.te_other = true;
                facts.te_last_chunked = false;
            }
        }
    } else if name.eq_ignore_ascii_case(b"host") {
        // RFC 9112 §3.2: more than one Host, or an invalid value, is a 400. An empty value is
        // what a client sends for a target without an authority (RFC 9110 §7.2).
        facts.hosts += 1;
        if facts.hosts > 1 {
            return Err(Reject::DUP_HOST);
        }
        if !value.is_empty() && !is_host_port(value) {
            return Err(Reject::BAD_HOST);
        }
    } else if name.eq_ignore_ascii_case(b"connection") {
        // RFC 9112 §9.3, §9.6: the options that decide whether the connection persists.
        for option in list_elements(value) {
            if option.eq_ignore_ascii_case(b"close") {
                facts.conn_close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                facts.conn_keep_alive = true;
            }
        }
    } else if name.eq_ignore_ascii_case(b"expect") {
        facts.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
    }
    Ok(())
}

/// RFC 9112 §6.3: the body length of a request, decided from the complete head; and the
/// one check that needs every field: an HTTP/1.1 request must carry Host (§3.2; HTTP/1.0
/// predates the field, so its absence there is fine).
fn finish_head(facts: &Facts, limits: &Limits, host_optional: bool) -> Result<AfterHead, Reject> {
    if facts.hosts == 0 && !facts.http10 && !host_optional {
        return Err(Reject::MISSING_HOST);
    }
    let body = if facts.te_present {
        if facts.http10 {
            return Err(Reject::TE_HTTP10);
        }
        if facts.content_length.is_some() {
            return Err(Reject::TE_WITH_CL);
        }
        // §6.3 item 4: chunked must be the final coding; §7: applied at most once.
        if !facts.te_last_chunked || facts.te_chunked > 1 {
            return Err(Reject::BAD_TE);
        }
        // RFC 9112 §6.1: we decode nothing but chunked.
        if facts.te_other {
            return Err(Reject::UNSUPPORTED_TE);
        }
        Some(BodyKind::Chunked(Chunked {
            step: ChunkStep::Size { searched: 0 },
            decoded: 0,
            ext_total: 0,
            trailers: 0,
        }))
    } else {
        match facts.content_length {
            Some(len) if limits.body.is_some_and(|max| len > max) => {
                return Err(Reject::BODY_TOO_LARGE)
            }
            Some(len) if len > 0 => Some(BodyKind::Length(len)),
            // §6.3 item 7: no framing fields, no body.
            _ => None,
        }
    };
    Ok(AfterHead {
        body,
        close: facts.conn_close || (facts.http10 && !facts.conn_keep_alive) || facts.connect,
        expect_continue: facts.expect_continue,
    })
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no inner space, no list.
fn parse_content_length(value: &[u8]) -> Result<u64, Reject> {
    if value.is_empty() {
        return Err(Reject::BAD_CONTENT_LENGTH);
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(Reject::BAD_CONTENT_LENGTH);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(Reject::BAD_CONTENT_LENGTH)
    })
}

/// The non-empty elements of a comma-separated list (RFC 9110 §5.6.1).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

impl Chunked {
    /// Advance through a chunked body (RFC 9112 §7.1), adding validated bytes to
    /// `released`. Returns true at the end of the message.
    fn scan(
        &mut self,
        buf: &[u8],
        limits: &Limits,
        released: &mut usize,
        data: &mut Vec<(usize, usize)>,
    ) -> Result<bool, Reject> {
        loop {
            let avail = &buf[*released..];
            if avail.is_empty() {
                return Ok(false);
            }
            match &mut self.step {
                ChunkStep::Size { searched } => {
                    let Some(off) = memchr(b'\n', &avail[*searched..]) else {
                        *searched = avail.len();
                        if avail.len() > MAX_CHUNK_LINE + 1 {
                            return Err(Reject::BAD_CHUNK_EXT);
                        }
                        return Ok(false);
                    };
                    let lf = *searched + off;
                    let content = line_content(&avail[..lf])?;
                    if content.len() > MAX_CHUNK_LINE {
                        return Err(Reject::BAD_CHUNK_EXT);
                    }
                    let (size, ext_len) = parse_chunk_line(content)?;
                    self.ext_total += ext_len;
                    if self.ext_total > MAX_CHUNK_EXT_TOTAL {
                        return Err(Reject::BAD_CHUNK_EXT);
                    }
                    self.decoded = self.decoded.saturating_add(size);
                    if limits.body.is_some_and(|max| self.decoded > max) {
                        return Err(Reject::BODY_TOO_LARGE);
                    }
                    *released += lf + 1;
                    self.step = if size == 0 {
                        ChunkStep::Trailer { searched: 0 }
                    } else {
                        ChunkStep::Data(size)
                    };
                }
                ChunkStep::Data(remaining) => {
                    let take = (*remaining).min(avail.len() as u64);
                    *remaining -= take;
                    data.push((*released, *released + take as usize));
                    *released += take as usize;
                    if *remaining == 0 {
                        self.step = ChunkStep::DataEnd;
                    }
                }
                ChunkStep::DataEnd => {
                    if avail[0] != b'\r' {
                        return Err(Reject::BAD_CHUNK_END);
                    }
                    match avail.get(1) {
                        None => return Ok(false),
                        Some(b'\n') => {}
                        Some(_) => return Err(Reject::BAD_CHUNK_END),
                    }
                    *released += 2;
                    self.step = ChunkStep::Size { searched: 0 };
                }
                ChunkStep::Trailer { searched } => {
                    let Some(off) = memchr(b'\n', &avail[*searched..]) else {
                        *searched = avail.len();
                        if avail.len() > limits.field_cap() + 1 {
                            return Err(Reject::FIELD_TOO_LONG);
                        }
                        return Ok(false);
                    };
                    let lf = *searched + off;
                    let content = line_content(&avail[..lf])?;
                    if content.is_empty() {
                        *released += lf + 1;
                        return Ok(true);
                    }
                    if content.len() > limits.field_cap() {
                        return Err(Reject::FIELD_TOO_LONG);
                    }
                    self.trailers += 1;
                    if self.trailers > limits.fields {
                        return Err(Reject::TOO_MANY_FIELDS);
                    }
                    let (name, _) = split_field(content)?;
                    if is_forbidden_trailer(name) {
                        return Err(Reject::FORBIDDEN_TRAILER);
                    }
                    *released += lf + 1;
                    self.step = ChunkStep::Trailer { searched: 0 };
                }
            }
        }
    }
}

/// `chunk-size [chunk-ext]` (RFC 9112 §7.1). Returns the size and the extension length.
fn parse_chunk_line(line: &[u8]) -> Result<(u64, usize), Reject> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > MAX_CHUNK_SIZE_DIGITS {
        return Err(Reject::BAD_CHUNK_SIZE);
    }
    let size = line[..digits].iter().fold(0u64, |n, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        (n << 4) | u64::from(d)
    });
    let ext = &line[digits..];
    if ext.is_empty() {
        return Ok((size, 0));
    }
    // Whitespace is only allowed before a `;` (BWS, RFC 9112 §7.1.1), not as a suffix.
    if trim_ows_start(ext).first() != Some(&b';') {
        return Err(Reject::BAD_CHUNK_SIZE);
    }
    if !is_chunk_ext(ext) {
        return Err(Reject::BAD_CHUNK_EXT);
    }
    Ok((size, ext.len()))
}

/// `*( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )`, ext-val = token / quoted-string.
fn is_chunk_ext(ext: &[u8]) -> bool {
    let mut rest = ext;
    loop {
        rest = trim_ows_start(rest);
        let Some(after) = rest.strip_prefix(b";") else {
            return rest.is_empty();
        };
        rest = trim_ows_start(after);
        let name_len = token_len(rest);
        if name_len == 0 {
            return false;
        }
        rest = trim_ows_start(&rest[name_len..]);
        let Some(after) = rest.strip_prefix(b"=") else {
            continue;
        };
        rest = trim_ows_start(after);
        let value_len = if rest.first() == Some(&b'"') {
            match quoted_string_len(rest) {
                Some(len) => len,
                None => return false,
            }
        } else {
            token_len(rest)
        };
        if value_len == 0 {
            return false;
        }
        rest = &rest[value_len..];
    }
}

/// Length of the quoted-string at the start of `s` (RFC 9110 §5.6.4), if it is one.
fn quoted_string_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !(escaped == b'\t' || (b' '..=b'~').contains(&escaped) || escaped >= 0x80) {
                    return None;
                }
                i += 2;
            }
            b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => i += 1,
            _ => return None,
        }
    }
    None
}

/// Fields a sender must not put in trailers because they control framing, routing or the
/// connection (RFC 9110 §6.5.1); accepting them would let a trailer override the head.
fn is_forbidden_trailer(name: &[u8]) -> bool {
    const FORBIDDEN: [&[u8]; 9] = [
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"connection",
        b"keep-alive",
        b"upgrade",
        b"te",
        b"trailer",
        b"expect",
    ];
    FORBIDDEN.iter().any(|f| name.eq_ignore_ascii_case(f))
}

/// tchar (RFC 9110 §5.6.2), as a table: every byte of every field name is checked, and a
/// lookup is a fraction of the cost of a range test plus a search of the punctuation list.
pub(crate) static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// field-vchar / SP / HTAB / obs-text (RFC 9110 §5.5): what a field value may hold.
static FIELD_VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i == 0x09 || (i >= 0x20 && i != 0x7f);
        i += 1;
    }
    t
};

/// tchar (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

fn token_len(s: &[u8]) -> usize {
    s.iter().take_while(|&&b| is_tchar(b)).count()
}

/// Strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3) at the start.
pub(crate) fn trim_ows_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    &s[start..]
}

/// Strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3) at both ends.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let s = trim_ows_start(s);
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

#[cfg(test)]
mod tests;
