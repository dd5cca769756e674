//! The connection-side half of the WSGI adapter: turns a request into a [`Job`] for a
//! Python thread and the thread's messages back into a response.
//!
//! It runs on the worker's runtime thread and never touches Python. It owns body
//! pre-buffering (small bodies are read completely before the application is called, so a slow
//! uploader never holds a Python thread), the on-demand body reader (which is what makes
//! `Expect: 100-continue` follow the application's first read), and the response body type that
//! enforces the declared Content-Length.

use std::rc::Rc;
use std::sync::Arc;

use crate::pool::{Busy, Work};
use bourbon_server::io::ConnShared;
use bourbon_server::request::{Request, RequestBody, RequestHead, Response};
use bourbon_server::serve::{ConnInfo, Handler, HandlerFuture, Scheme};
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use tokio::sync::mpsc;

use pyo3::Python;

use super::body::{BodyKind, DeferredClose, ResponseBody};
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
    pub(crate) pool: Rc<Pool>,
    pub(crate) config: HandlerConfig,
}

impl Handler for WsgiHandler {
    type Body = ResponseBody;

    /// Full when every Python thread has work: then this worker stops accepting (see
    /// [`Handler::has_capacity`]). Inline calls never count: they run on this very thread,
    /// which accepts nothing while they run.
    fn has_capacity(&self) -> bool {
        !self.pool.busy.full()
    }

    fn capacity_changed(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        Box::pin(self.pool.busy.changed())
    }

    fn call(&self, req: Request, conn: &Rc<ConnInfo>) -> HandlerFuture<ResponseBody> {
        // One (non-atomic) count for the pool rather than a clone of each atomic handle in it.
        let pool = self.pool.clone();
        let config = self.config;
        let remote = conn.remote.clone();
        let local = conn.local.clone();
        let shared = conn.shared.clone();
        let scheme = conn.scheme;
        Box::pin(respond(req, pool, config, remote, (local, scheme), shared))
    }
}

/// Where a request's Python work goes: the worker's one pool, shared by its requests.
pub(crate) struct Pool {
    pub(crate) work: mpsc::Sender<Work>,
    /// Set with `--threads 1`: the application is called on this (the connection) thread
    /// when no Python thread is busy, saving two thread switches per request. Only requests
    /// whose body is already complete go inline, so the app never waits on the network here.
    pub(crate) inline: Option<Arc<AppContext>>,
    pub(crate) busy: Busy,
}

impl Pool {
    /// Run the application for `job`: inline when allowed and nothing else is running (so
    /// with `--threads 1` the app still never runs on two threads at once), else on a Python
    /// thread. False if the pool is gone (shutting down).
    ///
    /// Not `async`: the future of every request holds the state of this call, and a queue
    /// that has room (the usual case) needs no waiting; only a full queue gets a (boxed)
    /// future. That keeps the request's future small enough for the allocator's fast path.
    fn dispatch(&self, job: Job) -> Dispatched {
        let inline_ok = matches!(job.body, BodySource::Buffered(_)) && self.busy.idle();
        if let (Some(ctx), true) = (self.inline.as_ref(), inline_ok) {
            let handoff = Python::attach(|py| call::handle(py, ctx, job, true));
            return match handoff {
                Some(h) => self.queue(Work::Continue(h)),
                None => Dispatched::Done(true),
            };
        }
        self.queue(Work::Request(job))
    }

    fn queue(&self, work: Work) -> Dispatched {
        self.busy.enter();
        match self.work.try_send(work) {
            Ok(()) => Dispatched::Done(true),
            Err(mpsc::error::TrySendError::Full(work)) => {
                let (tx, busy) = (self.work.clone(), self.busy.clone());
                Dispatched::Wait(Box::pin(async move {
                    if tx.send(work).await.is_ok() {
                        true
                    } else {
                        busy.leave();
                        false
                    }
                }))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // Nobody will take it: undo the count so inline calls are not blocked forever.
                self.busy.leave();
                Dispatched::Done(false)
            }
        }
    }
}

/// How [`Pool::dispatch`] went: done (true if the work was taken), or waiting for room in the
/// queue.
enum Dispatched {
    Done(bool),
    Wait(std::pin::Pin<Box<dyn std::future::Future<Output = bool>>>),
}

impl Dispatched {
    async fn taken(self) -> bool {
        match self {
            Dispatched::Done(taken) => taken,
            Dispatched::Wait(wait) => wait.await,
        }
    }
}

async fn respond(
    req: Request,
    pool: Rc<Pool>,
    config: HandlerConfig,
    remote: Arc<bourbon_server::serve::Remote>,
    (local, scheme): (Local, Scheme),
    shared: Rc<ConnShared>,
) -> Response<ResponseBody> {
    let Request { head, body, .. } = req;
    // Most requests have no body: the reading machinery (and its share of this future's
    // size) is boxed and only built when there is one.
    let read = if body.is_empty() {
        Ok((BodySource::Buffered(Bytes::new()), None))
    } else {
        Box::pin(read_body(&head, body, config.post_buffering, &shared)).await
    };
    let (body, reader) = match read {
        Ok(b) => b,
        Err(err) => return error_response(status_for(err, &shared)),
    };
    let facts = RequestFacts { reader };
    let (reply, first) = Reply::new();
    let handle = reply.clone();
    let job = Job {
        head,
        remote,
        local,
        scheme,
        body,
        reply,
    };
    if !pool.dispatch(job).taken().await {
        return error_response(503);
    }
    let first = first.await;
    let mut resp = match first {
        Ok(First::Full(head, bytes)) => build(head, BodyKind::Full(Some(bytes)), facts),
        Ok(First::Stream(head, chunk, rx)) => build(head, BodyKind::stream(rx, chunk), facts),
        _ => {
            let status = match shared.reject() {
                Some(r) => r.status,
                None => 500,
            };
            error_response(status)
        }
    };
    // Whatever the response, a deferred close() goes with it and runs when it is written.
    if let Some(closer) = handle.take_closer() {
        resp.body.close = Some(DeferredClose { closer, pool });
    }
    resp
}

fn status_for(err: BodyError, shared: &ConnShared) -> u16 {
    match (err, shared.reject()) {
        (BodyError::Rejected(code), _) => code,
        (_, Some(r)) => r.status,
        (BodyError::Broken, None) => 400,
    }
}

/// Read what should be read before the application runs.
///
/// No body: nothing to do. `Expect: 100-continue`: nothing is read until the app asks. Else
/// the body is read up to `post_buffering` bytes; if it ends there the app gets it whole and
/// never waits on the network, otherwise the rest streams on demand.
async fn read_body(
    head: &RequestHead,
    mut body: RequestBody,
    post_buffering: u64,
    shared: &Rc<ConnShared>,
) -> Result<(BodySource, Option<BodyReader>), BodyError> {
    // A body read fails either because the guard rejected the rest (then its status is the
    // answer) or because the client broke off.
    let broken = |shared: &ConnShared| match shared.reject() {
        Some(r) => BodyError::Rejected(r.status),
        None => BodyError::Broken,
    };
    if body.is_empty() {
        return Ok((BodySource::Buffered(Bytes::new()), None));
    }
    let mut first = Vec::new();
    let mut buffered: u64 = 0;
    let demand = Arc::new(Demand::default());
    if !head.expects_continue() && post_buffering > 0 {
        while buffered <= post_buffering {
            match body.chunk().await {
                None => {
                    return Ok((BodySource::Buffered(concat(first, buffered)), None));
                }
                Some(Ok(data)) => {
                    buffered += data.len() as u64;
                    first.push(data);
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
            let item = match body.chunk().await {
                None => break,
                Some(Ok(data)) => Ok(data),
                Some(Err(_)) => Err(broken(&shared)),
            };
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    let reader = BodyReader { task };
    Ok((
        BodySource::Streaming {
            first,
            demand,
            chunks,
        },
        Some(reader),
    ))
}

/// The task fetching a streamed request body. It ends with the response: dropping it leaves
/// the unread rest of the body to the connection, which drains a small rest or closes.
pub(crate) struct BodyReader {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BodyReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `build` needs to know about the request.
struct RequestFacts {
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

fn error_response(status: u16) -> Response<ResponseBody> {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let text = format!("{status} {reason}\n");
    let mut resp = Response::new(
        status,
        ResponseBody::new(BodyKind::Full(Some(Bytes::from(text)))),
    );
    resp.interface = bourbon_server::request::Interface::Wsgi;
    let _ = resp
        .headers
        .push(b"Content-Type", b"text/plain; charset=utf-8");
    // After a rejected or broken body the connection's framing is unknown: close it.
    resp.close = (400..500).contains(&status) || status > 500;
    resp
}

fn build(head: Head, kind: BodyKind, facts: RequestFacts) -> Response<ResponseBody> {
    // Framing (an HTTP/1.0 body without a length ends with the connection; a body the client
    // still owes after an unanswered `Expect: 100-continue`) is the driver's to decide.
    let close = head.close;
    let mut body = ResponseBody::new(kind);
    body.reader = facts.reader;
    Response {
        status: head.status,
        reason: head.reason,
        headers: head.headers,
        close,
        upgrade: None,
        interface: bourbon_server::request::Interface::Wsgi,
        body,
    }
}
