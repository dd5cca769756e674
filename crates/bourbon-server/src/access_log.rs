//! The access log: one line per completed request (and one per WebSocket session, when it
//! ends), in gunicorn's `%(name)s` format language, so that operators' existing log parsers
//! keep working, or as JSON objects.
//!
//! This module owns compiling a format string or preset ([`AccessFormat`]), rendering one
//! request ([`Entry`]) into bytes, and the sink the lines go to ([`AccessLog`], [`Target`]),
//! with its buffer. It is on the per-request path, so the format is parsed once into pieces,
//! rendering appends straight into the sink's buffer, and the `t` timestamp is formatted at
//! most once per second.
//!
//! Lines are not written one `write(2)` each: they collect in memory and go out when
//! [`FLUSH_BYTES`] have gathered, at most [`FLUSH_INTERVAL`] after the first of them (the
//! serving loop runs [`AccessLog::run_flusher`]), before a reopen (SIGUSR1), and when the
//! worker stops ([`AccessLog::flush`]). Writes end on line boundaries; to a pipe or terminal
//! they are cut into pieces of at most `PIPE_BUF` bytes, so that lines from workers sharing
//! the master's stdout never interleave, and to a file (`O_APPEND`) each write is one piece.
//!
//! Every value that comes from the client or the application is escaped in the text formats:
//! `"` becomes `\"`, `\` becomes `\\`, and any byte outside printable ASCII (space to `~`)
//! becomes `\xHH`. A client therefore cannot break a line, forge a second one (CR/LF never
//! appear), or close a quoted field early. The JSON preset escapes as RFC 8259 requires.
//!
//! Where bourbon differs from gunicorn, on purpose:
//! - an unknown atom is an error at startup (gunicorn silently prints `-`), so typos surface;
//! - `t` is the time the request *started*, always in UTC (`+0000`);
//! - `\` and bytes outside printable ASCII are escaped (gunicorn escapes only `"`);
//! - a header sent more than once is printed with its values joined by `,` (gunicorn prints
//!   the last one for `{..}i`, and joins them for `{HTTP_..}e`);
//! - `{var}e` names one of the request's CGI variables the server knows ([`EnvVar`]), as in
//!   gunicorn, where it is the WSGI environ; any other name is read from the process
//!   environment once, when the format is compiled (what an application added to its environ
//!   is not visible to the server).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

use crate::log::civil_from_unix;
use crate::request::{HeaderBlock, Interface, RequestHead, Response};

/// gunicorn's default access log format (the combined log format).
pub const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// The `common` preset: the Common Log Format (Apache's `%h %l %u %t "%r" %>s %b`).
pub const COMMON_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s"#;

/// The `combined` preset: nginx's and Apache's combined format, which is also gunicorn's
/// default.
pub const COMBINED_FORMAT: &str = DEFAULT_FORMAT;

/// The keys of a `json` line, in order (see [`render_json`] and docs/logging.md).
pub const JSON_FIELDS: &[&str] = &[
    "time",
    "remote_addr",
    "method",
    "path",
    "query",
    "protocol",
    "status",
    "bytes_sent",
    "duration_ms",
    "referer",
    "user_agent",
    "request_id",
    "pid",
    "interface",
    "ws_messages_in",
    "ws_messages_out",
    "ws_close_code",
];

/// Buffered lines are written once this many bytes have gathered.
pub const FLUSH_BYTES: usize = 32 * 1024;

/// Buffered lines are written at most this long after the first of them.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A buffer that grew beyond this (a huge header was logged) is dropped after a flush
/// rather than kept for the life of the worker.
const MAX_KEPT_BUFFER: usize = 4 * FLUSH_BYTES;

/// A connection keeps the copy of its last head for the next one up to this size (heads are
/// limited to 64 KiB by default; most are a few hundred bytes).
const MAX_KEPT_SCRATCH: usize = 8 * 1024;

/// One value an atom stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    /// `h`: remote address.
    Remote,
    /// `l`: identd user, always `-`.
    Ident,
    /// `u`: user name from `Authorization: Basic`.
    User,
    /// `t`: request start, `[25/Nov/2026:12:00:00 +0000]`.
    Time,
    /// `r`: request line.
    RequestLine,
    /// `m`: method.
    Method,
    /// `U`: percent-decoded path, without query.
    Path,
    /// `q`: query string (empty when there is none, as in gunicorn).
    Query,
    /// `H`: protocol.
    Protocol,
    /// `s`: status code.
    Status,
    /// `B`: body bytes, `0` when unknown.
    BytesOrZero,
    /// `b`: body bytes, `-` when unknown.
    BytesOrDash,
    /// `f`: `Referer` header.
    Referer,
    /// `a`: `User-Agent` header.
    UserAgent,
    /// `T`: duration in whole seconds.
    Seconds,
    /// `D`: duration in microseconds.
    Micros,
    /// `M`: duration in milliseconds.
    Millis,
    /// `L`: duration in decimal seconds.
    DecimalSeconds,
    /// `p`: `<pid>`.
    Pid,
    /// `{name}i`: a request header (lower-case name).
    RequestHeader(Box<[u8]>),
    /// `{name}o`: a response header (lower-case name).
    ResponseHeader(Box<[u8]>),
    /// `{name}e`: a CGI variable of the request.
    Env(EnvVar),
}

/// The request's CGI variables (PEP 3333, gunicorn's environ) that `{name}e` can name; the
/// name is matched without regard to case, as gunicorn does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvVar {
    /// `REQUEST_METHOD`.
    RequestMethod,
    /// `QUERY_STRING`.
    QueryString,
    /// `RAW_URI`: the request-target as sent.
    RawUri,
    /// `SERVER_PROTOCOL`.
    ServerProtocol,
    /// `REMOTE_ADDR`.
    RemoteAddr,
    /// `REMOTE_PORT`.
    RemotePort,
    /// `PATH_INFO`: the percent-decoded path.
    PathInfo,
    /// `CONTENT_TYPE`.
    ContentType,
    /// `CONTENT_LENGTH`.
    ContentLength,
    /// `wsgi.url_scheme`.
    UrlScheme,
    /// `HTTP_*`: the header of that name (`_` read as `-`, lower-case).
    Http(Box<[u8]>),
}

impl EnvVar {
    fn parse(name: &str) -> Option<EnvVar> {
        let upper = name.to_ascii_uppercase();
        Some(match upper.as_str() {
            "REQUEST_METHOD" => EnvVar::RequestMethod,
            "QUERY_STRING" => EnvVar::QueryString,
            "RAW_URI" => EnvVar::RawUri,
            "SERVER_PROTOCOL" => EnvVar::ServerProtocol,
            "REMOTE_ADDR" => EnvVar::RemoteAddr,
            "REMOTE_PORT" => EnvVar::RemotePort,
            "PATH_INFO" => EnvVar::PathInfo,
            "CONTENT_TYPE" => EnvVar::ContentType,
            "CONTENT_LENGTH" => EnvVar::ContentLength,
            "WSGI.URL_SCHEME" => EnvVar::UrlScheme,
            _ => {
                let header = upper.strip_prefix("HTTP_")?;
                if header.is_empty() {
                    return None;
                }
                EnvVar::Http(
                    header
                        .to_ascii_lowercase()
                        .replace('_', "-")
                        .into_bytes()
                        .into(),
                )
            }
        })
    }
}

/// A compiled piece of a format: text copied as is, or an atom rendered per request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(Box<[u8]>),
    Atom(Atom),
}

/// A compiled access log format: a `%(name)s` template, or the JSON preset.
#[derive(Clone, Debug)]
pub struct AccessFormat {
    pieces: Vec<Piece>,
    json: bool,
    /// See [`AccessFormat::needs_response_headers`]; asked per request, so kept.
    response_headers: bool,
}

impl AccessFormat {
    /// Compile a preset (`common`, `combined`, `json`) or a gunicorn-style format such as
    /// [`DEFAULT_FORMAT`].
    ///
    /// Atoms are written `%(name)s`; `%%` is a literal `%`, and a `%` not followed by `(` is
    /// kept as is. `{var}e` atoms that name no CGI variable of the request are resolved here,
    /// from the environment of the compiling process, and never re-read. Errors name the
    /// offending atom, e.g. `unknown access log atom %(x)s`.
    pub fn compile(fmt: &str) -> Result<AccessFormat, String> {
        match fmt {
            "json" => {
                return Ok(AccessFormat {
                    pieces: Vec::new(),
                    json: true,
                    response_headers: true,
                })
            }
            "common" => return AccessFormat::compile(COMMON_FORMAT),
            "combined" => return AccessFormat::compile(COMBINED_FORMAT),
            _ => {}
        }
        let bytes = fmt.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1)) {
                (b'%', Some(b'%')) => {
                    literal.push(b'%');
                    i += 2;
                }
                (b'%', Some(b'(')) => {
                    // `i` is at an ASCII byte, so `i + 2` is a char boundary.
                    let rest = &fmt[i + 2..];
                    let Some(close) = rest.find(')') else {
                        return Err(format!(
                            "access log atom at byte {i} is not closed (expected %(name)s)"
                        ));
                    };
                    let name = &rest[..close];
                    if rest.as_bytes().get(close + 1) != Some(&b's') {
                        return Err(format!(
                            "access log atom %({name}) at byte {i} must end with \")s\""
                        ));
                    }
                    match parse_atom(name)? {
                        Piece::Literal(text) => literal.extend_from_slice(&text),
                        atom => {
                            if !literal.is_empty() {
                                pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
                            }
                            pieces.push(atom);
                        }
                    }
                    i += 2 + close + 2;
                }
                (b, _) => {
                    literal.push(b);
                    i += 1;
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        let response_headers = pieces
            .iter()
            .any(|p| matches!(p, Piece::Atom(Atom::ResponseHeader(_))));
        Ok(AccessFormat {
            pieces,
            json: false,
            response_headers,
        })
    }

    /// Whether this is the JSON preset.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Whether rendering reads [`Entry::response_headers`] (a `{..}o` atom, or the JSON
    /// preset's `request_id`). When false the response's fields are not kept for the log.
    pub fn needs_response_headers(&self) -> bool {
        self.response_headers
    }

    /// Append the rendered line for `e` to `out`, without a trailing newline.
    fn render(&self, e: &Entry<'_>, out: &mut Vec<u8>) {
        if self.json {
            render_json(e, out);
            return;
        }
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.extend_from_slice(text),
                Piece::Atom(atom) => render_atom(atom, e, out),
            }
        }
    }
}

/// Turn the name inside `%(...)s` into a piece. A `{var}e` outside [`EnvVar`] becomes a
/// literal right away.
fn parse_atom(name: &str) -> Result<Piece, String> {
    let atom = match name {
        "h" => Atom::Remote,
        "l" => Atom::Ident,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::BytesOrZero,
        "b" => Atom::BytesOrDash,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "D" => Atom::Micros,
        "M" => Atom::Millis,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::Pid,
        _ => return parse_braced(name),
    };
    Ok(Piece::Atom(atom))
}

/// `{header}i`, `{header}o` and `{var}e`.
fn parse_braced(name: &str) -> Result<Piece, String> {
    let unknown = || format!("unknown access log atom %({name})s");
    let body = name.strip_prefix('{').ok_or_else(unknown)?;
    let (inner, kind) = body.rsplit_once('}').ok_or_else(unknown)?;
    if inner.is_empty() || !matches!(kind, "i" | "o" | "e") {
        return Err(unknown());
    }
    if kind == "e" {
        if let Some(var) = EnvVar::parse(inner) {
            return Ok(Piece::Atom(Atom::Env(var)));
        }
        // Resolved once: the environment of a running server does not change, and reading it
        // per request would take the process-wide environment lock on the hot path.
        let mut text = Vec::new();
        match std::env::var_os(inner) {
            Some(v) => push_escaped(&mut text, v.as_bytes()),
            None => text.push(b'-'),
        }
        return Ok(Piece::Literal(text.into()));
    }
    if !inner.bytes().all(|b| crate::guard::TCHAR[usize::from(b)]) {
        return Err(format!("invalid header name in access log atom %({name})s"));
    }
    let header: Box<[u8]> = inner.to_ascii_lowercase().into_bytes().into();
    Ok(Piece::Atom(if kind == "i" {
        Atom::RequestHeader(header)
    } else {
        Atom::ResponseHeader(header)
    }))
}

/// Header fields the log can read: each value of a field, by lower-case name.
pub trait Fields {
    /// Call `f` with each value of the fields named `name` (lower-case ASCII), in order.
    fn each(&self, name: &[u8], f: &mut dyn FnMut(&[u8]));
}

impl Fields for HeaderMap {
    fn each(&self, name: &[u8], f: &mut dyn FnMut(&[u8])) {
        let Ok(name) = http::HeaderName::from_bytes(name) else {
            return;
        };
        for v in self.get_all(name) {
            f(v.as_bytes());
        }
    }
}

impl Fields for RequestHead {
    fn each(&self, name: &[u8], f: &mut dyn FnMut(&[u8])) {
        for (n, v) in self.fields() {
            if n.eq_ignore_ascii_case(name) {
                f(v);
            }
        }
    }
}

impl Fields for HeaderBlock {
    fn each(&self, name: &[u8], f: &mut dyn FnMut(&[u8])) {
        for (n, v) in self.iter() {
            if n.eq_ignore_ascii_case(name) {
                f(v);
            }
        }
    }
}

/// What a WebSocket session did, for the line written when it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Messages received from the client.
    pub messages_in: u64,
    /// Messages sent to the client.
    pub messages_out: u64,
    /// Bytes written to the client after the 101 (frames, compressed if negotiated).
    pub bytes_out: u64,
    /// The close code the application was told, if the session ended normally.
    pub close_code: Option<u16>,
}

/// What is known about one completed request.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    /// Client address without the port; `""` (unix sockets) is rendered `-`.
    pub remote: &'a str,
    /// Client port; `""` (unix sockets) is rendered `-`.
    pub remote_port: &'a str,
    /// Request method.
    pub method: &'a [u8],
    /// Raw request-target (`/path?query`, or absolute-form).
    pub target: &'a [u8],
    /// Protocol, e.g. `HTTP/1.1`.
    pub version: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Response status code.
    pub status: u16,
    /// Body bytes actually sent, if known (for a WebSocket, the bytes sent after the 101).
    pub response_bytes: Option<u64>,
    /// Request header fields.
    pub request_headers: &'a dyn Fields,
    /// Response header fields, if there was a response and the format reads them.
    pub response_headers: Option<&'a dyn Fields>,
    /// When the request started.
    pub started: SystemTime,
    /// How long the request took (for a WebSocket, the whole session).
    pub duration: Duration,
    /// Who answered.
    pub interface: Interface,
    /// For a WebSocket session, what it did.
    pub ws: Option<WsStats>,
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("method", &String::from_utf8_lossy(self.method))
            .field("target", &String::from_utf8_lossy(self.target))
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn render_atom(atom: &Atom, e: &Entry<'_>, out: &mut Vec<u8>) {
    match atom {
        Atom::Remote => push_or_dash(out, e.remote.as_bytes()),
        Atom::Ident => out.push(b'-'),
        Atom::User => match basic_user(e.request_headers) {
            Some(user) => push_escaped(out, &user),
            None => out.push(b'-'),
        },
        Atom::Time => push_time(out, e.started),
        Atom::RequestLine => {
            push_escaped(out, e.method);
            out.push(b' ');
            push_escaped(out, e.target);
            out.push(b' ');
            push_escaped(out, e.version.as_bytes());
        }
        Atom::Method => push_or_dash(out, e.method),
        Atom::Path => push_path(out, e.target, push_escaped),
        Atom::Query => push_escaped(out, query_of(e.target)),
        Atom::Protocol => push_or_dash(out, e.version.as_bytes()),
        Atom::Status => push_int(out, e.status),
        Atom::BytesOrZero => push_int(out, e.response_bytes.unwrap_or(0)),
        // gunicorn prints `0` (not `-`) for an empty body, and so do we.
        Atom::BytesOrDash => match e.response_bytes {
            Some(n) => push_int(out, n),
            None => out.push(b'-'),
        },
        Atom::Referer => push_header(out, e.request_headers, b"referer"),
        Atom::UserAgent => push_header(out, e.request_headers, b"user-agent"),
        Atom::Seconds => push_int(out, e.duration.as_secs()),
        Atom::Micros => push_int(out, e.duration.as_micros()),
        Atom::Millis => push_int(out, e.duration.as_millis()),
        Atom::DecimalSeconds => {
            push_int(out, e.duration.as_secs());
            out.push(b'.');
            push_fraction(out, e.duration.subsec_micros(), 6);
        }
        // Not cached: a format compiled in the master is rendered in forked workers.
        Atom::Pid => {
            out.push(b'<');
            push_int(out, std::process::id());
            out.push(b'>');
        }
        Atom::RequestHeader(name) => push_header(out, e.request_headers, name),
        Atom::ResponseHeader(name) => match e.response_headers {
            Some(headers) => push_header(out, headers, name),
            None => out.push(b'-'),
        },
        Atom::Env(var) => render_env(var, e, out),
    }
}

fn render_env(var: &EnvVar, e: &Entry<'_>, out: &mut Vec<u8>) {
    match var {
        EnvVar::RequestMethod => push_or_dash(out, e.method),
        EnvVar::QueryString => push_escaped(out, query_of(e.target)),
        EnvVar::RawUri => push_or_dash(out, e.target),
        EnvVar::ServerProtocol => push_or_dash(out, e.version.as_bytes()),
        EnvVar::RemoteAddr => push_or_dash(out, e.remote.as_bytes()),
        EnvVar::RemotePort => push_or_dash(out, e.remote_port.as_bytes()),
        EnvVar::PathInfo => push_path(out, e.target, push_escaped),
        EnvVar::ContentType => push_header(out, e.request_headers, b"content-type"),
        EnvVar::ContentLength => push_header(out, e.request_headers, b"content-length"),
        EnvVar::UrlScheme => push_or_dash(out, e.scheme.as_bytes()),
        EnvVar::Http(name) => push_header(out, e.request_headers, name),
    }
}

/// Append `n` as exactly `digits` decimal digits (zero-padded).
fn push_fraction(out: &mut Vec<u8>, n: u32, digits: usize) {
    let mut buf = [b'0'; 9];
    let mut n = n;
    for d in buf[..digits].iter_mut().rev() {
        // `n % 10` < 10, so the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation)]
        {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
    }
    out.extend_from_slice(&buf[..digits]);
}

/// Append one JSON object (RFC 8259) for `e`, with the keys of [`JSON_FIELDS`]; the `ws_`
/// keys only for a WebSocket session. Values that may be absent are `null` then.
fn render_json(e: &Entry<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    push_iso_time(out, e.started);
    out.extend_from_slice(b"\",\"remote_addr\":");
    push_json_or_null(out, Some(e.remote.as_bytes()).filter(|r| !r.is_empty()));
    out.extend_from_slice(b",\"method\":");
    push_json_str(out, e.method);
    out.extend_from_slice(b",\"path\":\"");
    // Decoded first, then escaped as a whole: a percent-encoded UTF-8 character stays one.
    let mut path = Vec::new();
    push_path(&mut path, e.target, |out, b| out.extend_from_slice(b));
    push_json_bytes(out, &path);
    out.extend_from_slice(b"\",\"query\":");
    push_json_str(out, query_of(e.target));
    out.extend_from_slice(b",\"protocol\":");
    push_json_str(out, e.version.as_bytes());
    out.extend_from_slice(b",\"status\":");
    push_int(out, e.status);
    out.extend_from_slice(b",\"bytes_sent\":");
    match e.response_bytes {
        Some(n) => push_int(out, n),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"duration_ms\":");
    let micros = e.duration.as_micros();
    push_int(out, micros / 1000);
    out.push(b'.');
    // The remainder is below 1000, so it fits.
    push_fraction(out, u32::try_from(micros % 1000).unwrap_or(0), 3);
    out.extend_from_slice(b",\"referer\":");
    push_json_header(out, e.request_headers, b"referer");
    out.extend_from_slice(b",\"user_agent\":");
    push_json_header(out, e.request_headers, b"user-agent");
    out.extend_from_slice(b",\"request_id\":");
    match e.response_headers {
        Some(h) => push_json_header(out, h, b"x-request-id"),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"pid\":");
    push_int(out, std::process::id());
    out.extend_from_slice(b",\"interface\":");
    match e.interface.as_str() {
        Some(name) => push_json_str(out, name.as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    if let Some(ws) = e.ws {
        out.extend_from_slice(b",\"ws_messages_in\":");
        push_int(out, ws.messages_in);
        out.extend_from_slice(b",\"ws_messages_out\":");
        push_int(out, ws.messages_out);
        out.extend_from_slice(b",\"ws_close_code\":");
        match ws.close_code {
            Some(c) => push_int(out, c),
            None => out.extend_from_slice(b"null"),
        }
    }
    out.push(b'}');
}

/// A JSON string, quoted.
fn push_json_str(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    push_json_bytes(out, v);
    out.push(b'"');
}

fn push_json_or_null(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(v) => push_json_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// Every value of `name` joined by `,`, as a JSON string, or `null` when absent.
fn push_json_header(out: &mut Vec<u8>, fields: &dyn Fields, name: &[u8]) {
    let mut any = false;
    fields.each(name, &mut |v| {
        // The opening quote before the first value, a `,` between values.
        out.push(if any { b',' } else { b'"' });
        any = true;
        push_json_bytes(out, v);
    });
    if any {
        out.push(b'"');
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The contents of a JSON string (RFC 8259 §7) for `v`: `"` and `\` escaped, control
/// characters as `\n`, `\t`... or `\u00XX`, valid UTF-8 copied as it is, and each byte that
/// is not part of valid UTF-8 as `\u00XX`: the character a WSGI application sees for that
/// byte (PEP 3333 decodes header bytes as latin-1), so the line stays valid UTF-8 and loses
/// nothing.
fn push_json_bytes(out: &mut Vec<u8>, v: &[u8]) {
    let mut rest = v;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s.as_bytes(), None),
            Err(err) => {
                let (ok, after) = rest.split_at(err.valid_up_to());
                let n = err.error_len().unwrap_or(after.len());
                (ok, Some(after.split_at(n)))
            }
        };
        for &b in valid {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0..=0x1f | 0x7f => push_u00(out, b),
                _ => out.push(b),
            }
        }
        match bad {
            Some((bytes, after)) => {
                for &b in bytes {
                    push_u00(out, b);
                }
                rest = after;
            }
            None => rest = &[],
        }
    }
}

fn push_u00(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 0xf)],
    ]);
}

/// `2026-11-25T12:23:00.123456Z`: RFC 3339, UTC, microseconds.
fn push_iso_time(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, mo, d, h, mi, s) = civil_from_unix(since.as_secs());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.");
    push_fraction(out, since.subsec_micros(), 6);
    out.push(b'Z');
}

fn push_int<I: itoa::Integer>(out: &mut Vec<u8>, n: I) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Append `b`, escaped as described in the module docs.
fn push_escaped_byte(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b' '..=b'~' => out.push(b),
        _ => out.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

/// Append `v`, escaped. Most values need no escaping, so check first and copy in one go.
fn push_escaped(out: &mut Vec<u8>, v: &[u8]) {
    // Runs of plain bytes are copied whole.
    let mut rest = v;
    loop {
        let n = plain_prefix(rest);
        out.extend_from_slice(&rest[..n]);
        let Some((&b, after)) = rest[n..].split_first() else {
            return;
        };
        push_escaped_byte(out, b);
        rest = after;
    }
}

/// How many leading bytes of `v` are [`PLAIN`]: eight at a time while a word holds no byte
/// that needs escaping (the usual case: values are short printable ASCII), then byte by
/// byte. The word tests may report a byte that is plain (a carry), never miss one that is
/// not; the byte loop then decides.
fn plain_prefix(v: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Some byte of `x` is zero.
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut i = 0;
    for chunk in v.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte below 0x20 (control), above 0x7e (DEL and non-ASCII), `"` or `\`.
        let below = x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0;
        let above = (x.wrapping_add(ONES) | x) & HIGH != 0;
        if below || above || has_zero(x ^ (ONES * 0x22)) || has_zero(x ^ (ONES * 0x5c)) {
            break;
        }
        i += 8;
    }
    i + v[i..]
        .iter()
        .position(|&b| !PLAIN[usize::from(b)])
        .unwrap_or(v.len() - i)
}

/// The bytes a text line carries as they are: printable ASCII but `"` and `\`.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        t[b as usize] = b != b'"' && b != b'\\';
        b += 1;
    }
    t
};

fn push_or_dash(out: &mut Vec<u8>, v: &[u8]) {
    if v.is_empty() {
        out.push(b'-');
    } else {
        push_escaped(out, v);
    }
}

/// Every value of header `name` joined by `,` (as a WSGI environ joins repeats), or `-`.
fn push_header(out: &mut Vec<u8>, fields: &dyn Fields, name: &[u8]) {
    let mut any = false;
    fields.each(name, &mut |v| {
        if any {
            out.push(b',');
        }
        any = true;
        push_escaped(out, v);
    });
    if !any {
        out.push(b'-');
    }
}

/// The request-target without any fragment.
fn without_fragment(target: &[u8]) -> &[u8] {
    memchr::memchr(b'#', target).map_or(target, |i| &target[..i])
}

fn query_of(target: &[u8]) -> &[u8] {
    let t = without_fragment(target);
    memchr::memchr(b'?', t).map_or(&[], |i| &t[i + 1..])
}

/// Append the path of `target` percent-decoded, as gunicorn's `PATH_INFO` is, through
/// `push` (the format's escaping), so `%0A` is logged as `\x0a`: runs of bytes between
/// escapes go to `push` whole, each decoded byte on its own.
fn push_path(out: &mut Vec<u8>, target: &[u8], push: impl Fn(&mut Vec<u8>, &[u8])) {
    let mut path = without_fragment(target);
    path = memchr::memchr(b'?', path).map_or(path, |i| &path[..i]);
    // Absolute-form (`http://host/p`): the path starts at the first `/` after the authority.
    if !path.starts_with(b"/") {
        if let Some(i) = memchr::memmem::find(path, b"://") {
            let after = &path[i + 3..];
            path = memchr::memchr(b'/', after).map_or(&[], |j| &after[j..]);
        }
    }
    let mut rest = path;
    while let Some(i) = memchr::memchr(b'%', rest) {
        push(out, &rest[..i]);
        match (
            rest.get(i + 1).and_then(|&c| hex_value(c)),
            rest.get(i + 2).and_then(|&c| hex_value(c)),
        ) {
            (Some(hi), Some(lo)) => {
                push(out, &[hi << 4 | lo]);
                rest = &rest[i + 3..];
            }
            _ => {
                push(out, b"%");
                rest = &rest[i + 1..];
            }
        }
    }
    push(out, rest);
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The user name of an `Authorization: Basic` header: the decoded credentials up to the first
/// `:`. `None` when absent, not Basic, not valid base64, not UTF-8, or empty.
fn basic_user(fields: &dyn Fields) -> Option<Vec<u8>> {
    let mut value = None;
    fields.each(b"authorization", &mut |v| {
        if value.is_none() {
            value = Some(v.to_vec());
        }
    });
    let value = value?;
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let mut decoded = base64_decode(rest.trim_ascii())?;
    if let Some(colon) = decoded.iter().position(|&b| b == b':') {
        decoded.truncate(colon);
    }
    if decoded.is_empty() || std::str::from_utf8(&decoded).is_err() {
        return None;
    }
    Some(decoded)
}

/// Standard-alphabet base64 with optional `=` padding; `None` on anything else.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // Masked to one byte, so the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone trailing character carries fewer than 8 bits: not valid base64.
    if text.len() % 4 == 1 {
        return None;
    }
    Some(out)
}

thread_local! {
    /// The last second formatted for `t` and its text; requests finishing in the same second
    /// reuse it instead of redoing the calendar arithmetic.
    static CLOCK: std::cell::RefCell<(u64, Vec<u8>)> =
        const { std::cell::RefCell::new((u64::MAX, Vec::new())) };
}

/// Append `[25/Nov/2026:12:23:00 +0000]` for `started` (UTC).
fn push_time(out: &mut Vec<u8>, started: SystemTime) {
    let secs = started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cached = CLOCK.try_with(|clock| {
        let Ok(mut clock) = clock.try_borrow_mut() else {
            return false;
        };
        if clock.0 != secs {
            clock.1.clear();
            format_time(&mut clock.1, secs);
            clock.0 = secs;
        }
        out.extend_from_slice(&clock.1);
        true
    });
    if cached != Ok(true) {
        format_time(out, secs);
    }
}

fn format_time(out: &mut Vec<u8>, secs: u64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    let month = MONTHS
        .get(usize::try_from(mo).unwrap_or(0).wrapping_sub(1))
        .unwrap_or(&"???");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "[{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{s:02} +0000]");
}

/// A request being answered, as the access log will need it: taken from the head before the
/// handler owns it, completed with the response's status (and fields, when the format reads
/// some), and written by the connection driver once the body has ended — for every handler
/// alike. After a `101` it goes with the connection as a [`SessionLog`].
///
/// The head's bytes and field offsets are copied into buffers the connection reuses
/// ([`Scratch`]) rather than the head being cloned: a copy of a few hundred bytes costs less
/// than making the head's buffer shared and allocating and freeing a field list per request.
pub(crate) struct Pending {
    head: Scratch,
    method: (u32, u32),
    target: (u32, u32),
    http10: bool,
    started: SystemTime,
}

/// The buffers a connection lends to each [`Pending`] in turn.
#[derive(Default)]
pub(crate) struct Scratch {
    bytes: Vec<u8>,
    fields: Vec<crate::guard::FieldPos>,
}

impl Pending {
    fn slice(&self, (start, end): (u32, u32)) -> &[u8] {
        self.head
            .bytes
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    fn version(&self) -> &'static str {
        if self.http10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }
}

impl Fields for Pending {
    fn each(&self, name: &[u8], f: &mut dyn FnMut(&[u8])) {
        for pos in &self.head.fields {
            if self.slice((pos[0], pos[1])).eq_ignore_ascii_case(name) {
                f(self.slice((pos[2], pos[3])));
            }
        }
    }
}

/// A [`Pending`] request that has its response.
pub(crate) struct Responded {
    pending: Pending,
    status: u16,
    response_headers: Option<HeaderBlock>,
    interface: Interface,
}

impl Pending {
    /// The log's copy of `head`, in `scratch`'s buffers.
    pub(crate) fn new(head: &RequestHead, scratch: &mut Scratch) -> Self {
        let (bytes, info) = head.parts();
        let mut copy = std::mem::take(scratch);
        copy.bytes.clear();
        copy.bytes.extend_from_slice(bytes);
        copy.fields.clear();
        copy.fields.extend_from_slice(&info.fields);
        Pending {
            head: copy,
            method: info.method,
            target: info.target,
            http10: info.http10,
            // The wall clock serves for the duration too, as in gunicorn: one clock read at
            // each end of the request (a monotonic one would cost a third).
            started: SystemTime::now(),
        }
    }

    pub(crate) fn responded<B>(self, log: &AccessLog, resp: &Response<B>) -> Responded {
        Responded {
            status: resp.status,
            response_headers: log
                .format()
                .needs_response_headers()
                .then(|| resp.headers.clone()),
            interface: resp.interface,
            pending: self,
        }
    }
}

impl Responded {
    /// Write the line: `sent` is the body bytes sent (for a WebSocket, the bytes after the
    /// 101), `ws` what the session did.
    pub(crate) fn write(
        &self,
        log: &AccessLog,
        remote: &crate::serve::Remote,
        scheme: crate::serve::Scheme,
        sent: u64,
        ws: Option<WsStats>,
    ) {
        let p = &self.pending;
        log.write(&Entry {
            remote: &remote.ip,
            remote_port: &remote.port,
            method: p.slice(p.method),
            target: p.slice(p.target),
            version: p.version(),
            scheme: scheme.as_str(),
            status: self.status,
            response_bytes: Some(sent),
            request_headers: p,
            response_headers: self.response_headers.as_ref().map(|h| h as &dyn Fields),
            started: p.started,
            duration: p.started.elapsed().unwrap_or_default(),
            interface: self.interface,
            ws,
        });
    }

    /// Write the line, and give the buffers back for the connection's next request.
    pub(crate) fn write_and_reuse(
        self,
        log: &AccessLog,
        remote: &crate::serve::Remote,
        scheme: crate::serve::Scheme,
        sent: u64,
    ) -> Scratch {
        self.write(log, remote, scheme, sent, None);
        let mut scratch = self.pending.head;
        if scratch.bytes.capacity() > MAX_KEPT_SCRATCH {
            scratch = Scratch::default();
        }
        scratch
    }

    /// The record of a request that switched to WebSocket: written when the session ends.
    pub(crate) fn into_session(
        self,
        log: std::sync::Arc<AccessLog>,
        remote: std::sync::Arc<crate::serve::Remote>,
        scheme: crate::serve::Scheme,
    ) -> SessionLog {
        SessionLog {
            record: Some(self),
            log,
            remote,
            scheme,
            stats: WsStats::default(),
        }
    }
}

/// The access-log line of a connection that switched protocols (a WebSocket session): the
/// request that switched, plus what the session did. The line is written once, when the
/// session ends ([`SessionLog::finish`]) or, whatever ended it, when this is dropped.
pub struct SessionLog {
    record: Option<Responded>,
    log: std::sync::Arc<AccessLog>,
    remote: std::sync::Arc<crate::serve::Remote>,
    scheme: crate::serve::Scheme,
    /// What the session did so far.
    pub stats: WsStats,
}

impl std::fmt::Debug for SessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLog")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl SessionLog {
    /// The session ended and the application was told `close_code`: write the line now.
    pub fn finish(mut self, close_code: u16) {
        self.stats.close_code = Some(close_code);
    }
}

impl Drop for SessionLog {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.write(
                &self.log,
                &self.remote,
                self.scheme,
                self.stats.bytes_out,
                Some(self.stats),
            );
        }
    }
}

/// Where access log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`--access-logfile -`).
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, opened for appending (created if missing).
    File(PathBuf),
}

impl From<&bourbon_config::LogTarget> for Target {
    fn from(t: &bourbon_config::LogTarget) -> Target {
        match t {
            bourbon_config::LogTarget::Stdout => Target::Stdout,
            bourbon_config::LogTarget::Stderr => Target::Stderr,
            bourbon_config::LogTarget::File(p) => Target::File(p.clone()),
        }
    }
}

#[derive(Debug)]
enum Sink {
    Stdout,
    Stderr,
    File(File),
}

/// Append mode, so workers sharing the file never overwrite each other; created with
/// [`crate::log::LOG_FILE_MODE`], an existing file left as it is.
fn open_append(path: &std::path::Path) -> io::Result<File> {
    crate::log::open_log_file(path)
}

/// The sink and the lines waiting for it.
#[derive(Debug)]
struct State {
    sink: Sink,
    buf: Vec<u8>,
}

/// Writes to a pipe of at most this many bytes are atomic (POSIX `PIPE_BUF`, 4096 on
/// Linux): lines from workers sharing the master's stdout then never interleave.
const PIPE_BUF: usize = 4096;

impl State {
    /// Write every buffered line. Errors are dropped: a full disk or a closed stdout must
    /// never fail a request.
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        match &mut self.sink {
            // One write: on an `O_APPEND` file it lands whole, after other workers' writes.
            Sink::File(file) => {
                let _ = file.write_all(&self.buf);
            }
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                for piece in pipe_pieces(&self.buf) {
                    let _ = out.write_all(piece);
                }
                let _ = out.flush();
            }
            Sink::Stderr => {
                let mut err = io::stderr().lock();
                for piece in pipe_pieces(&self.buf) {
                    let _ = err.write_all(piece);
                }
            }
        }
        self.buf.clear();
        if self.buf.capacity() > MAX_KEPT_BUFFER {
            self.buf = Vec::new();
        }
    }
}

/// `buf` (whole lines) cut at line ends into pieces of at most [`PIPE_BUF`] bytes; a line
/// longer than that is a piece of its own.
fn pipe_pieces(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let window = &rest[..rest.len().min(PIPE_BUF)];
        let end = if window.len() == rest.len() {
            rest.len()
        } else {
            match memchr::memrchr(b'\n', window) {
                Some(i) => i + 1,
                None => memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1),
            }
        };
        let (piece, after) = rest.split_at(end);
        rest = after;
        Some(piece)
    })
}

/// A compiled format, the place its lines are written, and the lines not written yet.
#[derive(Debug)]
pub struct AccessLog {
    format: AccessFormat,
    target: Target,
    state: Mutex<State>,
    /// Told when the buffer receives its first line, so [`AccessLog::run_flusher`] starts
    /// its clock.
    wake: tokio::sync::Notify,
}

impl AccessLog {
    /// Open `target` (a file in append mode, so workers sharing it never overwrite each other).
    pub fn new(format: AccessFormat, target: Target) -> io::Result<AccessLog> {
        let sink = match &target {
            Target::Stdout => Sink::Stdout,
            Target::Stderr => Sink::Stderr,
            Target::File(path) => Sink::File(open_append(path)?),
        };
        Ok(AccessLog {
            format,
            target,
            state: Mutex::new(State {
                sink,
                buf: Vec::new(),
            }),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// The compiled format.
    pub fn format(&self) -> &AccessFormat {
        &self.format
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-write; keep logging.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Render one line, with its newline, into the buffer; write the buffer once it holds
    /// [`FLUSH_BYTES`]. The first line of an empty buffer wakes the flusher, which writes it
    /// within [`FLUSH_INTERVAL`].
    pub fn write(&self, entry: &Entry<'_>) {
        let mut state = self.state();
        let was_empty = state.buf.is_empty();
        self.format.render(entry, &mut state.buf);
        state.buf.push(b'\n');
        if state.buf.len() >= FLUSH_BYTES {
            state.flush();
        } else if was_empty {
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Write every buffered line now (at exit, before a reopen, and from the flusher).
    pub fn flush(&self) {
        self.state().flush();
    }

    /// Write buffered lines at most [`FLUSH_INTERVAL`] after the first of them, forever:
    /// spawned by the serving loop of each worker. It sleeps while nothing is buffered.
    pub async fn run_flusher(self: std::sync::Arc<Self>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(FLUSH_INTERVAL).await;
            self.flush();
        }
    }

    /// Append the line for `entry` to `out`, without the newline.
    pub fn render(&self, entry: &Entry<'_>, out: &mut Vec<u8>) {
        self.format.render(entry, out);
    }

    /// The file the lines go to, if they go to a file.
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.target {
            Target::File(p) => Some(p),
            Target::Stdout | Target::Stderr => None,
        }
    }

    /// Reopen the file (after log rotation moved it away); a no-op for stdout and stderr.
    /// Lines buffered so far are written to the old file first: they happened before the
    /// rotation. On error the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let mut state = self.state();
        state.flush();
        if let Target::File(path) = &self.target {
            state.sink = Sink::File(open_append(path)?);
        }
        Ok(())
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        map
    }

    fn entry<'a>(req: &'a HeaderMap, resp: Option<&'a HeaderMap>) -> Entry<'a> {
        Entry {
            remote: "10.0.0.7",
            remote_port: "52100",
            method: b"GET",
            target: b"/search?q=rust&page=2",
            version: "HTTP/1.1",
            scheme: "http",
            status: 200,
            response_bytes: Some(1234),
            request_headers: req,
            response_headers: resp.map(|h| h as &dyn Fields),
            started: UNIX_EPOCH + Duration::from_secs(1_795_609_380),
            duration: Duration::from_micros(2_345_678),
            interface: Interface::Wsgi,
            ws: None,
        }
    }

    fn render(fmt: &str, e: &Entry<'_>) -> String {
        let log = AccessLog::new(AccessFormat::compile(fmt).unwrap(), Target::Stderr).unwrap();
        let mut out = Vec::new();
        log.render(e, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn default_format() {
        let req = headers(&[
            ("referer", b"https://example.com/"),
            ("user-agent", b"curl/8.5.0"),
            ("authorization", b"Basic YWxpY2U6c2VjcmV0"),
        ]);
        assert_eq!(
            render(DEFAULT_FORMAT, &entry(&req, None)),
            r#"10.0.0.7 - alice [25/Nov/2026:12:23:00 +0000] "GET /search?q=rust&page=2 HTTP/1.1" 200 1234 "https://example.com/" "curl/8.5.0""#
        );
        let empty = HeaderMap::new();
        let mut e = entry(&empty, None);
        e.remote = "";
        e.response_bytes = None;
        assert_eq!(
            render(DEFAULT_FORMAT, &e),
            r#"- - - [25/Nov/2026:12:23:00 +0000] "GET /search?q=rust&page=2 HTTP/1.1" 200 - "-" "-""#
        );
    }

    #[test]
    fn every_atom() {
        let req = headers(&[("x-request-id", b"abc-123")]);
        let resp = headers(&[("content-type", b"text/html; charset=utf-8")]);
        let e = entry(&req, Some(&resp));
        let cases: &[(&str, String)] = &[
            ("%(h)s", "10.0.0.7".into()),
            ("%(l)s", "-".into()),
            ("%(u)s", "-".into()),
            ("%(t)s", "[25/Nov/2026:12:23:00 +0000]".into()),
            ("%(r)s", "GET /search?q=rust&page=2 HTTP/1.1".into()),
            ("%(m)s", "GET".into()),
            ("%(U)s", "/search".into()),
            ("%(q)s", "q=rust&page=2".into()),
            ("%(H)s", "HTTP/1.1".into()),
            ("%(s)s", "200".into()),
            ("%(B)s", "1234".into()),
            ("%(b)s", "1234".into()),
            ("%(f)s", "-".into()),
            ("%(a)s", "-".into()),
            ("%(T)s", "2".into()),
            ("%(D)s", "2345678".into()),
            ("%(M)s", "2345".into()),
            ("%(L)s", "2.345678".into()),
            ("%(p)s", format!("<{}>", std::process::id())),
            ("%({x-request-id}i)s", "abc-123".into()),
            ("%({X-Request-ID}i)s", "abc-123".into()),
            ("%({x-missing}i)s", "-".into()),
            ("%({content-type}o)s", "text/html; charset=utf-8".into()),
            ("%({x-missing}o)s", "-".into()),
            ("%({BOURBON_TEST_SURELY_UNSET_VAR}e)s", "-".into()),
        ];
        for (fmt, want) in cases {
            assert_eq!(&render(fmt, &e), want, "format {fmt}");
        }
        // No response (e.g. the client went away): response headers are `-`.
        assert_eq!(render("%({content-type}o)s", &entry(&req, None)), "-");
    }

    #[test]
    fn literals_and_percent() {
        let empty = HeaderMap::new();
        let e = entry(&empty, None);
        assert_eq!(render("", &e), "");
        assert_eq!(render("100%% %(s)s %", &e), "100% 200 %");
        assert_eq!(render("%%(h)s", &e), "%(h)s");
        assert_eq!(render("é%(m)s·%(s)s", &e), "éGET·200");
    }

    #[test]
    fn env_atom_is_read_at_compile_time() {
        let path = std::env::var_os("PATH").unwrap();
        let mut want = Vec::new();
        push_escaped(&mut want, path.as_bytes());
        let fmt = AccessFormat::compile("[%({PATH}e)s]").unwrap();
        // The value became a literal piece: nothing is looked up per request.
        assert!(fmt.pieces.iter().all(|p| matches!(p, Piece::Literal(_))));
        let empty = HeaderMap::new();
        assert_eq!(
            render("[%({PATH}e)s]", &entry(&empty, None)).as_bytes(),
            [b"[".as_slice(), &want, b"]"].concat()
        );
    }

    #[test]
    fn escaping() {
        let req = headers(&[
            ("user-agent", b"say \"hi\" \\o/"),
            ("referer", b"caf\xc3\xa9\x80"),
            ("x-tab", b"a\tb"),
        ]);
        let e = entry(&req, None);
        assert_eq!(render("%(a)s", &e), r#"say \"hi\" \\o/"#);
        assert_eq!(render("%(f)s", &e), r"caf\xc3\xa9\x80");
        // HeaderValue refuses CR, LF, NUL and DEL, but a Basic user name decodes to any bytes.
        let auth = headers(&[("authorization", b"Basic YQ0KYgB/Ilw6eA==")]); // a\r\nb\0\x7f"\\:x
        assert_eq!(
            render("%(u)s", &entry(&auth, None)),
            r#"a\x0d\x0ab\x00\x7f\"\\"#
        );
        assert_eq!(render("%({x-tab}i)s", &e), r"a\x09b");

        // Nor may a target or remote handed over by the caller.
        let mut e = entry(&req, None);
        e.target = b"/x\r\n127.0.0.1 - - \"GET /forged\0";
        let line = render(DEFAULT_FORMAT, &e);
        assert!(line.contains(r#""GET /x\x0d\x0a127.0.0.1 - - \"GET /forged\x00 HTTP/1.1""#));
        assert!(line.bytes().all(|b| (b' '..=b'~').contains(&b)));
        e.remote = "\n";
        assert_eq!(render("%(h)s", &e), r"\x0a");
    }

    #[test]
    fn path_and_query() {
        let empty = HeaderMap::new();
        let mut e = entry(&empty, None);
        let fmt = "%(U)s|%(q)s";
        e.target = b"/a%20b%2Fc%0A%zz%4?x=%20";
        assert_eq!(render(fmt, &e), r"/a b/c\x0a%zz%4|x=%20");
        e.target = b"/plain";
        assert_eq!(render(fmt, &e), "/plain|");
        e.target = b"http://example.com/abs/path?k=v";
        assert_eq!(render(fmt, &e), "/abs/path|k=v");
        e.target = b"http://example.com";
        assert_eq!(render(fmt, &e), "|");
        e.target = b"*";
        assert_eq!(render(fmt, &e), "*|");
        // The request line keeps the raw target.
        e.target = b"/a%20b?x";
        assert_eq!(render("%(r)s", &e), "GET /a%20b?x HTTP/1.1");
    }

    #[test]
    fn bytes_b_and_big_b() {
        let empty = HeaderMap::new();
        let mut e = entry(&empty, None);
        for (sent, b, big_b) in [(None, "-", "0"), (Some(0), "0", "0"), (Some(7), "7", "7")] {
            e.response_bytes = sent;
            assert_eq!(
                render("%(b)s %(B)s", &e),
                format!("{b} {big_b}"),
                "{sent:?}"
            );
        }
    }

    #[test]
    fn user_from_basic_auth() {
        let user = |value: &[u8]| {
            let req = headers(&[("authorization", value)]);
            render("%(u)s", &entry(&req, None))
        };
        assert_eq!(user(b"Basic YWxpY2U6c2VjcmV0"), "alice"); // alice:secret
        assert_eq!(user(b"basic  YWxpY2U6c2VjcmV0 "), "alice");
        assert_eq!(user(b"Basic Ym9i"), "bob"); // no colon: the whole thing
        assert_eq!(user(b"Basic Ym9iOg=="), "bob"); // "bob:"
        assert_eq!(user(b"Basic IiA6eA=="), r#"\" "#); // "\" :x": escaped
        assert_eq!(user(b"Basic OnB3"), "-"); // ":pw": empty user
        assert_eq!(user(b"Basic !!!!"), "-");
        assert_eq!(user(b"Basic YWxpY2U6c2VjcmV0A"), "-"); // truncated
        assert_eq!(user(b"Basic /w=="), "-"); // 0xff: not UTF-8
        assert_eq!(user(b"Bearer YWxpY2U6c2VjcmV0"), "-");
        assert_eq!(user(b"Basic"), "-");
    }

    #[test]
    fn repeated_headers_are_joined() {
        let req = headers(&[
            ("x-forwarded-for", b"1.1.1.1"),
            ("x-forwarded-for", b"2.2.2.2"),
        ]);
        assert_eq!(
            render("%({x-forwarded-for}i)s", &entry(&req, None)),
            "1.1.1.1,2.2.2.2"
        );
    }

    #[test]
    fn compile_errors() {
        let err = |f: &str| AccessFormat::compile(f).unwrap_err();
        assert_eq!(err("%(x)s"), "unknown access log atom %(x)s");
        assert_eq!(err("%(h)s %(hh)s"), "unknown access log atom %(hh)s");
        assert_eq!(err("%({x}z)s"), "unknown access log atom %({x}z)s");
        assert_eq!(err("%({}i)s"), "unknown access log atom %({}i)s");
        assert_eq!(err("%({x})s"), "unknown access log atom %({x})s");
        assert_eq!(err("%(é)s"), "unknown access log atom %(é)s");
        assert_eq!(
            err("%({éé}i)s"),
            "invalid header name in access log atom %({éé}i)s"
        );
        assert_eq!(
            err("%({a b}i)s"),
            "invalid header name in access log atom %({a b}i)s"
        );
        assert_eq!(
            err("x %(h"),
            "access log atom at byte 2 is not closed (expected %(name)s)"
        );
        assert_eq!(
            err("%(h)d"),
            "access log atom %(h) at byte 0 must end with \")s\""
        );
        assert_eq!(
            err("%(h)"),
            "access log atom %(h) at byte 0 must end with \")s\""
        );
    }

    #[test]
    fn needs_headers() {
        let needs = |f: &str| AccessFormat::compile(f).unwrap().needs_response_headers();
        assert!(!needs(DEFAULT_FORMAT));
        assert!(!needs("%(h)s %(r)s %(s)s %(b)s %(t)s %(L)s %({x-id}i)s"));
        assert!(needs("%({x-id}o)s"));
        assert!(needs("json"));
    }

    #[test]
    fn presets() {
        let req = headers(&[("referer", b"r"), ("user-agent", b"ua")]);
        let e = entry(&req, None);
        assert_eq!(
            render("common", &e),
            r#"10.0.0.7 - - [25/Nov/2026:12:23:00 +0000] "GET /search?q=rust&page=2 HTTP/1.1" 200 1234"#
        );
        assert_eq!(render("combined", &e), render(DEFAULT_FORMAT, &e));
        assert_eq!(
            render("combined", &e),
            r#"10.0.0.7 - - [25/Nov/2026:12:23:00 +0000] "GET /search?q=rust&page=2 HTTP/1.1" 200 1234 "r" "ua""#
        );
        // Only the whole value names a preset.
        assert_eq!(render("json ", &e), "json ");
    }

    #[test]
    fn json_line() {
        let req = headers(&[
            ("referer", b"https://a.example/"),
            ("user-agent", b"curl/8"),
        ]);
        let resp = headers(&[("x-request-id", b"abc-123")]);
        let mut e = entry(&req, Some(&resp));
        e.started += Duration::from_micros(250);
        let pid = std::process::id();
        assert_eq!(
            render("json", &e),
            format!(
                "{{\"time\":\"2026-11-25T12:23:00.000250Z\",\"remote_addr\":\"10.0.0.7\",\
                 \"method\":\"GET\",\"path\":\"/search\",\"query\":\"q=rust&page=2\",\
                 \"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes_sent\":1234,\
                 \"duration_ms\":2345.678,\"referer\":\"https://a.example/\",\
                 \"user_agent\":\"curl/8\",\"request_id\":\"abc-123\",\"pid\":{pid},\
                 \"interface\":\"wsgi\"}}"
            )
        );
        // Absent values are null; a unix-socket client has no address.
        let empty = HeaderMap::new();
        let mut e = entry(&empty, None);
        e.remote = "";
        e.interface = Interface::Unknown;
        e.duration = Duration::from_micros(7);
        e.ws = Some(WsStats {
            messages_in: 3,
            messages_out: 4,
            bytes_out: 99,
            close_code: Some(1000),
        });
        let line = render("json", &e);
        for part in [
            "\"remote_addr\":null,",
            "\"duration_ms\":0.007,",
            "\"referer\":null,\"user_agent\":null,\"request_id\":null,",
            "\"interface\":null,\"ws_messages_in\":3,\"ws_messages_out\":4,\"ws_close_code\":1000}",
        ] {
            assert!(line.contains(part), "{part} not in {line}");
        }
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["ws_close_code"], 1000);
        // Every key the docs list, in order.
        let keys: Vec<&str> = line
            .split('"')
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0].ends_with('{') || w[0].ends_with(','))
            .map(|w| w[1])
            .collect();
        assert_eq!(keys, JSON_FIELDS);
    }

    #[test]
    fn json_escaping() {
        // Any bytes, as a custom adapter or a future parser might hand over.
        struct Raw(&'static [(&'static [u8], &'static [u8])]);
        impl Fields for Raw {
            fn each(&self, name: &[u8], f: &mut dyn FnMut(&[u8])) {
                for (n, v) in self.0 {
                    if *n == name {
                        f(v);
                    }
                }
            }
        }
        let req = Raw(&[
            (
                b"user-agent",
                b"say \"hi\" \\o/ \x01\x1f\x7f caf\xc3\xa9 \xff\xc3",
            ),
            (b"referer", b"a\tb"),
        ]);
        let empty = HeaderMap::new();
        let mut e = entry(&empty, None);
        e.request_headers = &req;
        e.target = b"/p%22%5C%0A%00%e2%82%ac%ff?x=\"";
        let line = render("json", &e);
        assert!(
            line.contains(r#""user_agent":"say \"hi\" \\o/ \u0001\u001f\u007f café \u00ff\u00c3""#),
            "{line}"
        );
        assert!(line.contains(r#""referer":"a\tb""#), "{line}");
        assert!(
            line.contains(r#""path":"/p\"\\\n\u0000€\u00ff","query":"x=\"""#),
            "{line}"
        );
        // One line, and JSON that decodes to what was sent (invalid UTF-8 as latin-1).
        assert!(!line.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed["user_agent"],
            "say \"hi\" \\o/ \u{1}\u{1f}\u{7f} café \u{ff}\u{c3}"
        );
        assert_eq!(parsed["path"], "/p\"\\\n\u{0}€\u{ff}");
        // A Basic user name is not in the JSON line; repeated fields are joined.
        let req = headers(&[("referer", b"a"), ("referer", b"b")]);
        assert!(render("json", &entry(&req, None)).contains(r#""referer":"a,b""#));
    }

    #[test]
    fn environ_atoms() {
        let req = headers(&[
            ("content-type", b"text/plain"),
            ("content-length", b"5"),
            ("x-forwarded-for", b"1.1.1.1"),
            ("x-forwarded-for", b"2.2.2.2"),
            ("host", b"example.com"),
        ]);
        let mut e = entry(&req, None);
        e.target = b"/a%20b?k=v";
        let fmt = "%({REQUEST_METHOD}e)s|%({query_string}e)s|%({RAW_URI}e)s|\
                   %({SERVER_PROTOCOL}e)s|%({REMOTE_ADDR}e)s|%({remote_port}e)s|%({PATH_INFO}e)s|\
                   %({CONTENT_TYPE}e)s|%({CONTENT_LENGTH}e)s|%({wsgi.url_scheme}e)s|\
                   %({HTTP_X_FORWARDED_FOR}e)s|%({HTTP_HOST}e)s|%({HTTP_MISSING}e)s";
        assert_eq!(
            render(fmt, &e),
            "GET|k=v|/a%20b?k=v|HTTP/1.1|10.0.0.7|52100|/a b|text/plain|5|http|\
             1.1.1.1,2.2.2.2|example.com|-"
        );
        e.remote = "";
        e.remote_port = "";
        assert_eq!(render("%({REMOTE_ADDR}e)s %({REMOTE_PORT}e)s", &e), "- -");
    }

    #[test]
    fn plain_prefix_agrees_with_the_table() {
        let naive = |v: &[u8]| {
            v.iter()
                .position(|&b| !PLAIN[usize::from(b)])
                .unwrap_or(v.len())
        };
        for bad in 0..=255u8 {
            for at in 0..20 {
                let mut v = vec![b'a'; 20];
                v[at] = bad;
                assert_eq!(plain_prefix(&v), naive(&v), "byte {bad:#x} at {at}");
            }
        }
        // Neighbours that make the word tests carry.
        for pair in [
            [0x7e, 0x7f],
            [0xff, 0x20],
            [0x20, 0x1f],
            [0x21, 0x23],
            [0x5b, 0x5d],
        ] {
            let mut v = vec![b'x'; 16];
            v[3..5].copy_from_slice(&pair);
            assert_eq!(plain_prefix(&v), naive(&v), "{pair:x?}");
        }
        assert_eq!(plain_prefix(b""), 0);
    }

    #[test]
    fn pipe_pieces_end_on_lines() {
        let line = |n: usize, c: u8| {
            let mut l = vec![c; n - 1];
            l.push(b'\n');
            l
        };
        let mut buf = Vec::new();
        for i in 0..100 {
            buf.extend(line(100, b'a' + (i % 26) as u8));
        }
        buf.extend(line(5000, b'z'));
        buf.extend(line(10, b'y'));
        let pieces: Vec<&[u8]> = pipe_pieces(&buf).collect();
        assert_eq!(pieces.concat(), buf);
        for p in &pieces {
            assert!(p.ends_with(b"\n"));
            assert!(p.len() <= PIPE_BUF || p.iter().filter(|&&b| b == b'\n').count() == 1);
        }
        assert_eq!(
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [4000, 4000, 2000, 5000, 10]
        );
        assert_eq!(pipe_pieces(b"").count(), 0);
    }

    #[test]
    fn lines_wait_in_memory_until_flushed() {
        let path = temp_path("buffered");
        let fmt = AccessFormat::compile("%(s)s").unwrap();
        let log = AccessLog::new(fmt, Target::File(path.clone())).unwrap();
        let empty = HeaderMap::new();
        log.write(&entry(&empty, None));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        log.flush();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "200\n");
        // A full buffer goes out at once, whole lines only.
        let mut e = entry(&empty, None);
        e.status = 201;
        let lines = FLUSH_BYTES / 4;
        for _ in 0..lines {
            log.write(&e);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 4 + lines * 4);
        log.write(&e);
        drop(log); // what is left goes when the log does
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text.len(), 4 + (lines + 1) * 4);
    }

    #[test]
    fn the_flusher_writes_within_the_interval() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = temp_path("flusher");
        let fmt = AccessFormat::compile("%(s)s").unwrap();
        let log = std::sync::Arc::new(AccessLog::new(fmt, Target::File(path.clone())).unwrap());
        rt.block_on(async {
            let task = tokio::spawn(log.clone().run_flusher());
            tokio::task::yield_now().await;
            let empty = HeaderMap::new();
            let start = std::time::Instant::now();
            log.write(&entry(&empty, None));
            tokio::time::sleep(FLUSH_INTERVAL * 8 / 10).await;
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
            // Then it comes, bounded in tries and time.
            for _ in 0..100 {
                if !std::fs::read_to_string(&path).unwrap().is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "200\n");
            assert!(start.elapsed() >= FLUSH_INTERVAL);
            task.abort();
        });
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn time_formatting() {
        let mut out = Vec::new();
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        push_time(&mut out, at(1_795_609_380) + Duration::from_millis(999));
        push_time(&mut out, at(0));
        push_time(&mut out, at(951_782_400)); // leap day
        push_time(&mut out, at(951_782_400)); // served from the cache
        push_time(&mut out, UNIX_EPOCH - Duration::from_secs(5)); // clamped
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[25/Nov/2026:12:23:00 +0000][01/Jan/1970:00:00:00 +0000]\
             [29/Feb/2000:00:00:00 +0000][29/Feb/2000:00:00:00 +0000]\
             [01/Jan/1970:00:00:00 +0000]"
        );
    }

    fn temp_path(tag: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!(
            "bourbon-access-{tag}-{}-{nanos}.log",
            std::process::id()
        ))
    }

    #[test]
    fn file_target_appends() {
        let path = temp_path("append");
        std::fs::write(&path, "existing\n").unwrap();
        let fmt = AccessFormat::compile("%(m)s %(U)s %(s)s").unwrap();
        let log = AccessLog::new(fmt, Target::File(path.clone())).unwrap();
        let empty = HeaderMap::new();
        let mut e = entry(&empty, None);
        log.write(&e);
        e.status = 404;
        e.target = b"/evil\r\nforged";
        log.write(&e);
        log.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            text,
            "existing\nGET /search 200\nGET /evil\\x0d\\x0aforged 404\n"
        );
    }

    #[test]
    fn reopen_after_rename() {
        let path = temp_path("reopen");
        let rotated = path.with_extension("log.1");
        let fmt = AccessFormat::compile("%(s)s").unwrap();
        let log = AccessLog::new(fmt, Target::File(path.clone())).unwrap();
        let empty = HeaderMap::new();
        let mut e = entry(&empty, None);
        log.write(&e);
        std::fs::rename(&path, &rotated).unwrap();
        e.status = 201;
        log.write(&e); // still goes to the renamed file
        log.reopen().unwrap();
        e.status = 202;
        log.write(&e);
        log.flush();
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&rotated).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(old, "200\n201\n");
        assert_eq!(new, "202\n");
        // Streams have nothing to reopen.
        let log = AccessLog::new(AccessFormat::compile("x").unwrap(), Target::Stdout).unwrap();
        log.reopen().unwrap();
    }

    #[test]
    fn from_config_target() {
        use bourbon_config::LogTarget;
        assert_eq!(Target::from(&LogTarget::Stdout), Target::Stdout);
        assert_eq!(Target::from(&LogTarget::Stderr), Target::Stderr);
        assert_eq!(
            Target::from(&LogTarget::File("a.log".into())),
            Target::File("a.log".into())
        );
    }
}
