"""The asyncio side of bourbon's ASGI worker.

The worker's thread runs asyncio's standard event loop over `_Selector`, whose `select()`
runs bourbon's Rust runtime (which owns the listening and client sockets) with the GIL
released, until the loop has something to do. Connection tasks hand their requests to Python
inside that same `select()` (through `spawn` below), so a request costs no thread switch.

This module owns what is cheap to write in Python and runs once per worker or once per
request task: the loop's life, lifespan (startup, state, shutdown), and the wrapper coroutine
that reports each request task's end to Rust. The per-request hot path (scope, `receive`,
`send`, the response) is Rust (`crates/bourbon-py/src/asgi/`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
import itertools
import select
import selectors
import sys
import traceback
import weakref

from bourbon import _bourbon

_wait = _bourbon._asgi_wait


_EPOLLIN = select.EPOLLIN
_EPOLLOUT = select.EPOLLOUT
_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE


class _Selector(selectors.EpollSelector):
    """The stdlib epoll selector (asyncio's own registrations stay in it), waiting in Rust,
    which also collects its events (the stdlib's own `select()` mapping, without a second
    `epoll_wait`)."""

    def select(self, timeout=None):
        events = _wait(self._selector.fileno(), timeout)
        if not events:
            return []
        ready = []
        fd_to_key = self._fd_to_key
        for fd, event in events:
            key = fd_to_key.get(fd)
            if key:
                mask = 0
                if event & ~_EPOLLIN:
                    mask |= _EVENT_WRITE
                if event & ~_EPOLLOUT:
                    mask |= _EVENT_READ
                ready.append((key, mask & key.events))
        return ready


class _Loop(asyncio.SelectorEventLoop):
    """asyncio's selector loop with bourbon's `call_soon` and `call_soon_threadsafe` (Rust,
    `asgi/handle.rs`): the same queue and semantics, without four Python calls per scheduled
    callback. Debug mode and a closed loop get the stdlib's own methods back.

    Out of debug mode `get_debug` is a C callable that answers False: the C `Future` and
    `Task` ask the loop with it each time one is made (a Python frame each, in CPython up to
    3.13). `set_debug(True)` gives back the stdlib's method, which reads `_debug`."""

    def __init__(self, selector):
        super().__init__(selector)
        if not self.get_debug():
            self.call_soon = _bourbon.CallSoon(self)
            self.call_soon_threadsafe = _bourbon.CallSoonThreadsafe(self)
            self.get_debug = itertools.repeat(False).__next__

    # A wake already on its way (see `_write_to_self`).
    _wake_pending = False

    def _write_to_self(self):
        # asyncio writes a byte to the self-pipe on every `call_soon_threadsafe`; a Django
        # async view makes about fifteen of them per request (asgiref's executor thread hands
        # back each `sync_to_async` call), all but the first while the loop is already awake.
        # One byte in the pipe is enough to wake the loop, as libuv (uvloop) coalesces its
        # async wakes. The flag is cleared only after the pipe is read, so a call that finds
        # it set has already queued its callback where that iteration's next timeout sees it.
        if self._wake_pending:
            return
        self._wake_pending = True
        super()._write_to_self()

    def _read_from_self(self):
        # One read (the stdlib reads until EAGAIN): the pipe is level-triggered, so what is
        # written after this read wakes the next select.
        try:
            data = self._ssock.recv(4096)
            if data:
                self._process_self_data(data)
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self._wake_pending = False

    def set_debug(self, enabled):
        super().set_debug(enabled)
        if enabled:
            self.__dict__.pop("call_soon", None)
            self.__dict__.pop("call_soon_threadsafe", None)
            self.__dict__.pop("get_debug", None)

    def close(self):
        self.__dict__.pop("call_soon", None)
        self.__dict__.pop("call_soon_threadsafe", None)
        super().close()


def _fast_task_set() -> None:
    """Register new tasks without two Python calls each (Rust, `asgi/handle.rs`): the C
    `Task` adds every task to a module-level `WeakSet` (`_all_tasks` in CPython 3.11,
    `_scheduled_tasks` in 3.12 and 3.13; 3.14 has none) through its `add` method, which an
    instance attribute overrides. Same set, same contents, so `asyncio.all_tasks()` is
    unchanged."""
    try:
        import _asyncio
    except ImportError:
        return
    for name in ("_all_tasks", "_scheduled_tasks"):
        tasks = getattr(_asyncio, name, None)
        if isinstance(tasks, weakref.WeakSet) and "add" not in vars(tasks):
            tasks.add = _bourbon.TaskSetAdd(tasks)


def _log(level: str, message: str, traceback: str | None = None) -> None:
    _bourbon._log(level, message, traceback)


async def _http(app, scope, receive, send):
    try:
        await app(scope, receive, send)
    except BaseException as exc:
        send._finish(exc)
        if not isinstance(exc, Exception):
            raise
    else:
        send._finish(None)


class _SyncThread(concurrent.futures.ThreadPoolExecutor):
    """One thread for one request's thread-sensitive calls at a time (asgiref's executors
    are `ThreadPoolExecutor(max_workers=1)` too); it knows whether it is idle."""

    def __init__(self):
        super().__init__(max_workers=1, thread_name_prefix="bourbon-sync")
        self._last = None

    def submit(self, fn, /, *args, **kwargs):
        future = super().submit(fn, *args, **kwargs)
        # One thread, first in first out: the last call done means every call done.
        self._last = future
        return future

    def idle(self) -> bool:
        return self._last is None or self._last.done()


# Idle threads kept for later requests; past that, a thread returned is let go.
_SYNC_POOL_KEEP = 128


def _django_sync_pool(app):
    """The request wrapper that gives each HTTP request of a Django site a pooled sync thread
    (`--django-sync-pool`), or None when `app` is not Django's ASGI handler (nor Channels'
    router with it as the `http` route) or asgiref does not have what it needs.

    Django's handler enters a `ThreadSensitiveContext` per request, for which asgiref makes
    a `ThreadPoolExecutor(max_workers=1)` on the first thread-sensitive call and shuts it
    down (joined from yet another thread) at the end: two threads started per request. This
    wrapper enters that context itself, outside Django's (which then reuses it, as nested
    contexts do), with an executor from the pool registered for it, and takes the executor
    back before the context exits, so asgiref has nothing to shut down. Everything else is
    asgiref's: a task that outlives its request and calls `sync_to_async` again gets a new
    executor, as it would under Django's own context."""
    handlers = sys.modules.get("django.core.handlers.asgi")
    if handlers is None:
        return None
    django = isinstance(app, handlers.ASGIHandler)
    routing = sys.modules.get("channels.routing")
    if not django and routing is not None and isinstance(app, routing.ProtocolTypeRouter):
        django = isinstance(app.application_mapping.get("http"), handlers.ASGIHandler)
    if not django:
        return None
    try:
        from asgiref.sync import SyncToAsync, ThreadSensitiveContext
    except ImportError:
        return None
    table = getattr(SyncToAsync, "context_to_thread_executor", None)
    if not all(hasattr(table, m) for m in ("__setitem__", "pop")):
        return None
    idle = []

    async def pooled(app, scope, receive, send):
        executor = idle.pop() if idle else _SyncThread()
        context = ThreadSensitiveContext()
        try:
            async with context:
                table[context] = executor
                try:
                    await app(scope, receive, send)
                finally:
                    table.pop(context, None)
        finally:
            # Still running a call (the request was cancelled meanwhile): not reused; the
            # thread ends after it.
            if executor.idle() and len(idle) < _SYNC_POOL_KEEP:
                idle.append(executor)
            else:
                executor.shutdown(wait=False)

    async def http(app, scope, receive, send):
        if scope["type"] != "http":
            # WebSockets (Channels' consumers) keep asgiref's own executors.
            return await _http(app, scope, receive, send)
        return await _http(functools.partial(pooled, app), scope, receive, send)

    return http


def _asgi2(app):
    async def app3(scope, receive, send):
        await app(scope)(receive, send)

    return app3


_FAILED = object()
_UNSUPPORTED = object()


class _Lifespan:
    """The lifespan protocol (ASGI spec, "Lifespan") for one worker."""

    def __init__(self, app, loop, strict: bool):
        self.app = app
        self.loop = loop
        self.strict = strict
        self.state: dict = {}
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.started = loop.create_future()
        self.stopped = loop.create_future()
        self.task = None

    async def _receive(self):
        return await self.inbox.get()

    async def _send(self, message):
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            _settle(self.started, True)
        elif kind == "lifespan.startup.failed":
            _settle(self.started, ("failed", message.get("message", "")))
        elif kind == "lifespan.shutdown.complete":
            _settle(self.stopped, True)
        elif kind == "lifespan.shutdown.failed":
            _settle(self.stopped, ("failed", message.get("message", "")))
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} during lifespan")

    async def _run(self):
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if not self.started.done():
                if self.strict:
                    _log(
                        "error",
                        "Exception in 'lifespan' startup (--lifespan on)",
                        traceback.format_exc(),
                    )
                    _settle(self.started, ("raised", None))
                else:
                    # Django's ASGIHandler, for one, raises for any scope but http: the app
                    # does not do lifespan, and is served without it.
                    _log("debug", f"the application does not support lifespan ({exc!r})")
                    _settle(self.started, _UNSUPPORTED)
            elif not self.stopped.done():
                _log("error", "Exception in 'lifespan' protocol", traceback.format_exc())
                _settle(self.stopped, ("failed", "exception"))
            if not isinstance(exc, Exception):
                raise
        finally:
            _settle(self.started, _UNSUPPORTED)
            _settle(self.stopped, True)

    async def startup(self):
        """True when started, _UNSUPPORTED, or _FAILED (already logged)."""
        self.task = self.loop.create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        outcome = await self.started
        if outcome is True or outcome is _UNSUPPORTED:
            if outcome is _UNSUPPORTED and self.strict:
                _log("error", "the application does not support lifespan (--lifespan on)")
                return _FAILED
            return outcome
        what, message = outcome
        if what == "failed":
            _log("error", f"Application startup failed: {message or '(no message)'}")
        return _FAILED

    async def shutdown(self, timeout: float):
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        try:
            outcome = await asyncio.wait_for(asyncio.shield(self.stopped), max(timeout, 0.1))
        except asyncio.TimeoutError:
            _log("warning", "lifespan shutdown did not complete in time")
            return
        if outcome is not True:
            _log("error", f"Application shutdown failed: {outcome[1] or '(no message)'}")


def _settle(fut, value) -> None:
    if not fut.done():
        fut.set_result(value)


_loop = None


def _dump_tasks() -> None:
    """Write the stack of every task of the worker's loop to the error log (called from the
    task dumper thread when the master asks a stuck worker for its stacks)."""
    loop = _loop
    if loop is None:
        return
    for _ in range(10):
        try:
            tasks = list(asyncio.all_tasks(loop))
            break
        except RuntimeError:  # the set changed while it was copied
            continue
    else:
        return
    out = io.StringIO()
    for task in tasks:
        out.write(f"\n{task!r} (most recent call last):\n")
        out.writelines(traceback.format_list(_await_chain(task.get_coro())))
    _log("error", f"Stacks of the {len(tasks)} asyncio tasks of the event loop:", out.getvalue())


def _await_chain(coro) -> traceback.StackSummary:
    """Where a suspended coroutine waits: its frame, then the frame of what it awaits, and so
    on down (`Task.print_stack` shows only the outermost one before Python 3.14)."""
    frames = []
    for _ in range(1000):
        if coro is None:
            break
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return traceback.StackSummary.extract(iter(frames))


def _uvloop():
    """uvloop's loop, watching the runtime's epoll: a round of the runtime whenever it has
    events (a connection task woken from Python makes it readable too), and every 20 ms for
    the runtime's own timers (keep-alive, pings), which are not descriptors."""
    import uvloop

    loop = uvloop.new_event_loop()

    def tick():
        _wait(-1, 0)

    fd = _bourbon._asgi_runtime_fd()
    if fd is None:
        raise RuntimeError("cannot find the runtime's epoll descriptor for uvloop")
    loop.add_reader(fd, tick)

    def timers():
        tick()
        loop.call_later(0.02, timers)

    loop.call_soon(timers)
    return loop


def run(
    app, lifespan: str, graceful_timeout: float, asgi2: bool, event_loop: str, sync_pool: bool
) -> int:
    """Serve `app` on this worker's thread until stopped; the worker's exit code."""
    global _loop
    if asgi2:
        app = _asgi2(app)
    _fast_task_set()
    if event_loop == "uvloop":
        try:
            loop = _uvloop()
        except ImportError:
            _log("error", "--loop uvloop: uvloop is not installed (pip install uvloop)")
            return 3
    else:
        loop = _Loop(_Selector())
    _loop = loop
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_main(loop, app, lifespan, graceful_timeout, sync_pool))
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def _main(loop, app, lifespan: str, graceful_timeout: float, sync_pool: bool) -> int:
    started = None
    state = None
    if lifespan != "off":
        ls = _Lifespan(app, loop, strict=lifespan == "on")
        outcome = await ls.startup()
        if outcome is _FAILED:
            return 3
        if outcome is True:
            started = ls
            state = ls.state
    done = loop.create_future()
    http = (_django_sync_pool(app) if sync_pool else None) or _http
    _bourbon._asgi_serve(app, http, state, done)
    fast = await done
    if not fast:
        # Serving ended (connections drained or the graceful timeout passed): what still
        # runs has no client to answer.
        keep = {asyncio.current_task(), started.task if started is not None else None}
        rest = [t for t in asyncio.all_tasks(loop) if t not in keep]
        for t in rest:
            t.cancel()
        if rest:
            await asyncio.wait(rest, timeout=1.0)
    if started is not None and not fast:
        await started.shutdown(graceful_timeout)
    return 0


def _cancel_all(loop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not pending:
        return
    for t in pending:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
