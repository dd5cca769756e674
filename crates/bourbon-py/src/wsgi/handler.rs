//! The connection-side half of the WSGI adapter: turns a hyper request into a [`Job`] for a
//! Python thread and the thread's messages back into a hyper response.
//!
//! It runs on the worker's runtime thread and never touches Python. It owns body
//! pre-buffering (small bodies are read completely before the application is called, so a slow
//! uploader never holds a Python thread), the on-demand body reader (which is what makes
//! `Expect: 100-continue` follow the application's first read), and the response body type that
//! enforces the declared Content-Length.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bourbon_server::access_log::{AccessLog, Entry};
use bourbon_server::io::ConnShared;
use bourbon_server::log;
use bourbon_server::serve::{ConnInfo, Handler, HandlerFuture, Local as ServerLocal, Peer};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, SERVER, TRANSFER_ENCODING};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::message::{
    BodyError, BodySource, Demand, FileSlice, Head, Job, Local, Msg, BODY_QUEUE, RESPONSE_QUEUE,
};

/// Size of one read from a file sent through `wsgi.file_wrapper`.
const FILE_CHUNK: usize = 256 * 1024;

/// Settings the handler needs, fixed at start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HandlerConfig {
    /// Bodies up to this many bytes are read completely before the app is called.
    pub(crate) post_buffering: u64,
}

/// The WSGI [`Handler`]: hands requests to the Python thread pool.
pub(crate) struct WsgiHandler {
    pub(crate) jobs: mpsc::Sender<Job>,
    pub(crate) config: HandlerConfig,
    pub(crate) access_log: Option<Arc<AccessLog>>,
}

/// What the access log needs about a request, captured only when the log is on.
struct AccessRecord {
    log: Arc<AccessLog>,
    remote: String,
    method: http::Method,
    target: String,
    version: http::Version,
    request_headers: http::HeaderMap,
    response_headers: Option<http::HeaderMap>,
    status: u16,
    started: std::time::SystemTime,
    clock: std::time::Instant,
}

impl AccessRecord {
    fn write(&self, sent: u64) {
        let version = match self.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        self.log.write(&Entry {
            remote: &self.remote,
            method: self.method.as_str(),
            target: &self.target,
            version,
            status: self.status,
            response_bytes: Some(sent),
            request_headers: &self.request_headers,
            response_headers: self.response_headers.as_ref(),
            started: self.started,
            duration: self.clock.elapsed(),
        });
    }
}

/// Marks a request as in flight on its connection until the response body is dropped
/// (written out or abandoned), which is when the keep-alive clock may start.
struct InflightToken(Rc<ConnShared>);

impl InflightToken {
    fn new(shared: &Rc<ConnShared>) -> Self {
        shared.request_started();
        InflightToken(shared.clone())
    }
}

impl Drop for InflightToken {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

impl Handler for WsgiHandler {
    type Body = ResponseBody;
    type BodyError = BodyAbort;

    fn call(&self, req: Request<Incoming>, conn: &Rc<ConnInfo>) -> HandlerFuture<ResponseBody> {
        let token = InflightToken::new(&conn.shared);
        let jobs = self.jobs.clone();
        let config = self.config;
        let peer = match conn.peer {
            Peer::Tcp(addr) => Some(addr),
            Peer::Unix => None,
        };
        let local = match &conn.local {
            ServerLocal::Tcp(addr) => Local::Tcp(*addr),
            ServerLocal::Unix(path) => Local::Unix(Arc::from(&**path)),
        };
        let shared = conn.shared.clone();
        let access = self.access_log.as_ref().map(|log| {
            Box::new(AccessRecord {
                log: log.clone(),
                remote: peer.map(|a| a.ip().to_string()).unwrap_or_default(),
                method: req.method().clone(),
                target: req
                    .uri()
                    .path_and_query()
                    .map_or_else(|| req.uri().to_string(), |pq| pq.as_str().to_owned()),
                version: req.version(),
                request_headers: if log.format().needs_request_headers() {
                    req.headers().clone()
                } else {
                    http::HeaderMap::new()
                },
                response_headers: None,
                status: 0,
                started: std::time::SystemTime::now(),
                clock: std::time::Instant::now(),
            })
        });
        Box::pin(async move {
            let resp = respond(req, jobs, config, peer, local, shared, token).await;
            match access {
                Some(mut record) => {
                    record.status = resp.status().as_u16();
                    if record.log.format().needs_response_headers() {
                        record.response_headers = Some(resp.headers().clone());
                    }
                    let (parts, mut body) = resp.into_parts();
                    body.access = Some(record);
                    Response::from_parts(parts, body)
                }
                None => resp,
            }
        })
    }
}

async fn respond(
    req: Request<Incoming>,
    jobs: mpsc::Sender<Job>,
    config: HandlerConfig,
    peer: Option<std::net::SocketAddr>,
    local: Local,
    shared: Rc<ConnShared>,
    token: InflightToken,
) -> Response<ResponseBody> {
    let (parts, body) = req.into_parts();
    let (body, reader) = match read_body(&parts.headers, body, config.post_buffering, &shared).await
    {
        Ok(b) => b,
        Err(err) => return error_response(status_for(err, &shared), token),
    };
    let facts = RequestFacts {
        is_head: parts.method == http::Method::HEAD,
        http10: parts.version == http::Version::HTTP_10,
        reader,
    };
    let (reply, mut rx) = mpsc::channel(RESPONSE_QUEUE);
    let job = Job {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        peer,
        local,
        body,
        reply,
    };
    if jobs.send(job).await.is_err() {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, token);
    }
    match rx.recv().await {
        Some(Msg::Full(head, bytes)) => build(head, BodyKind::Full(Some(bytes)), token, facts),
        Some(Msg::Head(head, first)) => build(
            head,
            BodyKind::Stream {
                rx,
                first,
                file: None,
            },
            token,
            facts,
        ),
        _ => {
            let status = match shared.reject() {
                Some(r) => {
                    StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                }
                None => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error_response(status, token)
        }
    }
}

fn status_for(err: BodyError, shared: &ConnShared) -> StatusCode {
    let code = match (err, shared.reject()) {
        (BodyError::Rejected(code), _) => code,
        (_, Some(r)) => r.status,
        (BodyError::Broken, None) => 400,
    };
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

fn has_body(headers: &http::HeaderMap) -> bool {
    if headers.contains_key(TRANSFER_ENCODING) {
        return true;
    }
    match headers.get(CONTENT_LENGTH) {
        Some(v) => v.as_bytes() != b"0",
        None => false,
    }
}

fn expects_continue(headers: &http::HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Read what should be read before the application runs.
///
/// No body: nothing to do. `Expect: 100-continue`: nothing is read until the app asks. Else
/// the body is read up to `post_buffering` bytes; if it ends there the app gets it whole and
/// never waits on the network, otherwise the rest streams on demand.
async fn read_body(
    headers: &http::HeaderMap,
    mut body: Incoming,
    post_buffering: u64,
    shared: &Rc<ConnShared>,
) -> Result<(BodySource, Option<BodyReader>), BodyError> {
    // A body read fails either because the guard rejected the rest (then its status is the
    // answer) or because the client broke off.
    let broken = |shared: &ConnShared| match shared.reject() {
        Some(r) => BodyError::Rejected(r.status),
        None => BodyError::Broken,
    };
    if !has_body(headers) {
        return Ok((BodySource::Buffered(Bytes::new()), None));
    }
    let mut first = Vec::new();
    let mut buffered: u64 = 0;
    let demand = Arc::new(Demand::default());
    if !expects_continue(headers) && post_buffering > 0 {
        while buffered <= post_buffering {
            match body.frame().await {
                None => {
                    return Ok((BodySource::Buffered(concat(first, buffered)), None));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buffered += data.len() as u64;
                        first.push(data);
                    }
                }
                Some(Err(_)) => return Err(broken(shared)),
            }
        }
        // Too big to buffer: the rest streams, and reading may go on at once.
        demand.ask();
    }
    let (tx, chunks) = mpsc::channel(BODY_QUEUE);
    let wait = demand.clone();
    let shared = shared.clone();
    let task = tokio::task::spawn_local(async move {
        wait.wait().await;
        loop {
            let item = match body.frame().await {
                None => break,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => Ok(data),
                    Err(_) => continue,
                },
                Some(Err(_)) => Err(broken(&shared)),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    let reader = BodyReader {
        task,
        demand: demand.clone(),
    };
    Ok((
        BodySource::Streaming {
            first,
            demand,
            chunks,
        },
        Some(reader),
    ))
}

/// The task fetching a streamed request body. It ends with the response: dropping it gives the
/// unread rest of the body back to hyper, which then closes the connection instead of waiting
/// for bytes nobody will read.
pub(crate) struct BodyReader {
    task: tokio::task::JoinHandle<()>,
    demand: Arc<Demand>,
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `build` needs to know about the request.
struct RequestFacts {
    is_head: bool,
    http10: bool,
    reader: Option<BodyReader>,
}

fn concat(parts: Vec<Bytes>, total: u64) -> Bytes {
    if parts.len() == 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let mut buf = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
    for p in parts {
        buf.extend_from_slice(&p);
    }
    buf.freeze()
}

fn error_response(status: StatusCode, token: InflightToken) -> Response<ResponseBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut resp = Response::new(ResponseBody::new(
        BodyKind::Full(Some(Bytes::from(text))),
        None,
        token,
    ));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(SERVER, HeaderValue::from_static(crate::SERVER_HEADER));
    if status.is_client_error()
        || status.is_server_error() && status != StatusCode::INTERNAL_SERVER_ERROR
    {
        // After a rejected or broken body the connection's framing is unknown: close it.
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn build(
    head: Head,
    kind: BodyKind,
    token: InflightToken,
    facts: RequestFacts,
) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(head.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Close after this response when the framing of what follows is unknown: the client may
    // still send a body nobody asked for (Expect: 100-continue never answered), or an
    // HTTP/1.0 body without a length can only end with the connection (RFC 9112 §6.3).
    let unread_expect = facts.reader.as_ref().is_some_and(|r| !r.demand.asked());
    let close_delimited =
        facts.http10 && head.content_length.is_none() && !matches!(kind, BodyKind::Full(_));
    let close = head.close || unread_expect || close_delimited;
    let mut body = ResponseBody::new(kind, head.content_length, token);
    body.reader = facts.reader;
    let bodiless =
        facts.is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    if !bodiless {
        body.sendfile = Some(body._token.0.clone());
    }
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Some(reason) = head.reason {
        if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason) {
            resp.extensions_mut().insert(phrase);
        }
    }
    let h = resp.headers_mut();
    h.reserve(head.headers.len() + 2);
    let mut has_server = false;
    for (name, value) in head.headers {
        if name == SERVER {
            has_server = true;
        }
        h.append(name, value);
    }
    if !has_server {
        h.insert(SERVER, HeaderValue::from_static(crate::SERVER_HEADER));
    }
    if close {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Ends a response body early: hyper closes the connection, so the client sees a truncated
/// response rather than a silently wrong one.
#[derive(Debug)]
pub(crate) struct BodyAbort(&'static str);

impl std::fmt::Display for BodyAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyAbort {}

enum BodyKind {
    Full(Option<Bytes>),
    Stream {
        rx: mpsc::Receiver<Msg>,
        first: Option<Bytes>,
        file: Option<FileStream>,
    },
}

/// The response body handed to hyper.
pub(crate) struct ResponseBody {
    kind: BodyKind,
    /// Set when file regions may go out with sendfile(2) on this connection; unset for HEAD
    /// and for statuses without a body, whose bodies hyper never writes.
    sendfile: Option<Rc<ConnShared>>,
    /// Bytes still owed under the declared Content-Length, if one was declared.
    owed: Option<u64>,
    truncated: bool,
    done: bool,
    /// Bytes handed to hyper, for the access log.
    sent: u64,
    access: Option<Box<AccessRecord>>,
    reader: Option<BodyReader>,
    _token: InflightToken,
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The body is dropped when it is written out or abandoned: the request is over.
        if let Some(record) = self.access.take() {
            record.write(self.sent);
        }
    }
}

impl ResponseBody {
    fn new(kind: BodyKind, declared: Option<u64>, token: InflightToken) -> Self {
        ResponseBody {
            kind,
            sendfile: None,
            owed: declared,
            truncated: false,
            done: false,
            sent: 0,
            access: None,
            reader: None,
            _token: token,
        }
    }

    /// Apply the declared length: a longer body is cut (PEP 3333 lets the server truncate; the
    /// framing stays right, so keep-alive survives), and the cut is logged once.
    fn limit(&mut self, mut data: Bytes) -> Option<Bytes> {
        if let Some(owed) = self.owed.as_mut() {
            let len = data.len() as u64;
            if len > *owed {
                if !self.truncated {
                    self.truncated = true;
                    log::warn(format_args!(
                        "response body longer than its Content-Length; extra bytes dropped"
                    ));
                }
                data.truncate(usize::try_from(*owed).unwrap_or(usize::MAX));
            }
            *owed -= data.len() as u64;
        }
        if data.is_empty() {
            None
        } else {
            Some(data)
        }
    }

    /// The body ended: if it is shorter than declared the connection must close (RFC 9112
    /// §6.3: the client would otherwise wait for bytes that never come).
    fn finish(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyAbort>>> {
        self.done = true;
        match self.owed {
            Some(n) if n > 0 => {
                log::warn(format_args!(
                    "response body shorter than its Content-Length by {n} bytes; closing the connection"
                ));
                Poll::Ready(Some(Err(BodyAbort("body shorter than Content-Length"))))
            }
            _ => Poll::Ready(None),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyAbort;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyAbort>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            let next = match &mut this.kind {
                BodyKind::Full(bytes) => match bytes.take() {
                    Some(b) => Step::Data(b),
                    None => Step::End,
                },
                BodyKind::Stream { rx, first, file } => {
                    if let Some(b) = first.take() {
                        Step::Data(b)
                    } else if let Some(f) = file {
                        match f.poll_chunk(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(Some(b))) => Step::Data(b),
                            Poll::Ready(Ok(None)) => {
                                *file = None;
                                continue;
                            }
                            Poll::Ready(Err(e)) => {
                                log::error(format_args!("file_wrapper read failed: {e}"));
                                Step::Abort
                            }
                        }
                    } else {
                        match rx.poll_recv(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Some(Msg::Data(b))) => Step::Data(b),
                            Poll::Ready(Some(Msg::File(mut slice))) => {
                                if let Some(owed) = this.owed {
                                    slice.len = slice.len.min(owed);
                                }
                                *file = Some(FileStream::new(slice, this.sendfile.as_ref()));
                                continue;
                            }
                            Poll::Ready(Some(Msg::End)) => Step::End,
                            Poll::Ready(Some(_)) | Poll::Ready(None) => Step::Abort,
                        }
                    }
                }
            };
            match next {
                Step::Data(b) => {
                    if let Some(b) = this.limit(b) {
                        this.sent += b.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(b))));
                    }
                    if this.owed == Some(0) && matches!(this.kind, BodyKind::Full(_)) {
                        return this.finish();
                    }
                }
                Step::End => return this.finish(),
                Step::Abort => {
                    this.done = true;
                    return Poll::Ready(Some(Err(BodyAbort("application error mid-response"))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A body still owing bytes is not at its end: hyper must poll once more so that
        // `finish` sees the shortfall, logs it and closes the connection.
        self.done || (matches!(self.kind, BodyKind::Full(None)) && self.owed.unwrap_or(0) == 0)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.kind, self.owed) {
            (_, Some(n)) => SizeHint::with_exact(n),
            (BodyKind::Full(Some(b)), None) => SizeHint::with_exact(b.len() as u64),
            (BodyKind::Full(None), None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

enum Step {
    Data(Bytes),
    End,
    Abort,
}

/// Sends a file region. On a plain socket the region is queued on the connection and the body
/// yields placeholder bytes that the connection turns into sendfile(2) calls: zero copies,
/// and memory stays flat however large the file. Elsewhere it falls back to positioned reads
/// on the blocking pool, one bounded chunk at a time, never blocking the runtime thread.
struct FileStream {
    fd: Arc<std::os::fd::OwnedFd>,
    offset: u64,
    remaining: u64,
    zero_copy: bool,
    inflight: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileStream {
    fn new(slice: FileSlice, sendfile: Option<&Rc<ConnShared>>) -> Self {
        let fd = Arc::new(slice.fd);
        if let Some(shared) = sendfile {
            shared.queue_file(fd.clone(), slice.offset, slice.len);
        }
        FileStream {
            fd,
            offset: slice.offset,
            remaining: slice.len,
            zero_copy: sendfile.is_some(),
            inflight: None,
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if self.zero_copy {
            if self.remaining == 0 {
                return Poll::Ready(Ok(None));
            }
            let n = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(bourbon_server::io::PLACEHOLDER_LEN);
            self.remaining -= n as u64;
            return Poll::Ready(Ok(Some(bourbon_server::io::file_placeholder(n))));
        }
        loop {
            if let Some(handle) = self.inflight.as_mut() {
                let res = match Pin::new(handle).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(r)) => r,
                    Poll::Ready(Err(e)) => Err(io::Error::other(e)),
                };
                self.inflight = None;
                let bytes = res?;
                if bytes.is_empty() {
                    // The file shrank under us: what was promised cannot be sent.
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than expected",
                    )));
                }
                self.offset += bytes.len() as u64;
                self.remaining -= (bytes.len() as u64).min(self.remaining);
                return Poll::Ready(Ok(Some(bytes)));
            }
            if self.remaining == 0 {
                return Poll::Ready(Ok(None));
            }
            let fd = self.fd.clone();
            let offset = self.offset;
            let want = usize::try_from(self.remaining.min(FILE_CHUNK as u64)).unwrap_or(FILE_CHUNK);
            self.inflight = Some(tokio::task::spawn_blocking(move || {
                pread(&fd, offset, want)
            }));
        }
    }
}

#[allow(unsafe_code)]
fn pread(fd: &std::os::fd::OwnedFd, offset: u64, want: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; want];
    let off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: `buf` is a live, writable allocation of `want` bytes and the fd is open for the
    // lifetime of the borrow.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), want, off) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(usize::try_from(n).unwrap_or(0));
    Ok(Bytes::from(buf))
}

use std::future::Future;
