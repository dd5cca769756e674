//! The access log: one line per completed request, in gunicorn's `%(name)s` format language,
//! so that operators' existing log parsers keep working.
//!
//! This module owns compiling a format string ([`AccessFormat`]), rendering one request
//! ([`Entry`]) into bytes, and the sink the lines go to ([`AccessLog`], [`Target`]). It is on the
//! per-request path, so the format is parsed once into pieces, rendering appends into a reused
//! thread-local buffer, and the `t` timestamp is formatted at most once per second.
//!
//! Every value that comes from the client or the application is escaped: `"` becomes `\"`, `\`
//! becomes `\\`, and any byte outside printable ASCII (space to `~`) becomes `\xHH`. A client
//! therefore cannot break a line, forge a second one (CR/LF never appear), or close a quoted
//! field early.
//!
//! Where bourbon differs from gunicorn, on purpose:
//! - an unknown atom is an error at startup (gunicorn silently prints `-`), so typos surface;
//! - `t` is the time the request *started*, always in UTC (`+0000`);
//! - `{var}e` reads the process environment once, when the format is compiled;
//! - a header sent more than once is printed with its values joined by `,`.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{AUTHORIZATION, REFERER, USER_AGENT};
use http::{HeaderMap, HeaderName};

use crate::log::civil_from_unix;
use crate::request::{RequestHead, Response};

/// gunicorn's default access log format (the combined log format).
pub const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// A buffer that grew beyond this (a huge header was logged) is dropped rather than kept for
/// the life of the thread.
const MAX_KEPT_BUFFER: usize = 64 * 1024;

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
    /// `{name}i`: a request header.
    RequestHeader(HeaderName),
    /// `{name}o`: a response header.
    ResponseHeader(HeaderName),
}

/// A compiled piece of a format: text copied as is, or an atom rendered per request.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(Box<[u8]>),
    Atom(Atom),
}

/// A compiled access log format.
#[derive(Clone, Debug)]
pub struct AccessFormat {
    pieces: Vec<Piece>,
}

impl AccessFormat {
    /// Compile a gunicorn-style format such as [`DEFAULT_FORMAT`].
    ///
    /// Atoms are written `%(name)s`; `%%` is a literal `%`, and a `%` not followed by `(` is
    /// kept as is. `{var}e` atoms are resolved here, from the environment of the compiling
    /// process, and never re-read. Errors name the offending atom, e.g.
    /// `unknown access log atom %(x)s`.
    pub fn compile(fmt: &str) -> Result<AccessFormat, String> {
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
        Ok(AccessFormat { pieces })
    }

    /// Whether rendering reads [`Entry::request_headers`] (`u`, `f`, `a` or a `{..}i` atom).
    /// When false the caller may pass an empty map instead of keeping the request's headers.
    pub fn needs_request_headers(&self) -> bool {
        self.pieces.iter().any(|p| {
            matches!(
                p,
                Piece::Atom(Atom::User | Atom::Referer | Atom::UserAgent | Atom::RequestHeader(_))
            )
        })
    }

    /// Whether rendering reads [`Entry::response_headers`] (a `{..}o` atom).
    pub fn needs_response_headers(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Atom(Atom::ResponseHeader(_))))
    }

    /// Append the rendered line for `e` to `out`, without a trailing newline.
    fn render(&self, e: &Entry<'_>, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => out.extend_from_slice(text),
                Piece::Atom(atom) => render_atom(atom, e, out),
            }
        }
    }
}

/// Turn the name inside `%(...)s` into a piece. `{var}e` becomes a literal right away.
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
        // Resolved once: the environment of a running server does not change, and reading it
        // per request would take the process-wide environment lock on the hot path.
        let mut text = Vec::new();
        match std::env::var_os(inner) {
            Some(v) => push_escaped(&mut text, v.as_bytes()),
            None => text.push(b'-'),
        }
        return Ok(Piece::Literal(text.into()));
    }
    let header = HeaderName::from_bytes(inner.to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("invalid header name in access log atom %({name})s"))?;
    Ok(Piece::Atom(if kind == "i" {
        Atom::RequestHeader(header)
    } else {
        Atom::ResponseHeader(header)
    }))
}

/// What is known about one completed request.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// Client address without the port; `""` (unix sockets) is rendered `-`.
    pub remote: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Raw request-target (`/path?query`, or absolute-form).
    pub target: &'a str,
    /// Protocol, e.g. `HTTP/1.1`.
    pub version: &'a str,
    /// Response status code.
    pub status: u16,
    /// Body bytes actually sent, if known.
    pub response_bytes: Option<u64>,
    /// Request headers (may be empty when [`AccessFormat::needs_request_headers`] is false).
    pub request_headers: &'a HeaderMap,
    /// Response headers, if there was a response.
    pub response_headers: Option<&'a HeaderMap>,
    /// When the request started.
    pub started: SystemTime,
    /// How long the request took.
    pub duration: Duration,
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
            push_escaped(out, e.method.as_bytes());
            out.push(b' ');
            push_escaped(out, e.target.as_bytes());
            out.push(b' ');
            push_escaped(out, e.version.as_bytes());
        }
        Atom::Method => push_or_dash(out, e.method.as_bytes()),
        Atom::Path => push_path(out, e.target),
        Atom::Query => push_escaped(out, query_of(e.target).as_bytes()),
        Atom::Protocol => push_or_dash(out, e.version.as_bytes()),
        Atom::Status => push_int(out, e.status),
        Atom::BytesOrZero => push_int(out, e.response_bytes.unwrap_or(0)),
        // gunicorn prints `0` (not `-`) for an empty body, and so do we.
        Atom::BytesOrDash => match e.response_bytes {
            Some(n) => push_int(out, n),
            None => out.push(b'-'),
        },
        Atom::Referer => push_header(out, e.request_headers, &REFERER),
        Atom::UserAgent => push_header(out, e.request_headers, &USER_AGENT),
        Atom::Seconds => push_int(out, e.duration.as_secs()),
        Atom::Micros => push_int(out, e.duration.as_micros()),
        Atom::Millis => push_int(out, e.duration.as_millis()),
        Atom::DecimalSeconds => {
            push_int(out, e.duration.as_secs());
            out.push(b'.');
            let micros = e.duration.subsec_micros();
            let mut digits = [b'0'; 6];
            let mut n = micros;
            for d in digits.iter_mut().rev() {
                // `n % 10` < 10, so the cast cannot truncate.
                #[allow(clippy::cast_possible_truncation)]
                {
                    *d = b'0' + (n % 10) as u8;
                }
                n /= 10;
            }
            out.extend_from_slice(&digits);
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
    }
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
    if v.iter()
        .all(|&b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(v);
    } else {
        for &b in v {
            push_escaped_byte(out, b);
        }
    }
}

fn push_or_dash(out: &mut Vec<u8>, v: &[u8]) {
    if v.is_empty() {
        out.push(b'-');
    } else {
        push_escaped(out, v);
    }
}

/// Every value of header `name` joined by `,` (as a WSGI environ joins repeats), or `-`.
fn push_header(out: &mut Vec<u8>, headers: &HeaderMap, name: &HeaderName) {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        out.push(b'-');
        return;
    };
    push_escaped(out, first.as_bytes());
    for v in values {
        out.push(b',');
        push_escaped(out, v.as_bytes());
    }
}

/// The request-target without any fragment.
fn without_fragment(target: &str) -> &str {
    target.split_once('#').map_or(target, |(t, _)| t)
}

fn query_of(target: &str) -> &str {
    without_fragment(target)
        .split_once('?')
        .map_or("", |(_, q)| q)
}

/// Append the path of `target` percent-decoded, as gunicorn's `PATH_INFO` is; decoded bytes
/// go through the same escaping, so `%0A` is logged as `\x0a`.
fn push_path(out: &mut Vec<u8>, target: &str) {
    let mut path = without_fragment(target);
    path = path.split_once('?').map_or(path, |(p, _)| p);
    // Absolute-form (`http://host/p`): the path starts at the first `/` after the authority.
    if !path.starts_with('/') {
        if let Some((_, after)) = path.split_once("://") {
            path = after.find('/').map_or("", |j| &after[j..]);
        }
    }
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(hi), Some(lo)) = (
                b.get(i + 1).and_then(|&c| hex_value(c)),
                b.get(i + 2).and_then(|&c| hex_value(c)),
            ) {
                push_escaped_byte(out, hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        push_escaped_byte(out, b[i]);
        i += 1;
    }
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
fn basic_user(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
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
    /// The line buffer [`AccessLog::write`] renders into, kept between requests.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
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
/// handler owns it, completed with the response's status (and headers, when the format names
/// some), and written by the connection driver once the body has ended — for every handler
/// alike.
pub(crate) struct Pending {
    head: RequestHead,
    started: SystemTime,
    clock: std::time::Instant,
}

/// A [`Pending`] request that has its response.
pub(crate) struct Responded {
    pending: Pending,
    status: u16,
    response_headers: Option<HeaderMap>,
}

impl Pending {
    pub(crate) fn new(head: &RequestHead) -> Self {
        Pending {
            head: head.clone(),
            started: SystemTime::now(),
            clock: std::time::Instant::now(),
        }
    }

    pub(crate) fn responded<B>(self, log: &AccessLog, resp: &Response<B>) -> Responded {
        Responded {
            status: resp.status,
            response_headers: log
                .format()
                .needs_response_headers()
                .then(|| resp.headers.to_header_map()),
            pending: self,
        }
    }
}

impl Responded {
    /// Write the line: `remote` is the client's address, `sent` the body bytes sent.
    pub(crate) fn write(self, log: &AccessLog, remote: &str, sent: u64) {
        let head = &self.pending.head;
        let request_headers = if log.format().needs_request_headers() {
            head.header_map()
        } else {
            HeaderMap::new()
        };
        log.write(&Entry {
            remote,
            method: &String::from_utf8_lossy(head.method()),
            target: &String::from_utf8_lossy(head.target()),
            version: head.version_str(),
            status: self.status,
            response_bytes: Some(sent),
            request_headers: &request_headers,
            response_headers: self.response_headers.as_ref(),
            started: self.pending.started,
            duration: self.pending.clock.elapsed(),
        });
    }
}

/// Where access log lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`--access-logfile -`), flushed after every line.
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

/// A compiled format plus the place its lines are written.
#[derive(Debug)]
pub struct AccessLog {
    format: AccessFormat,
    target: Target,
    sink: Mutex<Sink>,
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
            sink: Mutex::new(sink),
        })
    }

    /// The compiled format.
    pub fn format(&self) -> &AccessFormat {
        &self.format
    }

    /// Render one line and write it with its newline. Errors are dropped: a full disk or a
    /// closed stdout must never fail a request.
    pub fn write(&self, entry: &Entry<'_>) {
        let written = LINE.try_with(|line| {
            let Ok(mut line) = line.try_borrow_mut() else {
                return false;
            };
            line.clear();
            self.render(entry, &mut line);
            line.push(b'\n');
            self.emit(&line);
            if line.capacity() > MAX_KEPT_BUFFER {
                *line = Vec::new();
            }
            true
        });
        if written != Ok(true) {
            let mut line = Vec::with_capacity(256);
            self.render(entry, &mut line);
            line.push(b'\n');
            self.emit(&line);
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
    /// On error the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        if let Target::File(path) = &self.target {
            let file = open_append(path)?;
            *self.sink.lock().unwrap_or_else(PoisonError::into_inner) = Sink::File(file);
        }
        Ok(())
    }

    /// Write a whole line with one `write_all` under the lock, so lines from concurrent
    /// requests never interleave; on an `O_APPEND` file one `write(2)` per line also keeps
    /// lines from different worker processes intact.
    fn emit(&self, line: &[u8]) {
        // A poisoned lock only means another thread panicked mid-write; keep logging.
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *sink {
            Sink::Stdout => {
                let mut out = io::stdout().lock();
                let _ = out.write_all(line);
                // Readers are often a pipe (a log collector); don't hold lines in a buffer.
                let _ = out.flush();
            }
            Sink::Stderr => {
                let _ = io::stderr().lock().write_all(line);
            }
            Sink::File(file) => {
                let _ = file.write_all(line);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http::HeaderValue;

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
            method: "GET",
            target: "/search?q=rust&page=2",
            version: "HTTP/1.1",
            status: 200,
            response_bytes: Some(1234),
            request_headers: req,
            response_headers: resp,
            started: UNIX_EPOCH + Duration::from_secs(1_795_609_380),
            duration: Duration::from_micros(2_345_678),
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
        e.target = "/x\r\n127.0.0.1 - - \"GET /forged\0";
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
        e.target = "/a%20b%2Fc%0A%zz%4?x=%20";
        assert_eq!(render(fmt, &e), r"/a b/c\x0a%zz%4|x=%20");
        e.target = "/plain";
        assert_eq!(render(fmt, &e), "/plain|");
        e.target = "http://example.com/abs/path?k=v";
        assert_eq!(render(fmt, &e), "/abs/path|k=v");
        e.target = "http://example.com";
        assert_eq!(render(fmt, &e), "|");
        e.target = "*";
        assert_eq!(render(fmt, &e), "*|");
        // The request line keeps the raw target.
        e.target = "/a%20b?x";
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
        let needs = |f: &str| {
            let c = AccessFormat::compile(f).unwrap();
            (c.needs_request_headers(), c.needs_response_headers())
        };
        assert_eq!(needs(DEFAULT_FORMAT), (true, false));
        assert_eq!(needs("%(h)s %(r)s %(s)s %(b)s %(t)s %(L)s"), (false, false));
        assert_eq!(needs("%(u)s"), (true, false));
        assert_eq!(needs("%({x-id}i)s"), (true, false));
        assert_eq!(needs("%({x-id}o)s"), (false, true));
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
        e.target = "/evil\r\nforged";
        log.write(&e);
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
