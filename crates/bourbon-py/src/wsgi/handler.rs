//! The connection-side half of the WSGI adapter: turns a hyper request into a [`Job`] for a
//! Python thread and the thread's messages back into a hyper response.
//!
//! It runs on the worker's runtime thread and never touches Python. It owns body
//! pre-buffering (small bodies are read completely before the application is called, so a slow
//! uploader never holds a Python thread), the on-demand body reader (which is what makes
//! `Expect: 100-continue` follow the application's first read), and the response body type that
//! enforces the declared Content-Length.

use std::rc::Rc;
use std::sync::Arc;

use bourbon_server::access_log::AccessLog;

use crate::pool::{Busy, Work};
use bourbon_server::io::ConnShared;
use bourbon_server::serve::{ConnInfo, Handler, HandlerFuture, Local as ServerLocal};
use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, SERVER, TRANSFER_ENCODING};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use pyo3::Python;

use super::body::{AccessRecord, BodyAbort, BodyKind, InflightToken, ResponseBody};
use super::call::{self, AppContext};
use super::message::{BodyError, BodySource, Demand, First, Head, Job, Local, Reply, BODY_QUEUE};

/// Settings the handler needs, fixed at start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HandlerConfig {
    /// Bodies up to this many bytes are read completely before the app is called.
    pub(crate) post_buffering: u64,
}

/// The WSGI [`Handler`]: hands requests to the Python thread pool.
pub(crate) struct WsgiHandler {
    pub(crate) work: mpsc::Sender<Work>,
    pub(crate) config: HandlerConfig,
    pub(crate) access_log: Option<Arc<AccessLog>>,
    /// Set with `--threads 1`: the application is called on this (the connection) thread
    /// when no Python thread is busy, saving two thread switches per request. Only requests
    /// whose body is already complete go inline, so the app never waits on the network here.
    pub(crate) inline: Option<Arc<AppContext>>,
    pub(crate) busy: Busy,
}

impl Handler for WsgiHandler {
    type Body = ResponseBody;
    type BodyError = BodyAbort;

    fn call(&self, req: Request<Incoming>, conn: &Rc<ConnInfo>) -> HandlerFuture<ResponseBody> {
        let token = InflightToken::new(&conn.shared);
        let work = self.work.clone();
        let config = self.config;
        let inline = self.inline.clone();
        let busy = self.busy.clone();
        let remote = conn.remote.clone();
        let local = match &conn.local {
            ServerLocal::Tcp(addr) => Local::Tcp(*addr),
            ServerLocal::Unix(path) => Local::Unix(Arc::from(&**path)),
        };
        let shared = conn.shared.clone();
        let access = self.access_log.as_ref().map(|log| {
            Box::new(AccessRecord {
                log: log.clone(),
                remote: remote.ip.to_string(),
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
            let pool = Pool { work, inline, busy };
            let resp = respond(req, pool, config, remote, local, shared, token).await;
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

/// Where a request's Python work goes.
struct Pool {
    work: mpsc::Sender<Work>,
    inline: Option<Arc<AppContext>>,
    busy: Busy,
}

impl Pool {
    /// Run the application for `job`: inline when allowed and nothing else is running (so
    /// with `--threads 1` the app still never runs on two threads at once), else on a Python
    /// thread. False if the pool is gone (shutting down).
    async fn dispatch(&self, job: Job) -> bool {
        let inline_ok = matches!(job.body, BodySource::Buffered(_)) && self.busy.idle();
        if let (Some(ctx), true) = (self.inline.as_ref(), inline_ok) {
            let handoff = Python::attach(|py| call::handle(py, ctx, job, true));
            return match handoff {
                Some(h) => self.queue(Work::Continue(h)).await,
                None => true,
            };
        }
        self.queue(Work::Request(job)).await
    }

    async fn queue(&self, work: Work) -> bool {
        self.busy.enter();
        if self.work.send(work).await.is_ok() {
            true
        } else {
            // Nobody will take it: undo the count so inline calls are not blocked forever.
            self.busy.leave();
            false
        }
    }
}

async fn respond(
    req: Request<Incoming>,
    pool: Pool,
    config: HandlerConfig,
    remote: bourbon_server::serve::Remote,
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
    let (reply, first) = Reply::new();
    let job = Job {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        remote,
        local,
        body,
        reply,
    };
    if !pool.dispatch(job).await {
        return error_response(StatusCode::SERVICE_UNAVAILABLE, token);
    }
    match first.await {
        Ok(First::Full(head, bytes)) => build(head, BodyKind::Full(Some(bytes)), token, facts),
        Ok(First::Stream(head, chunk, rx)) => {
            build(head, BodyKind::stream(rx, chunk), token, facts)
        }
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
