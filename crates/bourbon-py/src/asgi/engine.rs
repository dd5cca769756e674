//! The runtime under the event loop: the work queue from connection tasks to Python, and the
//! wait that asyncio's selector makes (`_asgi_wait`).
//!
//! asyncio's standard loop only ever blocks in `selector.select(timeout)`. Ours (in
//! `bourbon/_asgi.py`) keeps the stdlib's registrations in an inner epoll (the loop's self-pipe,
//! so `call_soon_threadsafe` from executor threads still wakes it, and the application's own
//! sockets), and waits by calling [`asgi_wait`]: with the GIL released it runs the tokio
//! runtime that owns bourbon's sockets until one of three things: a connection task queued
//! work for Python, the inner epoll has events, or the timeout passed. Then, with the GIL, it
//! hands the queued work to Python (creating tasks, resolving futures), before asyncio counts
//! its ready callbacks, so that work runs in the same loop iteration.
//!
//! Everything here is per thread (the worker's one thread), hence `Rc`/`RefCell` and
//! thread-locals rather than locks.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pyo3::prelude::*;
use tokio::io::unix::AsyncFd;

use super::cycle::Cycle;

/// What a connection task asks of the Python side.
pub(crate) enum Work {
    /// Start the Python task of a new HTTP cycle.
    Http(Rc<Cycle>),
    /// A cycle has something for a waiting `receive()` or `send()`.
    Settle(Rc<Cycle>),
    /// Start the Python task of a new WebSocket.
    WsStart(Rc<super::websocket::WsCycle>),
    /// A WebSocket has something for a waiting `receive()` or `send()`.
    WsSettle(Rc<super::websocket::WsCycle>),
    /// Serving ended (`fast`: INT or QUIT asked to stop at once).
    Stopped { fast: bool },
}

#[derive(Default)]
struct Queue {
    work: VecDeque<Work>,
    /// The selector's wait, parked until there is work.
    waiter: Option<Waker>,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::new(Queue::default());
    static ENGINE: RefCell<Option<Rc<Engine>>> = const { RefCell::new(None) };
}

/// Queue work for Python and wake the selector's wait.
pub(crate) fn push(work: Work) {
    let waiter = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.work.push_back(work);
        q.waiter.take()
    });
    if let Some(w) = waiter {
        w.wake();
    }
}

/// Wake a connection task from Python's side: held until the next wait, where it is woken
/// inside the runtime without a system call (see `bourbon_server::wake`).
pub(crate) fn wake_later(waker: Option<Waker>) {
    if let Some(w) = waker {
        bourbon_server::wake::wake(w);
    }
}

fn has_work() -> bool {
    QUEUE.with(|q| !q.borrow().work.is_empty())
}

/// The Python side of the worker, set when it starts serving (`_asgi_serve`).
pub(crate) struct PyCtx {
    /// The application (ASGI 3).
    pub(crate) app: Py<PyAny>,
    /// `_http(app, scope, receive, send)`: the coroutine that runs the application for one
    /// cycle and reports its end.
    pub(crate) http: Py<PyAny>,
    /// asyncio's `Task` and `Future` types (the C ones), called directly: cheaper than the
    /// loop's Python-level `create_task`/`create_future`, and the same objects.
    pub(crate) task_type: Py<PyAny>,
    pub(crate) future_type: Py<PyAny>,
    /// `loop=` the running loop, for both: without it each one asks asyncio for the running
    /// loop, which on CPython 3.11 costs a `getpid()` system call (its fork check).
    loop_kwargs: Py<pyo3::types::PyDict>,
    /// The same plus `name=` for the request tasks of each kind: a task without a name gets
    /// `Task-N`, which CPython 3.11 formats when the task is made (1,400 instructions, a
    /// tenth of what the task costs); the kind is also more telling in a stack dump.
    http_task_kwargs: Py<pyo3::types::PyDict>,
    ws_task_kwargs: Py<pyo3::types::PyDict>,
    /// A future already done with `None`: what every `send()` that need not wait returns.
    /// Awaiting a done future returns at once, without an exception object.
    pub(crate) done_none: Py<PyAny>,
    /// The lifespan state, shallow-copied into each scope; `None` without lifespan.
    pub(crate) state: Option<Py<PyAny>>,
    /// Resolved with `fast` when serving ends.
    done: Py<PyAny>,
}

impl PyCtx {
    /// A new pending future of the running loop.
    pub(crate) fn future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self
            .future_type
            .bind(py)
            .call((), Some(self.loop_kwargs.bind(py)))?
            .unbind())
    }

    /// Create the application's task for one connection scope: `_http(app, scope, receive,
    /// send)`, which reports its end through `send._finish`. Its first step runs at once
    /// ([`super::handle::start_eagerly`]): the task may be done when this returns.
    pub(crate) fn spawn(
        &self,
        py: Python<'_>,
        scope: Bound<'_, pyo3::types::PyDict>,
        receive: Py<PyAny>,
        send: Py<PyAny>,
        websocket: bool,
    ) -> PyResult<Py<PyAny>> {
        let coro = self
            .http
            .call1(py, (self.app.clone_ref(py), scope, receive, send))?;
        let kwargs = if websocket {
            &self.ws_task_kwargs
        } else {
            &self.http_task_kwargs
        };
        super::handle::start_eagerly(py, || {
            self.task_type.call(py, (coro,), Some(kwargs.bind(py)))
        })
    }

    /// A future already done with `value`.
    pub(crate) fn done_with(&self, py: Python<'_>, value: Py<PyAny>) -> PyResult<Py<PyAny>> {
        let fut = self
            .future_type
            .bind(py)
            .call((), Some(self.loop_kwargs.bind(py)))?;
        fut.call_method1(pyo3::intern!(py, "set_result"), (value,))?;
        Ok(fut.unbind())
    }
}

/// Our own descriptor of the selector's epoll (a `dup`): it keeps the epoll open for as long
/// as the runtime watches it, whenever Python closes its selector. `RawFd` is the number
/// Python passed, to notice a different selector.
struct Watched(RawFd, std::os::fd::OwnedFd);

impl AsRawFd for Watched {
    fn as_raw_fd(&self) -> RawFd {
        self.1.as_raw_fd()
    }
}

impl Watched {
    fn watch(epfd: RawFd) -> std::io::Result<AsyncFd<Watched>> {
        // SAFETY: Python's selector keeps `epfd` open while it calls `select()` (our caller);
        // we only borrow it to duplicate it.
        let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(epfd) };
        let owned = borrowed.try_clone_to_owned()?;
        // SAFETY: the descriptor is ours (`owned`), held by the AsyncFd until it is dropped,
        // so it stays open and refers to the same epoll for the registration's whole life.
        unsafe {
            AsyncFd::register_with_interest(Watched(epfd, owned), tokio::io::Interest::READABLE)
        }
        .map_err(std::io::Error::from)
    }
}

/// The worker's runtime and what the selector needs between waits.
pub(crate) struct Engine {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) local: tokio::task::LocalSet,
    inner: RefCell<Option<AsyncFd<Watched>>>,
    /// The serving loop, started by `_asgi_serve` once lifespan startup is done.
    serve: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    pub(crate) py: RefCell<Option<Rc<PyCtx>>>,
    pub(crate) scope: Rc<super::scope::ScopeCtx>,
    /// The runtime's own epoll descriptor, for an event loop that watches it (uvloop).
    runtime_fd: Option<RawFd>,
    /// The inner epoll's events of the last wait.
    events: RefCell<Vec<libc::epoll_event>>,
}

impl Engine {
    /// Make this thread's engine current.
    pub(crate) fn install(
        runtime: tokio::runtime::Runtime,
        local: tokio::task::LocalSet,
        serve: Pin<Box<dyn Future<Output = ()>>>,
        scope: super::scope::ScopeCtx,
        runtime_fd: Option<RawFd>,
    ) {
        let engine = Rc::new(Engine {
            runtime,
            local,
            inner: RefCell::new(None),
            serve: RefCell::new(Some(serve)),
            py: RefCell::new(None),
            scope: Rc::new(scope),
            runtime_fd,
            events: RefCell::new(Vec::new()),
        });
        ENGINE.with(|e| *e.borrow_mut() = Some(engine));
    }

    /// Take this thread's engine back (at the end of the worker), so that it is dropped
    /// before the interpreter's objects it holds.
    pub(crate) fn uninstall() -> Option<Rc<Engine>> {
        QUEUE.with(|q| *q.borrow_mut() = Queue::default());
        bourbon_server::wake::release();
        ENGINE.with(|e| e.borrow_mut().take())
    }

    pub(crate) fn current() -> PyResult<Rc<Engine>> {
        ENGINE
            .with(|e| e.borrow().clone())
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("not in a bourbon worker"))
    }

    /// Run the runtime until Python has work, `epfd` has events, or `timeout` passed (`None`:
    /// no limit; zero: one round of ready tasks and a non-blocking look at the sockets).
    /// Returns whether `epfd` has events.
    async fn wait(&self, epfd: RawFd, timeout: Option<f64>) -> bool {
        // Connection tasks woken from Python since the last wait.
        bourbon_server::wake::release();
        if epfd < 0 {
            // No selector of ours (uvloop): one round, nothing to report.
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
            return false;
        }
        let known = self
            .inner
            .borrow()
            .as_ref()
            .is_some_and(|w| w.get_ref().0 == epfd);
        if !known {
            *self.inner.borrow_mut() = None;
            match Watched::watch(epfd) {
                Ok(fd) => *self.inner.borrow_mut() = Some(fd),
                Err(e) => {
                    bourbon_server::log::error(format_args!(
                        "cannot watch the event loop's selector: {e}"
                    ));
                    return true;
                }
            }
        }
        match timeout {
            Some(t) if t <= 0.0 => {
                // Twice: the first round runs the tasks that were ready and looks at the
                // sockets; the second runs the tasks that woke.
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                std::future::poll_fn(|cx| Poll::Ready(self.poll_inner(cx))).await
            }
            _ => {
                let sleep =
                    timeout.map(|t| tokio::time::sleep(Duration::from_secs_f64(t.min(1e6))));
                let mut sleep = std::pin::pin!(sleep);
                std::future::poll_fn(|cx| {
                    if self.poll_inner(cx) {
                        return Poll::Ready(true);
                    }
                    if has_work() {
                        return Poll::Ready(false);
                    }
                    if let Some(s) = sleep.as_mut().as_pin_mut() {
                        if s.poll(cx).is_ready() {
                            return Poll::Ready(false);
                        }
                    }
                    QUEUE.with(|q| q.borrow_mut().waiter = Some(cx.waker().clone()));
                    Poll::Pending
                })
                .await
            }
        }
    }

    /// Whether the inner epoll has events. The runtime's readiness is edge-triggered and
    /// cached, the inner epoll's level-triggered: a cached "readable" is confirmed with a
    /// non-blocking look (which consumes nothing) and cleared when there is nothing, else
    /// the loop would spin.
    fn poll_inner(&self, cx: &mut Context<'_>) -> bool {
        let inner = self.inner.borrow();
        let Some(fd) = inner.as_ref() else {
            return false;
        };
        loop {
            match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(mut guard)) => {
                    if self.collect_events(fd.get_ref().1.as_raw_fd()) > 0 {
                        return true;
                    }
                    guard.clear_ready();
                }
                Poll::Ready(Err(_)) => return true,
                Poll::Pending => return false,
            }
        }
    }

    /// The inner epoll's events, without waiting (level-triggered: whatever is not handled
    /// stays ready); kept for Python, which gets them instead of polling again.
    fn collect_events(&self, epfd: RawFd) -> usize {
        let mut events = self.events.borrow_mut();
        events.clear();
        events.reserve(MAX_EVENTS);
        // SAFETY: epoll_wait writes at most `MAX_EVENTS` events into the vector's reserved
        // room, and we set its length to what it wrote; a zero timeout never blocks. The
        // descriptor is our duplicate of the selector's epoll, open while we watch it.
        let n =
            unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), MAX_EVENTS as libc::c_int, 0) };
        let n = usize::try_from(n).unwrap_or(0).min(MAX_EVENTS);
        // SAFETY: the kernel initialised the first `n` entries.
        unsafe { events.set_len(n) };
        n
    }

    /// Hand the queued work to Python.
    fn drain(&self, py: Python<'_>) {
        let ctx = self.py.borrow().clone();
        while let Some(work) = QUEUE.with(|q| q.borrow_mut().work.pop_front()) {
            match work {
                Work::Http(cycle) => {
                    if let Some(ctx) = &ctx {
                        super::cycle::start(py, &cycle, ctx, &self.scope);
                    }
                }
                Work::Settle(cycle) => cycle.settle(py),
                Work::WsStart(cycle) => {
                    if let Some(ctx) = &ctx {
                        super::websocket::start(py, &cycle, ctx, &self.scope);
                    }
                }
                Work::WsSettle(cycle) => cycle.settle(py),
                Work::Stopped { fast } => {
                    if let Some(ctx) = &ctx {
                        let done = ctx.done.bind(py);
                        let pending = done
                            .call_method0(pyo3::intern!(py, "done"))
                            .and_then(|d| d.is_truthy())
                            .map(|d| !d)
                            .unwrap_or(false);
                        if pending {
                            if let Err(e) =
                                done.call_method1(pyo3::intern!(py, "set_result"), (fast,))
                            {
                                e.print(py);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Most events taken from the inner epoll per wait (asyncio's own selector takes as many
/// as it has registrations; the rest stay ready for the next wait).
const MAX_EVENTS: usize = 256;

/// Moves the engine into the closure run without the GIL. `Python::detach` runs it at once on
/// this same thread, so the `Rc` inside never reaches another thread.
struct SameThread(Rc<Engine>);

// SAFETY: see `SameThread`: the value is used, and dropped, only by the closure that
// `detach` runs synchronously on the thread that made it.
unsafe impl Send for SameThread {}

impl SameThread {
    fn wait(self, epfd: RawFd, timeout: Option<f64>) -> bool {
        let e = self.0;
        let ready = e.local.block_on(&e.runtime, e.wait(epfd, timeout));
        // Back to Python: wakes it makes wait for the next wait, which comes before asyncio
        // blocks. Not under uvloop (`epfd` -1), whose next round comes from the runtime's
        // own descriptor, which only a real wake makes readable.
        if epfd >= 0 {
            bourbon_server::wake::hold();
        }
        ready
    }
}

/// The selector's wait (see the module docs). `epfd`: the inner epoll (-1: none, one round
/// of the runtime); `timeout` in seconds. Returns the inner epoll's events as `(fd, mask)`
/// pairs, as `select.epoll.poll` does, or `None`.
#[pyfunction]
pub(crate) fn _asgi_wait<'py>(
    py: Python<'py>,
    epfd: RawFd,
    timeout: Option<f64>,
) -> PyResult<Option<Bound<'py, pyo3::types::PyList>>> {
    let engine = Engine::current()?;
    let moved = SameThread(engine.clone());
    let ready = py.detach(move || moved.wait(epfd, timeout));
    engine.drain(py);
    if let Some(err) = super::handle::take_escaped() {
        return Err(err);
    }
    if !ready {
        return Ok(None);
    }
    let events = engine.events.borrow();
    let list = pyo3::types::PyList::empty(py);
    for ev in events.iter() {
        // Python's epoll registers each descriptor with itself as the event's data.
        let (fd, mask) = (ev.u64 as i32, ev.events);
        list.append((fd, mask))?;
    }
    Ok(Some(list))
}

/// The runtime's epoll descriptor, for an event loop that watches it (uvloop). `None` when it
/// is not known.
#[pyfunction]
pub(crate) fn _asgi_runtime_fd() -> PyResult<Option<RawFd>> {
    Ok(Engine::current()?.runtime_fd)
}

/// Start serving, once lifespan startup is done: `http(app, scope, receive, send)` makes
/// each request's coroutine, `state` is copied into each scope, `done` (a future) gets
/// `True` (a fast stop) or `False` when serving ends. Called in the running loop.
#[pyfunction]
pub(crate) fn _asgi_serve(
    py: Python<'_>,
    app: Py<PyAny>,
    http: Py<PyAny>,
    state: Option<Py<PyAny>>,
    done: Py<PyAny>,
) -> PyResult<()> {
    let engine = Engine::current()?;
    let asyncio = py.import("asyncio")?;
    let future_type = asyncio.getattr("Future")?;
    let loop_kwargs = pyo3::types::PyDict::new(py);
    loop_kwargs.set_item("loop", asyncio.call_method0("get_running_loop")?)?;
    let done_none = future_type.call((), Some(&loop_kwargs))?;
    let task_kwargs = |name: &str| -> PyResult<Py<pyo3::types::PyDict>> {
        let kwargs = loop_kwargs.copy()?;
        kwargs.set_item("name", name)?;
        Ok(kwargs.unbind())
    };
    done_none.call_method1("set_result", (py.None(),))?;
    *engine.py.borrow_mut() = Some(Rc::new(PyCtx {
        app,
        http,
        task_type: asyncio.getattr("Task")?.unbind(),
        future_type: future_type.unbind(),
        http_task_kwargs: task_kwargs("bourbon-http")?,
        ws_task_kwargs: task_kwargs("bourbon-websocket")?,
        loop_kwargs: loop_kwargs.unbind(),
        done_none: done_none.unbind(),
        state,
        done,
    }));
    if let Some(serve) = engine.serve.borrow_mut().take() {
        engine.local.spawn_local(async move {
            serve.await;
            push(Work::Stopped { fast: false });
        });
    }
    crate::supervise::booted(crate::scoreboard::Interface::Asgi);
    Ok(())
}
