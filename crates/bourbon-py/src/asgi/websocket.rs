//! One WebSocket connection (ASGI spec, "WebSocket"), from the handshake to the close,
//! shared by its connection task and its Python task.
//!
//! - The handshake (RFC 6455 §4.2) is checked before the application hears of it: a bad one
//!   gets 400 (426 with `Sec-WebSocket-Version: 13` for another version) and never reaches
//!   Python. Then the application gets `websocket.connect` and answers:
//!   `websocket.accept` (with a subprotocol and headers) switches with a 101;
//!   `websocket.close` before that, or returning without accepting, is a 403; the
//!   `websocket.http.response` extension sends a response of the application's own; an
//!   exception before accepting is a 500.
//! - After the 101 the codec's [`Session`] does the I/O (pings, the closing handshake,
//!   permessage-deflate, size limits). A pump task hands its messages to `receive()` one at a
//!   time, as the application asks, so the session's inbox (`--ws-max-queue`) bounds what is
//!   read ahead, and tells a `send()` waiting on a client that does not read when the queue
//!   drained.
//! - `websocket.disconnect` carries the close code: the peer's, 1005 when its Close had none,
//!   1006 when the connection ended without one, 1012 on a graceful stop.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bourbon_server::log;
use bourbon_server::request::{HeaderBlock, OnUpgrade, Request, RequestHead, Response};
use bourbon_server::serve::ConnInfo;
use bourbon_server::ws::deflate::{self, DeflateConfig, DeflateParams};
use bourbon_server::ws::handshake::{self, Handshake};
use bourbon_server::ws::message::Message;
use bourbon_server::ws::session::{Closed, Session, WsConfig};
use bytes::{Bytes, BytesMut};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use super::cycle::{bytes_of, push_headers, resolve, AsgiBody, HIGH_WATER, LOW_WATER};
use super::engine::{self, PyCtx, Work};
use super::scope::ScopeCtx;
use crate::wsgi::input::ClientDisconnected;

/// What the worker's settings say about WebSockets.
#[derive(Clone, Debug)]
pub(crate) struct WsSettings {
    pub(crate) session: WsConfig,
    /// Accept permessage-deflate offers.
    pub(crate) deflate: bool,
    /// Close a connection this old with 1000 (zero: never).
    pub(crate) max_lifetime: Duration,
}

impl WsSettings {
    pub(crate) fn from(cfg: &bourbon_config::Config) -> Self {
        let ping_interval = (!cfg.ws_ping_interval.is_zero()).then_some(cfg.ws_ping_interval);
        // Zero: wait for the pong as long as it takes.
        let ping_timeout = if cfg.ws_ping_timeout.is_zero() {
            Some(Duration::from_secs(365 * 24 * 3600))
        } else {
            Some(cfg.ws_ping_timeout)
        };
        WsSettings {
            session: WsConfig {
                max_size: usize::try_from(cfg.ws_max_size).unwrap_or(usize::MAX),
                max_queue: cfg.ws_max_queue.max(1),
                ping_interval,
                ping_timeout,
                close_timeout: Duration::from_secs(5),
                // As for an HTTP response: a client that stopped reading is let go.
                write_timeout: Some(cfg.write_timeout),
            },
            deflate: cfg.ws_per_message_deflate,
            max_lifetime: cfg.ws_max_lifetime,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The application has not answered the handshake.
    Connecting,
    /// Accepted: the 101 goes out; then the session runs.
    Accepted,
    /// Refused before accepting (`websocket.close`, or returning): 403.
    Refused,
    /// The application's own response (`websocket.http.response.*`) is being sent.
    Denying,
    /// Its last part arrived.
    Denied,
    /// The application raised before accepting: 500.
    Failed,
}

struct State {
    phase: Phase,
    /// `websocket.connect` was given to the application.
    connected: bool,
    subprotocol: Option<String>,
    accept_headers: HeaderBlock,
    deny_status: u16,
    deny_headers: HeaderBlock,
    deny_body: BytesMut,
    session: Option<Session>,
    /// How the connection ended.
    closed: Option<Closed>,
    /// Messages (or the end) moved from the session for `receive()`.
    inbox: VecDeque<Result<Message, Closed>>,
    /// A `receive()` waits: the pump takes the next message from the session.
    want: bool,
    /// The pump task, to wake when the application wants something.
    pump: Option<Waker>,
    /// The connection side waiting for the application's answer to the handshake.
    waker: Option<Waker>,
    receivers: Vec<Py<PyAny>>,
    sender: Option<Py<PyAny>>,
    /// The session's queue drained below the low mark since `sender` began waiting.
    drained: bool,
    app_done: bool,
    task: Option<Py<PyAny>>,
    /// Sent, or closed, by the application before the session existed (in the loop iteration
    /// that accepted): handed to the session when it starts.
    early: Vec<Message>,
    pending_close: Option<(u16, String)>,
}

/// One WebSocket connection.
pub(crate) struct WsCycle {
    head: RequestHead,
    conn: Rc<ConnInfo>,
    subprotocols: Vec<String>,
    handshake: Handshake,
    deflate: Option<DeflateParams>,
    settings: Rc<WsSettings>,
    st: RefCell<State>,
}

/// The connection side: a request that asks for a WebSocket.
pub(crate) async fn call(
    req: Request,
    conn: Rc<ConnInfo>,
    settings: Rc<WsSettings>,
) -> Response<AsgiBody> {
    let head = req.head;
    let hs = match handshake::validate(&head) {
        Ok(hs) => hs,
        Err(refusal) => {
            log::debug(format_args!(
                "WebSocket handshake refused: {}",
                refusal.reason()
            ));
            let mut resp = plain(refusal.status(), refusal.reason());
            for (n, v) in refusal.headers().iter() {
                let _ = resp.headers.push(n, v);
            }
            return resp;
        }
    };
    let deflate = if settings.deflate {
        deflate::negotiate(
            head.fields()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"sec-websocket-extensions"))
                .map(|(_, v)| v),
            DeflateConfig::default(),
        )
    } else {
        None
    };
    let cycle = Rc::new(WsCycle {
        subprotocols: handshake::subprotocols(&head),
        head,
        conn,
        handshake: hs,
        deflate,
        settings,
        st: RefCell::new(State {
            phase: Phase::Connecting,
            connected: false,
            subprotocol: None,
            accept_headers: HeaderBlock::with_capacity(64),
            deny_status: 0,
            deny_headers: HeaderBlock::with_capacity(64),
            deny_body: BytesMut::new(),
            session: None,
            closed: None,
            inbox: VecDeque::new(),
            want: false,
            pump: None,
            waker: None,
            receivers: Vec::new(),
            sender: None,
            drained: false,
            app_done: false,
            task: None,
            early: Vec::new(),
            pending_close: None,
        }),
    });
    engine::push(Work::WsStart(cycle.clone()));
    let mut guard = Gone(Some(cycle.clone()));
    let resp = std::future::poll_fn(|cx| cycle.poll_answer(cx)).await;
    guard.0 = None;
    resp
}

/// Marks the cycle gone when the connection side drops it before the application answered.
struct Gone(Option<Rc<WsCycle>>);

impl Drop for Gone {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.end(Closed {
                code: 1006,
                reason: String::new(),
            });
        }
    }
}

fn plain(status: u16, text: &str) -> Response<AsgiBody> {
    let body = Bytes::from(format!("{text}\n"));
    let mut resp = Response::new(status, AsgiBody::fixed(body.clone()));
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

impl WsCycle {
    /// The connection side: the application's answer to the handshake.
    fn poll_answer(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<Response<AsgiBody>> {
        let mut st = self.st.borrow_mut();
        match st.phase {
            Phase::Connecting if !st.app_done => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Phase::Connecting | Phase::Refused => {
                st.phase = Phase::Refused;
                drop(st);
                self.end(Closed {
                    code: 1006,
                    reason: String::new(),
                });
                Poll::Ready(plain(403, "Forbidden"))
            }
            Phase::Failed => {
                drop(st);
                self.end(Closed {
                    code: 1006,
                    reason: String::new(),
                });
                Poll::Ready(plain(500, "Internal Server Error"))
            }
            Phase::Denying => {
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Phase::Denied => {
                let body = std::mem::take(&mut st.deny_body).freeze();
                let mut resp = Response::new(st.deny_status, AsgiBody::fixed(body.clone()));
                resp.interface = bourbon_server::request::Interface::Asgi;
                resp.headers = std::mem::take(&mut st.deny_headers);
                if resp.headers.content_length().is_none() {
                    let mut len = itoa::Buffer::new();
                    let _ = resp
                        .headers
                        .push(b"Content-Length", len.format(body.len()).as_bytes());
                }
                resp.close = true;
                drop(st);
                self.end(Closed {
                    code: 1006,
                    reason: String::new(),
                });
                Poll::Ready(resp)
            }
            Phase::Accepted => {
                let mut resp = Response::new(101, AsgiBody::fixed(Bytes::new()));
                resp.interface = bourbon_server::request::Interface::Asgi;
                let protocol = st.subprotocol.take();
                if let Err(e) = self.handshake.response_headers(
                    &mut resp.headers,
                    protocol.as_deref(),
                    self.deflate.as_ref(),
                ) {
                    log::error(format_args!("invalid WebSocket subprotocol: {e:?}"));
                }
                for (n, v) in st.accept_headers.iter() {
                    let _ = resp.headers.push(n, v);
                }
                let (tx, rx) = tokio::sync::oneshot::channel();
                resp.upgrade = Some(OnUpgrade(tx));
                drop(st);
                let cycle = self.clone();
                tokio::task::spawn_local(async move { cycle.run(rx).await });
                Poll::Ready(resp)
            }
        }
    }

    /// After the 101: run the session and the pump until the connection ends.
    async fn run(self: Rc<Self>, rx: tokio::sync::oneshot::Receiver<bourbon_server::io::Switched>) {
        let Ok(switched) = rx.await else {
            // The 101 could not be written.
            self.end(Closed {
                code: 1006,
                reason: String::new(),
            });
            return;
        };
        let (session, driver) =
            Session::start(switched, self.deflate, self.settings.session.clone());
        {
            let mut st = self.st.borrow_mut();
            for m in st.early.drain(..) {
                let _ = session.send(m);
            }
            if st.sender.is_some() && session.buffered() <= LOW_WATER {
                st.drained = true;
            }
            if let Some((code, reason)) = st.pending_close.take() {
                session.close(code, &reason);
            } else if st.app_done {
                // The application ended while the 101 went out: close for it.
                session.close(1000, "");
            }
            st.session = Some(session.clone());
        }
        if !self.st.borrow().receivers.is_empty() || self.st.borrow().sender.is_some() {
            engine::push(Work::WsSettle(self.clone()));
        }
        let lifetime = self.settings.max_lifetime;
        let pump = std::future::poll_fn(|cx| self.poll_pump(&session, cx));
        let limit = async {
            if lifetime.is_zero() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(lifetime).await;
            session.close(1000, "");
            std::future::pending::<()>().await;
        };
        let (closed, ()) = tokio::join!(driver, async {
            tokio::select! {
                () = pump => {}
                () = limit => {}
            }
        });
        self.end(closed);
    }

    /// Move messages from the session to `receive()` as it asks, and tell a waiting `send()`
    /// when the session's queue drained. Ends with the connection.
    fn poll_pump(self: &Rc<Self>, session: &Session, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.st.borrow_mut();
        let mut settle = false;
        if st.want {
            if let Poll::Ready(r) = session.poll_recv(cx) {
                st.want = false;
                if let Err(c) = &r {
                    st.closed.get_or_insert_with(|| c.clone());
                }
                st.inbox.push_back(r);
                settle = true;
            }
        }
        if st.sender.is_some() && !st.drained && session.poll_drained(cx, LOW_WATER).is_ready() {
            st.drained = true;
            settle = true;
        }
        let done = st.closed.is_some() && st.sender.is_none() && !st.want;
        st.pump = Some(cx.waker().clone());
        drop(st);
        if settle {
            engine::push(Work::WsSettle(self.clone()));
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The connection ended (or never switched).
    fn end(self: &Rc<Self>, closed: Closed) {
        let mut st = self.st.borrow_mut();
        if st.closed.is_none() {
            st.closed = Some(closed);
        }
        st.session = None;
        if !st.app_done {
            engine::push(Work::WsSettle(self.clone()));
        }
    }

    /// The Python side: something changed for a waiting `receive()` or `send()`.
    pub(crate) fn settle(&self, py: Python<'_>) {
        let mut st = self.st.borrow_mut();
        while !st.receivers.is_empty() {
            let msg = match st.inbox.pop_front() {
                Some(Ok(m)) => message(py, &m),
                Some(Err(c)) => {
                    st.inbox.push_front(Err(c.clone()));
                    disconnect(py, &c)
                }
                None => match &st.closed {
                    Some(c) => disconnect(py, c),
                    None => break,
                },
            };
            let Ok(msg) = msg else { break };
            let fut = st.receivers.remove(0);
            match resolve(py, &fut, Ok(msg)) {
                Ok(true) => {}
                Ok(false) => {}
                Err(e) => e.print(py),
            }
        }
        if !st.receivers.is_empty() && !st.want && st.closed.is_none() {
            st.want = true;
            engine::wake_later(st.pump.clone());
        }
        if let Some(fut) = st.sender.take() {
            let outcome = if st.closed.is_some() {
                Some(Err(ClientDisconnected::new_err("the WebSocket is closed")))
            } else if st.drained {
                Some(Ok(py.None()))
            } else {
                None
            };
            match outcome {
                Some(o) => {
                    st.drained = false;
                    if let Err(e) = resolve(py, &fut, o) {
                        e.print(py);
                    }
                }
                None => st.sender = Some(fut),
            }
        }
    }

    /// The application's `receive()`.
    fn receive(&self, py: Python<'_>, ctx: &PyCtx) -> PyResult<Py<PyAny>> {
        let mut st = self.st.borrow_mut();
        if !st.connected {
            st.connected = true;
            let d = PyDict::new(py);
            d.set_item(intern!(py, "type"), intern!(py, "websocket.connect"))?;
            return ctx.done_with(py, d.into_any().unbind());
        }
        if st.receivers.is_empty() {
            match st.inbox.pop_front() {
                Some(Ok(m)) => return ctx.done_with(py, message(py, &m)?),
                Some(Err(c)) => {
                    st.inbox.push_front(Err(c.clone()));
                    return ctx.done_with(py, disconnect(py, &c)?);
                }
                None => {}
            }
            if let Some(session) = &st.session {
                // A message already waiting is taken at once.
                let waker = Waker::noop();
                if let Poll::Ready(Ok(m)) = session.poll_recv(&mut Context::from_waker(waker)) {
                    return ctx.done_with(py, message(py, &m)?);
                }
            }
            if let Some(c) = &st.closed {
                return ctx.done_with(py, disconnect(py, c)?);
            }
        }
        let fut = ctx.future(py)?;
        st.receivers.push(fut.clone_ref(py));
        if st.session.is_some() && !st.want {
            st.want = true;
            engine::wake_later(st.pump.clone());
        }
        Ok(fut)
    }

    /// The application's `send(message)`.
    fn send(&self, py: Python<'_>, ctx: &PyCtx, msg: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        let kind = msg
            .get_item(intern!(py, "type"))?
            .ok_or_else(|| PyValueError::new_err("an ASGI message needs a 'type'"))?;
        let kind: &str = &kind.extract::<pyo3::pybacked::PyBackedStr>()?;
        let mut st = self.st.borrow_mut();
        match (kind, st.phase) {
            ("websocket.accept", Phase::Connecting) => {
                if let Some(p) = msg.get_item(intern!(py, "subprotocol"))? {
                    if !p.is_none() {
                        st.subprotocol = Some(p.extract()?);
                    }
                }
                if let Some(list) = msg.get_item(intern!(py, "headers"))? {
                    let mut block = HeaderBlock::with_capacity(64);
                    push_headers(&mut block, &list)?;
                    st.accept_headers = block;
                }
                st.phase = Phase::Accepted;
                engine::wake_later(st.waker.take());
                Ok(ctx.done_none.clone_ref(py))
            }
            ("websocket.close", Phase::Connecting) => {
                st.phase = Phase::Refused;
                engine::wake_later(st.waker.take());
                Ok(ctx.done_none.clone_ref(py))
            }
            ("websocket.http.response.start", Phase::Connecting) => {
                let status: u16 = msg
                    .get_item(intern!(py, "status"))?
                    .ok_or_else(|| PyValueError::new_err("a response needs a 'status'"))?
                    .extract()?;
                if !(200..=999).contains(&status) || status == 101 {
                    return Err(PyValueError::new_err(format!(
                        "status {status} cannot deny a WebSocket"
                    )));
                }
                let mut block = HeaderBlock::with_capacity(128);
                if let Some(list) = msg.get_item(intern!(py, "headers"))? {
                    push_headers(&mut block, &list)?;
                }
                st.deny_status = status;
                st.deny_headers = block;
                st.phase = Phase::Denying;
                Ok(ctx.done_none.clone_ref(py))
            }
            ("websocket.http.response.body", Phase::Denying) => {
                if let Some(b) = msg.get_item(intern!(py, "body"))? {
                    st.deny_body.extend_from_slice(&bytes_of(&b, "body")?);
                }
                let more = match msg.get_item(intern!(py, "more_body"))? {
                    Some(v) => v.is_truthy()?,
                    None => false,
                };
                if !more {
                    st.phase = Phase::Denied;
                    engine::wake_later(st.waker.take());
                }
                Ok(ctx.done_none.clone_ref(py))
            }
            ("websocket.send", Phase::Accepted) => {
                let out = match (
                    msg.get_item(intern!(py, "bytes"))?.filter(|b| !b.is_none()),
                    msg.get_item(intern!(py, "text"))?.filter(|t| !t.is_none()),
                ) {
                    (Some(b), None) => Message::Binary(bytes_of(&b, "bytes")?),
                    (None, Some(t)) => {
                        let t = t.cast::<PyString>()?;
                        Message::Text(Bytes::copy_from_slice(t.to_str()?.as_bytes()))
                    }
                    _ => {
                        return Err(PyValueError::new_err(
                            "'websocket.send' needs exactly one of 'bytes' and 'text'",
                        ))
                    }
                };
                if st.closed.is_some() {
                    return Err(ClientDisconnected::new_err("the WebSocket is closed"));
                }
                let Some(session) = st.session.clone() else {
                    // Accepted, the 101 not written yet: the session does not exist. This
                    // happens when the application sends in the same loop iteration as it
                    // accepts; wait for the switch.
                    return self.send_later(py, ctx, &mut st, out);
                };
                if session.send(out).is_err() {
                    return Err(ClientDisconnected::new_err("the WebSocket is closed"));
                }
                if session.buffered() > HIGH_WATER {
                    let fut = ctx.future(py)?;
                    st.sender = Some(fut.clone_ref(py));
                    st.drained = false;
                    engine::wake_later(st.pump.clone());
                    return Ok(fut);
                }
                Ok(ctx.done_none.clone_ref(py))
            }
            ("websocket.close", Phase::Accepted) => {
                let code: u16 = match msg.get_item(intern!(py, "code"))? {
                    Some(c) if !c.is_none() => c.extract()?,
                    _ => 1000,
                };
                let reason: String = match msg.get_item(intern!(py, "reason"))? {
                    Some(r) if !r.is_none() => r.extract()?,
                    _ => String::new(),
                };
                match &st.session {
                    Some(s) => s.close(code, &reason),
                    None => st.pending_close = Some((code, reason)),
                }
                Ok(ctx.done_none.clone_ref(py))
            }
            (other, phase) => Err(PyRuntimeError::new_err(format!(
                "unexpected ASGI message '{other}' on a WebSocket ({})",
                match phase {
                    Phase::Connecting => "before it was accepted",
                    Phase::Accepted => "after it was accepted",
                    _ => "after it was refused",
                }
            ))),
        }
    }

    /// A message sent before the session exists (the 101 still to be written): kept for the
    /// session, and the application waits for the switch, so that a sender in a tight loop
    /// gives the loop a chance to write the 101.
    fn send_later(
        &self,
        py: Python<'_>,
        ctx: &PyCtx,
        st: &mut State,
        msg: Message,
    ) -> PyResult<Py<PyAny>> {
        st.early.push(msg);
        let fut = ctx.future(py)?;
        st.sender = Some(fut.clone_ref(py));
        st.drained = false;
        Ok(fut)
    }

    /// The application's task ended.
    fn finish(&self, py: Python<'_>, exc: Option<&Bound<'_, PyAny>>) {
        let mut st = self.st.borrow_mut();
        st.app_done = true;
        crate::supervise::request_done();
        let cancelled =
            exc.is_some_and(|e| e.is_instance_of::<pyo3::exceptions::asyncio::CancelledError>());
        let disconnected = exc.is_some_and(|e| e.is_instance_of::<ClientDisconnected>());
        if let Some(e) = exc {
            if !cancelled && !disconnected {
                let err = PyErr::from_value(e.clone());
                crate::wsgi::call::log_exception(py, &err, "Exception in ASGI application");
            }
        }
        match st.phase {
            Phase::Connecting => {
                st.phase = if exc.is_some() && !cancelled {
                    Phase::Failed
                } else {
                    Phase::Refused
                };
            }
            Phase::Denying => st.phase = Phase::Denied,
            Phase::Accepted => {
                // An application that ends without closing closes normally; one that raised,
                // with 1011 (an unexpected condition, RFC 6455 §7.4.1).
                let code = if exc.is_some() && !cancelled && !disconnected {
                    1011
                } else {
                    1000
                };
                match &st.session {
                    Some(s) => s.close(code, ""),
                    None => {
                        st.pending_close.get_or_insert((code, String::new()));
                    }
                }
            }
            _ => {}
        }
        st.receivers.clear();
        st.sender = None;
        st.task = None;
        engine::wake_later(st.waker.take());
        engine::wake_later(st.pump.clone());
    }
}

fn message(py: Python<'_>, m: &Message) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), intern!(py, "websocket.receive"))?;
    match m {
        Message::Text(b) => {
            // The codec validated the UTF-8.
            let text = std::str::from_utf8(b)
                .map_err(|_| PyValueError::new_err("invalid UTF-8 in a text message"))?;
            d.set_item(intern!(py, "text"), text)?;
        }
        Message::Binary(b) => d.set_item(intern!(py, "bytes"), PyBytes::new(py, b))?,
    }
    Ok(d.into_any().unbind())
}

fn disconnect(py: Python<'_>, c: &Closed) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "type"), intern!(py, "websocket.disconnect"))?;
    d.set_item(intern!(py, "code"), c.code)?;
    d.set_item(intern!(py, "reason"), &c.reason)?;
    Ok(d.into_any().unbind())
}

/// The application's `receive` for one WebSocket.
#[pyclass(module = "bourbon._bourbon", unsendable)]
pub(crate) struct WsReceive {
    cycle: Rc<WsCycle>,
    ctx: Rc<PyCtx>,
}

#[pymethods]
impl WsReceive {
    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.cycle.receive(py, &self.ctx)
    }
}

/// The application's `send` for one WebSocket; `_finish` reports the task's end.
#[pyclass(module = "bourbon._bourbon", unsendable)]
pub(crate) struct WsSend {
    cycle: Rc<WsCycle>,
    ctx: Rc<PyCtx>,
}

#[pymethods]
impl WsSend {
    fn __call__(&self, py: Python<'_>, message: &Bound<'_, PyDict>) -> PyResult<Py<PyAny>> {
        self.cycle.send(py, &self.ctx, message)
    }

    fn _finish(&self, py: Python<'_>, exc: Option<Bound<'_, PyAny>>) {
        self.cycle.finish(py, exc.as_ref());
    }
}

/// Start the application's task for a WebSocket (in the selector's drain).
pub(crate) fn start(py: Python<'_>, cycle: &Rc<WsCycle>, ctx: &Rc<PyCtx>, scope_ctx: &ScopeCtx) {
    let started = (|| -> PyResult<()> {
        let scope = super::scope::websocket(
            py,
            &cycle.head,
            &cycle.conn,
            scope_ctx,
            ctx.state.as_ref(),
            &cycle.subprotocols,
        )?;
        let receive = Py::new(
            py,
            WsReceive {
                cycle: cycle.clone(),
                ctx: ctx.clone(),
            },
        )?;
        let send = Py::new(
            py,
            WsSend {
                cycle: cycle.clone(),
                ctx: ctx.clone(),
            },
        )?;
        let task = ctx.spawn(py, scope, receive.into_any(), send.into_any(), true)?;
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
