//! What a handler receives and returns: the request head as the guard parsed it, the request
//! body as a stream pulled from the connection, and the response.
//!
//! This module owns the types at the seam between the connection driver ([`crate::h1`]) and
//! an application adapter (WSGI today, ASGI later). The head is the client's bytes plus the
//! offsets the guard recorded while validating them, so nothing parses a head twice and no
//! header map is built unless someone asks for one.

use std::fmt;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::guard::{HeadInfo, TCHAR};

/// A request head: the bytes as received (validated by the guard) and where their parts are.
///
/// Owned and `Send`: it can travel to a Python thread as it is.
#[derive(Clone)]
pub struct RequestHead {
    bytes: Bytes,
    info: HeadInfo,
    /// When the head was read (monotonic ns), 0 when not recorded: the application adapter
    /// measures the request's queue time from it (see [`crate::metrics`]).
    arrived: u64,
}

impl RequestHead {
    /// A head from its bytes and what the guard found in them.
    pub fn new(bytes: Bytes, info: HeadInfo) -> Self {
        RequestHead {
            bytes,
            info,
            arrived: 0,
        }
    }

    /// Record when the head was read ([`crate::metrics::request_started`]).
    pub fn set_arrived(&mut self, ns: u64) {
        self.arrived = ns;
    }

    /// When the head was read (monotonic ns), 0 when not recorded.
    pub fn arrived(&self) -> u64 {
        self.arrived
    }

    fn slice(&self, (start, end): (u32, u32)) -> &[u8] {
        self.bytes
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    /// The method, e.g. `GET` (a validated token).
    pub fn method(&self) -> &[u8] {
        self.slice(self.info.method)
    }

    /// The request target exactly as sent, e.g. `/path?q=1`.
    pub fn target(&self) -> &[u8] {
        self.slice(self.info.target)
    }

    /// The request target as a shared slice of the head (no copy).
    pub fn target_bytes(&self) -> Bytes {
        let (start, end) = self.info.target;
        if end as usize <= self.bytes.len() && start <= end {
            self.bytes.slice(start as usize..end as usize)
        } else {
            Bytes::new()
        }
    }

    /// The host (and port) the request is for: the authority of an absolute-form target,
    /// which wins over `Host` (RFC 9112 §3.2.2), else the `Host` value. `None` only for an
    /// HTTP/1.0 request without either (the guard refuses HTTP/1.1 without Host).
    pub fn host(&self) -> Option<&[u8]> {
        self.info.host.map(|span| self.slice(span))
    }

    /// True for HTTP/1.0, false for HTTP/1.1.
    pub fn http10(&self) -> bool {
        self.info.http10
    }

    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn version_str(&self) -> &'static str {
        if self.info.http10 {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    }

    /// True for a HEAD request (its response has no body, RFC 9110 §9.3.2).
    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// The header fields in the order received: (name as sent, value without surrounding
    /// whitespace).
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.info
            .fields
            .iter()
            .map(|f| (self.slice((f[0], f[1])), self.slice((f[2], f[3]))))
    }

    /// Number of header fields.
    pub fn field_count(&self) -> usize {
        self.info.fields.len()
    }

    /// The name and value of field `i`.
    pub fn field(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.info
            .fields
            .get(i)
            .map(|f| (self.slice((f[0], f[1])), self.slice((f[2], f[3]))))
    }

    /// The first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether a body follows the head (chunked, or a non-zero Content-Length).
    pub fn has_body(&self) -> bool {
        self.info.chunked || self.info.content_length.is_some_and(|n| n > 0)
    }

    /// The declared Content-Length.
    pub fn content_length(&self) -> Option<u64> {
        self.info.content_length
    }

    /// `Expect: 100-continue` was sent.
    pub fn expects_continue(&self) -> bool {
        self.info.expect_continue
    }

    /// The client will not send another request on this connection.
    pub fn wants_close(&self) -> bool {
        self.info.close
    }

    /// HTTP/1.0 with `Connection: keep-alive`.
    pub(crate) fn http10_keep_alive(&self) -> bool {
        self.info.http10 && self.info.keep_alive && !self.info.close
    }

    /// The value of field `i` as a shared slice of the head (no copy).
    pub(crate) fn field_value_bytes(&self, i: usize) -> Bytes {
        match self.info.fields.get(i) {
            Some(f) if f[2] <= f[3] && f[3] as usize <= self.bytes.len() => {
                self.bytes.slice(f[2] as usize..f[3] as usize)
            }
            _ => Bytes::new(),
        }
    }

    /// The head with fields set, for what a trusted proxy or the server says instead of
    /// the client (see `layer::forwarded`): for each `(name, value, is_host)`, the first
    /// field named `name` takes `value` and later ones are dropped, or, with none, the field
    /// is added at the end; with `is_host`, the request's host becomes `value` too (it wins
    /// over an absolute-form target's authority as well). One copy of the head, with the
    /// new bytes after the old ones so every other offset stays valid.
    pub(crate) fn with_fields(self, edits: &[(&[u8], &[u8], bool)]) -> RequestHead {
        let extra: usize = edits.iter().map(|(n, v, _)| n.len() + v.len()).sum();
        if u32::try_from(self.bytes.len() + extra).is_err() {
            return self;
        }
        let mut buf = bytes::BytesMut::with_capacity(self.bytes.len() + extra);
        buf.extend_from_slice(&self.bytes);
        let old = self.bytes;
        let mut info = self.info;
        // In range: the total was checked against u32 above.
        let at = |buf: &bytes::BytesMut| buf.len() as u32;
        for &(name, value, is_host) in edits {
            let vs = at(&buf);
            buf.extend_from_slice(value);
            let ve = at(&buf);
            let mut found = false;
            info.fields.retain_mut(|f| {
                let n = old.get(f[0] as usize..f[1] as usize).unwrap_or_default();
                if !n.eq_ignore_ascii_case(name) {
                    return true;
                }
                if found {
                    return false;
                }
                found = true;
                f[2] = vs;
                f[3] = ve;
                true
            });
            if !found {
                let ns = at(&buf);
                buf.extend_from_slice(name);
                let ne = at(&buf);
                info.fields.push([ns, ne, vs, ve]);
            }
            if is_host {
                info.host = Some((vs, ve));
            }
        }
        RequestHead {
            bytes: buf.freeze(),
            info,
            arrived: self.arrived,
        }
    }

    /// The head's bytes as received and where their parts are (the access log copies both).
    pub(crate) fn parts(&self) -> (&[u8], &HeadInfo) {
        (&self.bytes, &self.info)
    }

    /// The headers as an `http::HeaderMap`, for the rare consumers that want one (access-log
    /// formats naming request headers). Fields that do not convert are skipped.
    pub fn header_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::with_capacity(self.field_count());
        for (n, v) in self.fields() {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
                map.append(n, v);
            }
        }
        map
    }
}

impl fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestHead")
            .field("method", &String::from_utf8_lossy(self.method()))
            .field("target", &String::from_utf8_lossy(self.target()))
            .field("version", &self.version_str())
            .finish_non_exhaustive()
    }
}

/// Why a request body could not be read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The guard refused the rest of the body (bad chunk framing, over the size limit, or the
    /// client closed inside it): answer with this status.
    Rejected(u16),
    /// The client stalled past the body timeout, or the socket failed.
    Broken,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Rejected(code) => write!(f, "request body refused ({code})"),
            BodyError::Broken => f.write_str("request body broken off"),
        }
    }
}

impl std::error::Error for BodyError {}

/// The connection side of a request body.
pub(crate) trait BodySource {
    /// The next piece of the body; `None` at its end.
    fn poll_chunk(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>>;
}

/// A request body, read from the connection on demand. Reading it is what answers
/// `Expect: 100-continue` (RFC 9110 §10.1.1). Single-threaded: it must be read on the
/// connection's thread.
pub struct RequestBody {
    source: Option<Rc<dyn BodySource>>,
}

impl RequestBody {
    /// A request without a body.
    pub fn empty() -> Self {
        RequestBody { source: None }
    }

    pub(crate) fn new(source: Rc<dyn BodySource>) -> Self {
        RequestBody {
            source: Some(source),
        }
    }

    /// True when there is no body at all.
    pub fn is_empty(&self) -> bool {
        self.source.is_none()
    }

    /// Poll for the next piece of the body.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        match &self.source {
            None => Poll::Ready(None),
            Some(s) => s.poll_chunk(cx),
        }
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("empty", &self.is_empty())
            .finish()
    }
}

/// A request as a handler receives it.
#[derive(Debug)]
pub struct Request {
    /// The head.
    pub head: RequestHead,
    /// The body (empty when the head declares none).
    pub body: RequestBody,
    /// Where informational responses go before the final one (103 Early Hints).
    pub interim: Interim,
    /// Tells whether the client went away while the handler works (ASGI's
    /// `http.disconnect`).
    pub peer: PeerWatch,
}

/// The connection side of [`PeerWatch`].
pub(crate) trait PeerSource {
    /// Ready once the client closed its side or the connection failed.
    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Notices a client that went away while its request is being answered, without a read of the
/// request body pending (which notices it by itself). It reads ahead what the client sent, up
/// to one buffer of pipelined requests (kept for the driver, which parses them next); past
/// that, it reports the client as present. A client that only half-closed (shut down its
/// sending side) counts as gone, as in uvicorn: HTTP/1.1 clients do not half-close while
/// waiting for a response. Single-threaded, like the request body.
#[derive(Clone, Default)]
pub struct PeerWatch(Option<Rc<dyn PeerSource>>);

impl PeerWatch {
    /// A request whose client is never reported gone.
    pub fn none() -> Self {
        PeerWatch(None)
    }

    pub(crate) fn new(source: Rc<dyn PeerSource>) -> Self {
        PeerWatch(Some(source))
    }

    /// Ready once the client went away; registers `cx` to be woken when that may have
    /// happened. Costs no system call while nothing arrived.
    pub fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.0 {
            Some(source) => source.poll_closed(cx),
            None => Poll::Pending,
        }
    }
}

impl fmt::Debug for PeerWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerWatch")
    }
}

/// The connection side of informational responses.
pub(crate) trait InterimSink {
    /// Send `status` (1xx) with `headers` now; false when it cannot be sent.
    fn send_interim(&self, status: u16, headers: &HeaderBlock) -> bool;
}

/// Sends informational (1xx) responses ahead of the final one (RFC 9110 §15.2), such as
/// `103 Early Hints` (RFC 8297). Single-threaded, like the request body. Never for an
/// HTTP/1.0 client, which does not know them (§15.2), and never once the final response has
/// started; `100 Continue` and `101` are the driver's own (see `RequestBody` and
/// `Response::upgrade`).
#[derive(Clone, Default)]
pub struct Interim(Option<Rc<dyn InterimSink>>);

impl Interim {
    /// A request that takes no informational responses.
    pub fn none() -> Self {
        Interim(None)
    }

    pub(crate) fn new(sink: Rc<dyn InterimSink>) -> Self {
        Interim(Some(sink))
    }

    /// Send an informational response now. False when it was not sent: not a 1xx status
    /// other than 100 and 101, an HTTP/1.0 client, the final response already started, or
    /// the connection could not take it. An informational response is advice (a client may
    /// ignore it), so a handler carries on either way.
    pub fn send(&self, status: u16, headers: &HeaderBlock) -> bool {
        match &self.0 {
            Some(sink) if (102..200).contains(&status) => sink.send_interim(status, headers),
            _ => false,
        }
    }
}

impl fmt::Debug for Interim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Interim"
        } else {
            "Interim(none)"
        })
    }
}

/// Why a response header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The name is not a token (RFC 9110 §5.1).
    Name,
    /// The value holds CR, LF or NUL, which would split the response (RFC 9110 §5.5).
    Value,
}

/// Response header fields, encoded once as they will go on the wire (`name: value\r\n` per
/// field, names as the application spelled them), with the few facts the connection needs
/// noted on the way in. Building this instead of a header map saves a validation, an
/// allocation per value and a second encoding per response.
#[derive(Clone, Debug, Default)]
pub struct HeaderBlock {
    bytes: Vec<u8>,
    content_length: Option<u64>,
    has_date: bool,
    has_server: bool,
    /// An `X-Accel-Redirect` or `X-Sendfile` field was pushed: the application hands a
    /// file to the server.
    names_file: bool,
    /// An `X-Request-ID` field was pushed (the driver then adds none).
    has_request_id: bool,
}

impl HeaderBlock {
    /// An empty block with room for `bytes` bytes of fields.
    pub fn with_capacity(bytes: usize) -> Self {
        HeaderBlock {
            bytes: Vec::with_capacity(bytes),
            ..HeaderBlock::default()
        }
    }

    /// Append a field after checking it cannot corrupt the response.
    pub fn push(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeaderError> {
        if name.is_empty() || !name.iter().all(|&b| TCHAR[usize::from(b)]) {
            return Err(HeaderError::Name);
        }
        if value.iter().any(|&b| FORBIDDEN_IN_VALUE[usize::from(b)]) {
            return Err(HeaderError::Value);
        }
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"date") => self.has_date = true,
            6 if name.eq_ignore_ascii_case(b"server") => self.has_server = true,
            10 if name.eq_ignore_ascii_case(b"x-sendfile") => self.names_file = true,
            12 if name.eq_ignore_ascii_case(b"x-request-id") => self.has_request_id = true,
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                self.content_length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            }
            16 if name.eq_ignore_ascii_case(b"x-accel-redirect") => self.names_file = true,
            _ => {}
        }
        self.append(name, value);
        Ok(())
    }

    /// Append a field the server itself made (a constant name, a value built from validated
    /// parts), without checking it again. Noted like [`HeaderBlock::push`] except for the
    /// fields the driver manages (`Content-Length`, `Date`, `Server`), which it must not be.
    pub(crate) fn push_trusted(&mut self, name: &[u8], value: &[u8]) {
        debug_assert!(self.clone().push(name, value).is_ok());
        self.append(name, value);
    }

    fn append(&mut self, name: &[u8], value: &[u8]) {
        self.bytes.reserve(name.len() + value.len() + 4);
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(b": ");
        self.bytes.extend_from_slice(value);
        self.bytes.extend_from_slice(b"\r\n");
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether a field named `name` was pushed; for `X-Request-ID` without a scan.
    pub(crate) fn has_field(&self, name: &[u8]) -> bool {
        if name.eq_ignore_ascii_case(b"x-request-id") {
            self.has_request_id
        } else {
            self.get(name).is_some()
        }
    }

    /// Whether the application named a file for the server to send instead of its body
    /// (`X-Accel-Redirect`, `X-Sendfile`).
    pub fn names_a_file(&self) -> bool {
        self.names_file
    }

    /// The encoded fields.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The Content-Length field's value, if one was pushed and is a number.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// A `Date` field was pushed.
    pub fn has_date(&self) -> bool {
        self.has_date
    }

    /// A `Server` field was pushed.
    pub fn has_server(&self) -> bool {
        self.has_server
    }

    /// The fields as (name, value) pairs, for the rare readers (access-log formats).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.bytes
            .split(|&b| b == b'\n')
            .filter_map(|line| line.strip_suffix(b"\r"))
            .filter_map(|line| {
                let colon = memchr::memchr(b':', line)?;
                Some((&line[..colon], line.get(colon + 2..).unwrap_or_default()))
            })
    }

    /// The fields as an `http::HeaderMap`; fields that do not convert are skipped.
    pub fn to_header_map(&self) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (n, v) in self.iter() {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
                map.append(n, v);
            }
        }
        map
    }
}

/// CR, LF and NUL: the bytes that would let a value split the response.
static FORBIDDEN_IN_VALUE: [bool; 256] = {
    let mut t = [false; 256];
    t[0] = true;
    t[b'\r' as usize] = true;
    t[b'\n' as usize] = true;
    t
};

/// A response as a handler returns it. The connection adds what framing needs
/// (`Content-Length` or `Transfer-Encoding: chunked`, `Connection`), `Date`, and writes it.
#[derive(Debug)]
pub struct Response<B> {
    /// The status code (200–999; 1xx is not allowed here).
    pub status: u16,
    /// A reason phrase other than the standard one for the status.
    pub reason: Option<Bytes>,
    /// Header fields in the order to send them. A `Content-Length` among them is the body's
    /// length and the body must honour it.
    pub headers: HeaderBlock,
    /// Close the connection after this response.
    pub close: bool,
    /// With status 101 (RFC 9110 §15.2.2): where the connection goes once the response head
    /// is written; the driver then stops reading HTTP on it. Ignored for other statuses and
    /// for HTTP/1.0, which cannot switch protocols.
    pub upgrade: Option<OnUpgrade>,
    /// Who answered, for the access log.
    pub interface: Interface,
    /// The body.
    pub body: B,
}

/// Who made a response: what the access log's JSON `interface` key says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Interface {
    /// Not said (a handler outside the adapters below).
    #[default]
    Unknown,
    /// The WSGI adapter.
    Wsgi,
    /// The ASGI adapter (HTTP and WebSocket).
    Asgi,
    /// The static file layer, from Rust.
    Static,
}

impl Interface {
    /// `wsgi`, `asgi`, `static`, or `None` when unknown.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Interface::Unknown => None,
            Interface::Wsgi => Some("wsgi"),
            Interface::Asgi => Some("asgi"),
            Interface::Static => Some("static"),
        }
    }
}

/// Where a connection goes after `101 Switching Protocols`: the sending end of a channel
/// whose receiver gets the [`crate::io::Switched`] connection once the 101 is written.
pub struct OnUpgrade(pub tokio::sync::oneshot::Sender<crate::io::Switched>);

impl fmt::Debug for OnUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnUpgrade")
    }
}

impl<B> Response<B> {
    /// The same response with its body converted (a layer wrapping another's body type).
    pub fn map_body<C>(self, f: impl FnOnce(B) -> C) -> Response<C> {
        Response {
            status: self.status,
            reason: self.reason,
            headers: self.headers,
            close: self.close,
            upgrade: self.upgrade,
            interface: self.interface,
            body: f(self.body),
        }
    }

    /// A response with no header fields yet.
    pub fn new(status: u16, body: B) -> Self {
        Response {
            status,
            reason: None,
            headers: HeaderBlock::with_capacity(256),
            close: false,
            upgrade: None,
            interface: Interface::Unknown,
            body,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{HeaderBlock, HeaderError, RequestHead};
    use crate::guard::{Guard, Limits};

    fn head(raw: &[u8]) -> RequestHead {
        let mut g = Guard::new(Limits::default());
        let n = g.scan(raw).unwrap();
        RequestHead::new(
            bytes::Bytes::copy_from_slice(&raw[..n]),
            g.take_head().unwrap(),
        )
    }

    #[test]
    fn fields_are_replaced_added_and_the_host_moved() {
        let h = head(
            b"GET http://a.example:1/p HTTP/1.1\r\nHost: b.example\r\nX-Request-ID: one\r\n\
X-Other: 1\r\nx-request-id: two\r\n\r\n",
        );
        assert_eq!(h.host(), Some(&b"a.example:1"[..]));
        let h = h.with_fields(&[
            (b"Host", b"c.example", true),
            (b"X-Request-ID", b"new", false),
        ]);
        let fields: Vec<_> = h.fields().collect();
        assert_eq!(
            fields,
            [
                (&b"Host"[..], &b"c.example"[..]),
                (b"X-Request-ID", b"new"),
                (b"X-Other", b"1"),
            ]
        );
        assert_eq!(h.host(), Some(&b"c.example"[..]));
        assert_eq!(h.target(), b"http://a.example:1/p");
        // A field the head does not have is added at the end.
        let h = head(b"GET / HTTP/1.0\r\n\r\n").with_fields(&[(b"X-Id", b"7", false)]);
        assert_eq!(h.fields().collect::<Vec<_>>(), [(&b"X-Id"[..], &b"7"[..])]);
        assert_eq!(h.method(), b"GET");
        assert_eq!(h.field_value_bytes(0), &b"7"[..]);
    }

    #[test]
    fn the_request_id_field_is_noted() {
        let mut h = HeaderBlock::default();
        assert!(!h.has_field(b"X-Request-ID") && !h.has_field(b"X-Trace"));
        h.push(b"x-request-id", b"a").unwrap();
        h.push(b"X-Trace", b"b").unwrap();
        assert!(h.has_field(b"X-Request-ID") && h.has_field(b"x-trace"));
    }

    #[test]
    fn header_block_encodes_checks_and_notes() {
        let mut h = HeaderBlock::default();
        h.push(b"Content-Type", b"text/plain").unwrap();
        h.push(b"Content-Length", b"13").unwrap();
        h.push(b"X-Empty", b"").unwrap();
        assert_eq!(h.push(b"Bad Name", b"x"), Err(HeaderError::Name));
        assert_eq!(h.push(b"X", b"a\r\nInjected: 1"), Err(HeaderError::Value));
        assert_eq!(
            h.as_bytes(),
            b"Content-Type: text/plain\r\nContent-Length: 13\r\nX-Empty: \r\n"
        );
        assert_eq!(h.content_length(), Some(13));
        assert!(!h.has_date() && !h.has_server());
        let pairs: Vec<_> = h.iter().collect();
        assert_eq!(pairs[0], (&b"Content-Type"[..], &b"text/plain"[..]));
        assert_eq!(pairs[2], (&b"X-Empty"[..], &b""[..]));
        assert_eq!(h.to_header_map().get("content-length").unwrap(), "13");
    }
}
