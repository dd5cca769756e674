//! One HTTP request/response cycle (ASGI spec, "HTTP"), shared by its connection task (which
//! reads the request body on demand and writes the response) and its Python task (which calls
//! `receive()` and `send()`).
//!
//! The two sides never wait for each other while holding anything: the connection side polls
//! [`Cycle::poll_head`] and the response body ([`AsgiBody`]), and queues a
//! [`Work::Settle`] when a waiting `receive()` or `send()` can go on; the Python side changes
//! the state and wakes the connection task (at the next selector wait, inside the runtime).
//!
//! - `receive()` returns a finished awaitable when it can answer at once (a body read before
//!   the application started, the next chunk already read, `http.disconnect`), else an
//!   asyncio future that the connection side resolves. The body is read one step ahead of the
//!   application, never more: a slow application stops the reading and TCP pushes back.
//! - `send()` queues the response's pieces and returns at once while less than
//!   [`HIGH_WATER`] bytes wait for the client; past it, a future resolved when the queue is
//!   down to [`LOW_WATER`]. A client that stops reading so blocks the application's `send()`,
//!   with bounded memory; one that went away makes `send()` raise `ClientDisconnected`
//!   (an `OSError`, spec 2.4).
//! - An application that raises, or returns, before `http.response.start` gets a 500; after
//!   it, the connection is closed mid-response (never a response that looks complete).
//!   Header names and values are checked before anything reaches the wire.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bourbon_server::body::{Body, BodyAbort, Chunk, FileRegion};
use bourbon_server::log;
use bourbon_server::request::{
    HeaderBlock, Interim, PeerWatch, RequestBody, RequestHead, Response,
};
use bourbon_server::serve::ConnInfo;
use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::engine::{self, PyCtx, Work};
use super::scope::ScopeCtx;
use crate::wsgi::input::ClientDisconnected;

/// Above this many queued response bytes, `send()` waits (uvicorn's high-water mark too).
pub(crate) const HIGH_WATER: usize = 64 * 1024;
/// A waiting `send()` goes on once the queue is down to this.
pub(crate) const LOW_WATER: usize = HIGH_WATER / 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No `http.response.start` yet.
    Waiting,
    /// Started; more body to come.
    Started,
    /// The whole response was sent by the application.
    Complete,
    /// Failed before the start: answered with a 500.
    Error500,
    /// Failed after the start: the connection is cut.
    Broken,
}

/// Where reading the request body stands.
#[derive(Default)]
struct Incoming {
    /// The rest of the body, read on demand; `None` once it ended (or there is none).
    body: Option<RequestBody>,
    /// Read, not given to the application yet.
    chunks: VecDeque<Bytes>,
    /// The body's end was seen.
    ended: bool,
    /// The application got the last `http.request` message.
    over: bool,
    /// A `receive()` waits for more of the body.
    wanted: bool,
}

struct State {
    incoming: Incoming,
    /// Futures of `receive()` calls waiting.
    receivers: Vec<Py<PyAny>>,
    phase: Phase,
    status: u16,
    headers: HeaderBlock,
    /// `http.response.start` said trailers follow.
    trailers: bool,
    out: VecDeque<Chunk>,
    out_len: usize,
    /// A `send()` waiting for the client to read.
    sender: Option<Py<PyAny>>,
    /// HEAD, 204 and 304: the body the application sends is dropped (RFC 9110 §6.4.1).
    discard: bool,
    /// The connection side, waiting for the head or the body.
    waker: Option<Waker>,
    /// The client went away, or the response was abandoned.
    gone: bool,
    /// The whole response went to the connection.
    delivered: bool,
    /// The application's task ended.
    app_done: bool,
    /// Informational responses to send before the head (`http.response.early_hint`).
    hints: Vec<HeaderBlock>,
    interim: Interim,
    /// The application's task, kept alive until it ends (asyncio keeps only weak ones).
    task: Option<Py<PyAny>>,
}

/// One request/response cycle.
pub(crate) struct Cycle {
    head: RequestHead,
    conn: Rc<ConnInfo>,
    peer: PeerWatch,
    st: RefCell<State>,
}

impl Cycle {
    /// A cycle for `head`; `first` is the body when it was read before the application
    /// started, else `body` streams on demand.
    pub(crate) fn new(
        head: RequestHead,
        conn: Rc<ConnInfo>,
        body: Option<RequestBody>,
        first: Option<Bytes>,
        interim: Interim,
        peer: PeerWatch,
    ) -> Rc<Self> {
        let mut incoming = Incoming::default();
        match (first, body) {
            (Some(b), _) => {
                incoming.chunks.push_back(b);
                incoming.ended = true;
            }
            (None, Some(body)) => incoming.body = Some(body),
            (None, None) => incoming.ended = true,
        }
        let discard = head.is_head();
        Rc::new(Cycle {
            head,
            conn,
            peer,
            st: RefCell::new(State {
                incoming,
                receivers: Vec::new(),
                phase: Phase::Waiting,
                status: 0,
                headers: HeaderBlock::with_capacity(256),
                trailers: false,
                out: VecDeque::new(),
                out_len: 0,
                sender: None,
                discard,
                waker: None,
                gone: false,
                delivered: false,
                app_done: false,
                hints: Vec::new(),
                interim,
                task: None,
            }),
        })
    }

    /// Read the request body one step ahead of a waiting `receive()`.
    fn pump(self: &Rc<Self>, st: &mut State, cx: &mut Context<'_>) {
        let inc = &mut st.incoming;
        if !inc.wanted || !inc.chunks.is_empty() {
            return;
        }
        let Some(body) = inc.body.as_mut() else {
            return;
        };
        // One chunk, then a look for the end, so the last chunk usually carries
        // `more_body: False` instead of an empty message of its own.
        loop {
            match body.poll_chunk(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    if !data.is_empty() {
                        inc.chunks.push_back(data);
                    }
                    if inc.chunks.len() >= 2 {
                        break;
                    }
                }
                Poll::Ready(None) => {
                    inc.body = None;
                    inc.ended = true;
                    break;
                }
                Poll::Ready(Some(Err(_))) => {
                    inc.body = None;
                    inc.ended = true;
                    st.gone = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        let inc = &mut st.incoming;
        if !inc.chunks.is_empty() || inc.ended {
            inc.wanted = false;
            engine::push(Work::Settle(self.clone()));
        }
    }

    /// Whether the client went away while the application works (and no body read is
    /// pending, which would notice it by itself); if so, waiting `receive()`/`send()` calls
    /// are told.
    fn peer_gone(self: &Rc<Self>, st: &mut State, cx: &mut Context<'_>) -> bool {
        if st.gone {
            return true;
        }
        if st.incoming.body.is_some() || self.peer.poll_closed(cx).is_pending() {
            return false;
        }
        st.gone = true;
        engine::push(Work::Settle(self.clone()));
        true
    }

    /// Send the informational responses the application asked for (before the head).
    fn send_hints(st: &mut State) {
        for h in st.hints.drain(..) {
            st.interim.send(103, &h);
        }
    }

    /// The connection side: the response head, once the application started it.
    fn poll_head(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<Response<AsgiBody>> {
        let mut st = self.st.borrow_mut();
        self.pump(&mut st, cx);
        if !st.hints.is_empty() {
            Self::send_hints(&mut st);
        }
        let phase = st.phase;
        match phase {
            Phase::Waiting if !st.app_done && !self.peer_gone(&mut st, cx) => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Phase::Waiting | Phase::Error500 => {
                st.phase = Phase::Error500;
                st.delivered = true;
                st.incoming.body = None;
                drop(st);
                Poll::Ready(internal_error(self.clone()))
            }
            Phase::Started | Phase::Complete | Phase::Broken => {
                let headers = std::mem::take(&mut st.headers);
                let status = st.status;
                drop(st);
                let mut resp = Response::new(status, AsgiBody::of(self.clone()));
                resp.interface = bourbon_server::request::Interface::Asgi;
                resp.headers = headers;
                Poll::Ready(resp)
            }
        }
    }

    /// The Python side: something changed for a waiting `receive()` or `send()`.
    pub(crate) fn settle(&self, py: Python<'_>) {
        let mut st = self.st.borrow_mut();
        while !st.receivers.is_empty() {
            let Some(msg) = self.next_message(py, &mut st, false) else {
                break;
            };
            let fut = st.receivers.remove(0);
            match resolve(py, &fut, Ok(msg.clone_ref(py))) {
                Ok(true) => {
                    // A disconnect is for every waiting receive().
                    if !is_disconnect(py, &msg) {
                        break;
                    }
                }
                Ok(false) => {
                    // Cancelled: the message goes back for the next receive().
                    unread(py, &mut st, &msg);
                }
                Err(e) => e.print(py),
            }
        }
        if let Some(fut) = st.sender.take() {
            let outcome = if st.gone && !st.delivered {
                Err(ClientDisconnected::new_err("client disconnected"))
            } else if st.out_len <= LOW_WATER || st.delivered {
                Ok(py.None())
            } else {
                st.sender = Some(fut);
                return;
            };
            if let Err(e) = resolve(py, &fut, outcome) {
                e.print(py);
            }
        }
    }

    /// The next message for `receive()`, if there is one now. `asking`: a `receive()` call
    /// (else a settle), which asks the connection to read on when nothing is there.
    fn next_message(&self, py: Python<'_>, st: &mut State, asking: bool) -> Option<Py<PyAny>> {
        let inc = &mut st.incoming;
        if !inc.over {
            if let Some(chunk) = inc.chunks.pop_front() {
                let more = !(inc.chunks.is_empty() && inc.ended);
                inc.over = !more;
                return request_message(py, &chunk, more).ok();
            }
            if inc.ended && !st.gone {
                inc.over = true;
                return request_message(py, b"", false).ok();
            }
            if !st.gone {
                if asking && !inc.wanted {
                    inc.wanted = true;
                    engine::wake_later(st.waker.take());
                }
                return None;
            }
        }
        if st.gone || st.delivered {
            return disconnect_message(py).ok();
        }
        None
    }

    fn wake(st: &mut State) {
        engine::wake_later(st.waker.take());
    }

    /// The application's `receive()`.
    fn receive(&self, py: Python<'_>, ctx: &PyCtx) -> PyResult<Py<PyAny>> {
        let mut st = self.st.borrow_mut();
        if st.receivers.is_empty() {
            if let Some(msg) = self.next_message(py, &mut st, true) {
                return ctx.done_with(py, msg);
            }
        }
        let fut = ctx.future(py)?;
        st.receivers.push(fut.clone_ref(py));
        Ok(fut)
    }

    /// The application's `send(message)`.
    fn send(
        &self,
        py: Python<'_>,
        ctx: &PyCtx,
        message: &Bound<'_, PyDict>,
    ) -> PyResult<Py<PyAny>> {
        let kind = message
            .get_item(intern!(py, "type"))?
            .ok_or_else(|| PyValueError::new_err("an ASGI message needs a 'type'"))?;
        let kind: &str = &kind.extract::<pyo3::pybacked::PyBackedStr>()?;
        let mut st = self.st.borrow_mut();
        if st.gone && !st.delivered {
            return Err(ClientDisconnected::new_err("client disconnected"));
        }
        match kind {
            "http.response.start" => {
                if st.phase != Phase::Waiting {
                    return Err(PyRuntimeError::new_err(
                        "'http.response.start' sent twice (the response has already started)",
                    ));
                }
                let status: u16 = message
                    .get_item(intern!(py, "status"))?
                    .ok_or_else(|| PyValueError::new_err("'http.response.start' needs a 'status'"))?
                    .extract()
                    .map_err(|_| {
                        PyValueError::new_err("the status must be an int from 200 to 999")
                    })?;
                if !(200..=999).contains(&status) {
                    return Err(PyValueError::new_err(format!(
                        "status {status} is not a final status (200 to 999)"
                    )));
                }
                let mut headers = HeaderBlock::with_capacity(256);
                if let Some(list) = message.get_item(intern!(py, "headers"))? {
                    push_headers(&mut headers, &list)?;
                }
                st.trailers = message
                    .get_item(intern!(py, "trailers"))?
                    .map(|t| t.is_truthy())
                    .transpose()?
                    .unwrap_or(false);
                st.status = status;
                st.headers = headers;
                if status == 204 || status == 304 {
                    st.discard = true;
                }
                st.phase = Phase::Started;
                Self::wake(&mut st);
                Ok(ctx.done_none.clone_ref(py))
            }
            "http.response.body" => {
                self.check_started(&st, kind)?;
                let more = flag(message, intern!(py, "more_body"))?;
                if let Some(body) = message.get_item(intern!(py, "body"))? {
                    let data = bytes_of(&body, "body")?;
                    if !data.is_empty() && !st.discard {
                        st.out_len += data.len();
                        st.out.push_back(Chunk::Data(data));
                    }
                }
                if !more && !st.trailers {
                    st.phase = Phase::Complete;
                }
                Self::wake(&mut st);
                self.after_send(py, ctx, &mut st)
            }
            "http.response.trailers" => {
                self.check_started(&st, kind)?;
                if !st.trailers {
                    return Err(PyRuntimeError::new_err(
                        "'http.response.trailers' sent, but 'http.response.start' did not announce trailers",
                    ));
                }
                let more = flag(message, intern!(py, "more_trailers"))?;
                let mut block = HeaderBlock::with_capacity(64);
                if let Some(list) = message.get_item(intern!(py, "headers"))? {
                    push_headers(&mut block, &list)?;
                }
                // Only a client that said it takes them (`TE: trailers`, RFC 9110 §10.1.4)
                // gets them; to others they would be fields it may not know to read.
                if !block.as_bytes().is_empty() && !st.discard && accepts_trailers(&self.head) {
                    st.out.push_back(Chunk::Trailers(block));
                }
                if !more {
                    st.phase = Phase::Complete;
                }
                Self::wake(&mut st);
                Ok(ctx.done_none.clone_ref(py))
            }
            "http.response.pathsend" => {
                self.check_started(&st, kind)?;
                let path: std::path::PathBuf = message
                    .get_item(intern!(py, "path"))?
                    .ok_or_else(|| {
                        PyValueError::new_err("'http.response.pathsend' needs a 'path'")
                    })?
                    .extract()?;
                let file = std::fs::File::open(&path)?;
                let len = file.metadata()?.len();
                if !st.discard && len > 0 {
                    st.out.push_back(Chunk::File(FileRegion {
                        file: Arc::new(file),
                        offset: 0,
                        len,
                        transient: false,
                    }));
                }
                st.phase = Phase::Complete;
                Self::wake(&mut st);
                Ok(ctx.done_none.clone_ref(py))
            }
            "http.response.zerocopysend" => {
                self.check_started(&st, kind)?;
                let more = flag(message, intern!(py, "more_body"))?;
                let fileobj = message.get_item(intern!(py, "file"))?.ok_or_else(|| {
                    PyValueError::new_err("'http.response.zerocopysend' needs a 'file'")
                })?;
                let file = dup_file(&fileobj)?;
                let size = file.metadata()?.len();
                let offset: u64 = match message.get_item(intern!(py, "offset"))? {
                    Some(o) if !o.is_none() => o.extract()?,
                    _ => fileobj.call_method0(intern!(py, "tell"))?.extract()?,
                };
                let count: u64 = match message.get_item(intern!(py, "count"))? {
                    Some(c) if !c.is_none() => c.extract()?,
                    _ => size.saturating_sub(offset),
                };
                if !st.discard && count > 0 {
                    st.out.push_back(Chunk::File(FileRegion {
                        file: Arc::new(file),
                        offset,
                        len: count,
                        transient: false,
                    }));
                }
                if !more && !st.trailers {
                    st.phase = Phase::Complete;
                }
                Self::wake(&mut st);
                self.after_send(py, ctx, &mut st)
            }
            "http.response.early_hint" => {
                if st.phase == Phase::Waiting {
                    let mut block = HeaderBlock::with_capacity(128);
                    if let Some(links) = message.get_item(intern!(py, "links"))? {
                        for link in links.try_iter()? {
                            let link = bytes_of(&link?, "link")?;
                            block
                                .push(b"Link", &link)
                                .map_err(|_| PyValueError::new_err("invalid Link value"))?;
                        }
                    }
                    st.hints.push(block);
                    Self::wake(&mut st);
                }
                Ok(ctx.done_none.clone_ref(py))
            }
            other => Err(PyValueError::new_err(format!(
                "unexpected ASGI message type '{other}' on an HTTP connection"
            ))),
        }
    }

    fn check_started(&self, st: &State, kind: &str) -> PyResult<()> {
        match st.phase {
            Phase::Started => Ok(()),
            Phase::Waiting => Err(PyRuntimeError::new_err(format!(
                "'{kind}' sent before 'http.response.start'"
            ))),
            _ => Err(PyRuntimeError::new_err(format!(
                "'{kind}' sent after the response completed"
            ))),
        }
    }

    /// What `send()` returns for a body: at once, or a future when the client lags.
    fn after_send(&self, py: Python<'_>, ctx: &PyCtx, st: &mut State) -> PyResult<Py<PyAny>> {
        if st.out_len <= HIGH_WATER || st.delivered {
            return Ok(ctx.done_none.clone_ref(py));
        }
        let fut = ctx.future(py)?;
        st.sender = Some(fut.clone_ref(py));
        Ok(fut)
    }

    /// The application's task ended, by returning (`None`) or raising.
    fn finish(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) {
        let mut st = self.st.borrow_mut();
        st.app_done = true;
        crate::supervise::request_done();
        let cancelled =
            exc.is_some_and(|e| e.is_instance_of::<pyo3::exceptions::asyncio::CancelledError>());
        if let Some(e) = exc {
            if cancelled {
                log::debug(format_args!("ASGI task cancelled"));
            } else {
                let err = PyErr::from_value(e.clone());
                crate::wsgi::call::log_exception(py, &err, "Exception in ASGI application");
            }
        }
        match st.phase {
            Phase::Waiting => {
                if exc.is_none() {
                    log::error(format_args!(
                        "ASGI callable returned without starting response"
                    ));
                }
                st.phase = Phase::Error500;
            }
            Phase::Started => {
                if exc.is_none() {
                    log::error(format_args!(
                        "ASGI callable returned without completing response"
                    ));
                }
                st.phase = Phase::Broken;
            }
            _ => {}
        }
        st.receivers.clear();
        st.sender = None;
        st.task = None;
        Self::wake(&mut st);
    }
}

/// Whether the request's `TE` field lists `trailers`.
fn accepts_trailers(head: &RequestHead) -> bool {
    head.fields().any(|(n, v)| {
        n.eq_ignore_ascii_case(b"te")
            && v.split(|&b| b == b',').any(|t| {
                t.split(|&b| b == b';')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
            })
    })
}

/// Resolve an asyncio future unless it was cancelled (then false).
pub(super) fn resolve(
    py: Python<'_>,
    fut: &Py<PyAny>,
    outcome: PyResult<Py<PyAny>>,
) -> PyResult<bool> {
    let fut = fut.bind(py);
    if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
        return Ok(false);
    }
    match outcome {
        Ok(v) => fut.call_method1(intern!(py, "set_result"), (v,))?,
        Err(e) => fut.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?,
    };
    Ok(true)
}

fn is_disconnect(py: Python<'_>, msg: &Py<PyAny>) -> bool {
    msg.bind(py)
        .get_item(intern!(py, "type"))
        .and_then(|t| t.extract::<pyo3::pybacked::PyBackedStr>())
        .is_ok_and(|t| &*t == "http.disconnect")
}

/// Put a request message a cancelled `receive()` never got back in front.
fn unread(py: Python<'_>, st: &mut State, msg: &Py<PyAny>) {
    let m = msg.bind(py);
    if is_disconnect(py, msg) {
        return;
    }
    let body = m
        .get_item(intern!(py, "body"))
        .and_then(|b| b.extract::<Vec<u8>>())
        .unwrap_or_default();
    let more = m
        .get_item(intern!(py, "more_body"))
        .and_then(|b| b.is_truthy())
        .unwrap_or(false);
    st.incoming.over = false;
    if !more {
        st.incoming.ended = true;
    }
    st.incoming.chunks.push_front(Bytes::from(body));
}

fn request_message(py: Python<'_>, body: &[u8], more: bool) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
    d.set_item(intern!(py, "body"), PyBytes::new(py, body))?;
    d.set_item(intern!(py, "more_body"), more)?;
    Ok(d.into_any().unbind())
}

fn disconnect_message(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(d.into_any().unbind())
}

pub(super) fn flag(
    message: &Bound<'_, PyDict>,
    key: &Bound<'_, pyo3::types::PyString>,
) -> PyResult<bool> {
    match message.get_item(key)? {
        Some(v) => v.is_truthy(),
        None => Ok(false),
    }
}

/// The bytes of a `bytes`-like value the application sent.
pub(super) fn bytes_of(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Bytes> {
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(b.as_bytes()));
    }
    if let Ok(b) = v.cast::<pyo3::types::PyByteArray>() {
        return Ok(Bytes::from(b.to_vec()));
    }
    if let Ok(m) = v.cast::<pyo3::types::PyMemoryView>() {
        let b: Vec<u8> = m.call_method0("tobytes")?.extract()?;
        return Ok(Bytes::from(b));
    }
    Err(PyTypeError::new_err(format!(
        "'{what}' must be bytes, not {}",
        v.get_type().name()?
    )))
}

/// Header pairs from the application, checked: a name that is not a token or a value with
/// CR, LF or NUL raises `ValueError` and nothing is sent.
pub(super) fn push_headers(block: &mut HeaderBlock, list: &Bound<'_, PyAny>) -> PyResult<()> {
    for pair in list.try_iter()? {
        let pair = pair?;
        let mut it = pair.try_iter()?;
        let (Some(name), Some(value), None) = (it.next(), it.next(), it.next()) else {
            return Err(PyValueError::new_err(
                "each header must be a pair of bytes (name, value)",
            ));
        };
        let (name, value) = (
            bytes_of(&name?, "header name")?,
            bytes_of(&value?, "header value")?,
        );
        block.push(&name, &value).map_err(|e| {
            PyValueError::new_err(format!(
                "invalid header {:?}: {e:?}",
                String::from_utf8_lossy(&name)
            ))
        })?;
    }
    Ok(())
}

/// A descriptor of our own for the application's file (it closes its own).
#[allow(unsafe_code)]
fn dup_file(fileobj: &Bound<'_, PyAny>) -> PyResult<std::fs::File> {
    use std::os::fd::{BorrowedFd, FromRawFd};
    let fd: i32 = fileobj.call_method0("fileno")?.extract()?;
    if fd < 0 {
        return Err(PyValueError::new_err("the file has no descriptor"));
    }
    // SAFETY: the application's file object is alive (we hold a reference to it) for this
    // call, so its descriptor is open; we only borrow it to duplicate it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed.try_clone_to_owned()?;
    // SAFETY: `owned` is a descriptor we own; the File takes it over.
    Ok(unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(owned)) })
}

/// 500 with a short body, for an application that failed before starting its response.
fn internal_error(cycle: Rc<Cycle>) -> Response<AsgiBody> {
    plain(cycle, 500, b"Internal Server Error\n", Phase::Error500)
}

/// The answer to a request whose body the guard refused before the application started
/// (e.g. 413), with the connection closed.
pub(crate) fn refused(status: u16, cycle: Rc<Cycle>) -> Response<AsgiBody> {
    let body: &'static [u8] = match status {
        413 => b"Request body too large\n",
        _ => b"Bad Request\n",
    };
    cycle.st.borrow_mut().app_done = true;
    plain(cycle, status, body, Phase::Complete)
}

fn plain(cycle: Rc<Cycle>, status: u16, body: &'static [u8], phase: Phase) -> Response<AsgiBody> {
    {
        let mut st = cycle.st.borrow_mut();
        st.out.clear();
        st.out_len = body.len();
        st.out.push_back(Chunk::Data(Bytes::from_static(body)));
        st.phase = phase;
    }
    let mut resp = Response::new(status, AsgiBody::of(cycle));
    resp.interface = bourbon_server::request::Interface::Asgi;
    let _ = resp
        .headers
        .push(b"Content-Type", b"text/plain; charset=utf-8");
    let mut len = itoa::Buffer::new();
    let _ = resp
        .headers
        .push(b"Content-Length", len.format(body.len()).as_bytes());
    resp.close = true;
    resp
}

/// The response body: what the application sent, as it sends it; or bytes known at once
/// (a WebSocket handshake's answer).
pub(crate) struct AsgiBody {
    cycle: Option<Rc<Cycle>>,
    fixed: Option<Bytes>,
}

impl AsgiBody {
    fn of(cycle: Rc<Cycle>) -> Self {
        AsgiBody {
            cycle: Some(cycle),
            fixed: None,
        }
    }

    /// A body of these bytes (none when empty).
    pub(crate) fn fixed(bytes: Bytes) -> Self {
        AsgiBody {
            cycle: None,
            fixed: (!bytes.is_empty()).then_some(bytes),
        }
    }
}

impl Body for AsgiBody {
    fn poll_chunk(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Chunk, BodyAbort>>> {
        let Some(cycle) = &self.cycle else {
            return Poll::Ready(self.get_mut().fixed.take().map(|b| Ok(Chunk::Data(b))));
        };
        let mut st = cycle.st.borrow_mut();
        cycle.pump(&mut st, cx);
        if let Some(chunk) = st.out.pop_front() {
            if let Chunk::Data(d) = &chunk {
                st.out_len = st.out_len.saturating_sub(d.len());
            }
            if st.sender.is_some() && st.out_len <= LOW_WATER {
                engine::push(Work::Settle(cycle.clone()));
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        match st.phase {
            Phase::Complete | Phase::Error500 => {
                if !st.delivered {
                    st.delivered = true;
                    st.incoming.body = None;
                    if !st.receivers.is_empty() || st.sender.is_some() {
                        engine::push(Work::Settle(cycle.clone()));
                    }
                }
                Poll::Ready(None)
            }
            Phase::Broken => Poll::Ready(Some(Err(BodyAbort(
                "the ASGI application failed after starting its response",
            )))),
            Phase::Waiting | Phase::Started => {
                if st.app_done {
                    return Poll::Ready(Some(Err(BodyAbort(
                        "the ASGI application ended without completing its response",
                    ))));
                }
                if cycle.peer_gone(&mut st, cx) {
                    return Poll::Ready(Some(Err(BodyAbort("the client went away"))));
                }
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let Some(cycle) = &self.cycle else {
            return self.fixed.is_none();
        };
        let st = cycle.st.borrow();
        matches!(st.phase, Phase::Complete | Phase::Error500) && st.out.is_empty()
    }

    fn exact_len(&self) -> Option<u64> {
        let Some(cycle) = &self.cycle else {
            return Some(self.fixed.as_ref().map_or(0, |b| b.len() as u64));
        };
        let st = cycle.st.borrow();
        if !matches!(st.phase, Phase::Complete | Phase::Error500) {
            return None;
        }
        let mut n = 0;
        for c in &st.out {
            match c {
                Chunk::Trailers(_) => return None,
                c => n += c.len(),
            }
        }
        Some(n)
    }
}

impl Drop for AsgiBody {
    fn drop(&mut self) {
        if let Some(cycle) = &self.cycle {
            cycle.abandoned();
        }
    }
}

impl Cycle {
    /// The connection side let go of the cycle (response written, or connection lost).
    fn abandoned(self: &Rc<Self>) {
        let mut st = self.st.borrow_mut();
        st.incoming.body = None;
        if !st.delivered {
            if st.phase == Phase::Complete && st.out.is_empty() {
                st.delivered = true;
            } else {
                st.gone = true;
            }
        }
        st.waker = None;
        if !st.app_done && (!st.receivers.is_empty() || st.sender.is_some()) {
            engine::push(Work::Settle(self.clone()));
        }
    }
}

/// Drops with the handler's future: a connection lost before the head marks the cycle gone.
pub(crate) struct HeadGuard(pub(crate) Option<Rc<Cycle>>);

impl Drop for HeadGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.abandoned();
        }
    }
}

/// Wait for the response head (the handler's future).
pub(crate) async fn response(cycle: Rc<Cycle>) -> Response<AsgiBody> {
    let mut guard = HeadGuard(Some(cycle.clone()));
    let resp = std::future::poll_fn(|cx| cycle.poll_head(cx)).await;
    guard.0 = None;
    resp
}

/// The application's `receive` for one cycle.
#[pyclass(module = "bourbon._bourbon", unsendable)]
pub(crate) struct Receive {
    cycle: Rc<Cycle>,
    ctx: Rc<PyCtx>,
}

#[pymethods]
impl Receive {
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.cycle.receive(py, &self.ctx)
    }
}

/// The application's `send` for one cycle; `_finish` reports the task's end.
#[pyclass(module = "bourbon._bourbon", unsendable)]
pub(crate) struct Send {
    cycle: Rc<Cycle>,
    ctx: Rc<PyCtx>,
}

#[pymethods]
impl Send {
    fn __call__(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        self.cycle.send(py, &self.ctx, message)
    }

    fn _finish(&self, py: Python<'_>, exc: Option<Bound<'_, PyAny>>) {
        self.cycle.finish(py, exc.as_ref());
    }
}

/// Start the application's task for a new cycle (in the selector's drain).
pub(crate) fn start(py: Python<'_>, cycle: &Rc<Cycle>, ctx: &Rc<PyCtx>, scope_ctx: &ScopeCtx) {
    let started = (|| -> PyResult<()> {
        let scope =
            super::scope::http(py, &cycle.head, &cycle.conn, scope_ctx, ctx.state.as_ref())?;
        let receive = Py::new(
            py,
            Receive {
                cycle: cycle.clone(),
                ctx: ctx.clone(),
            },
        )?;
        let send = Py::new(
            py,
            Send {
                cycle: cycle.clone(),
                ctx: ctx.clone(),
            },
        )?;
        bourbon_server::metrics::app_called(cycle.head.arrived());
        let task = ctx.spawn(py, scope, receive.into_any(), send.into_any(), false)?;
        // The first step ran already: a task that finished is not kept.
        let mut st = cycle.st.borrow_mut();
        if !st.app_done {
            st.task = Some(task);
        }
        Ok(())
    })();
    if let Err(e) = started {
        crate::wsgi::call::log_exception(py, &e, "Cannot start the ASGI application's task");
        cycle.finish(py, None);
    }
}
