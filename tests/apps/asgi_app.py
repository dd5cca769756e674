"""An ASGI 3 application exercising the HTTP spec (tests/python/test_asgi_http.py).

Routes by path; the behaviour of lifespan is chosen by environment variables so one module
serves every lifespan test.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import operator
import os
import sys

EVENTS_FILE = os.environ.get("ASGI_EVENTS")


def _note(event: str) -> None:
    if EVENTS_FILE:
        with open(EVENTS_FILE, "a") as f:
            f.write(f"{os.getpid()} {event}\n")
        # Also on stdout (the server's log), which a test can wait for without polling.
        # One write(2) per line: workers share the pipe, and `print` writes the text and its
        # newline apart when stdout is unbuffered (PYTHONUNBUFFERED in the tests).
        os.write(1, f"asgi-event {event}\n".encode())


async def lifespan(scope, receive, send):
    mode = os.environ.get("ASGI_LIFESPAN", "ok")
    if mode == "refuse":
        # What Django's ASGIHandler does with a scope it does not know.
        raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _note("startup")
            if mode == "fail":
                await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
                return
            scope["state"]["greeting"] = "hello from lifespan"
            scope["state"]["counter"] = [0]
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _note("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive) -> tuple[bytes, list[dict]]:
    body = bytearray()
    messages = []
    while True:
        message = await receive()
        messages.append({k: (len(v) if k == "body" else v) for k, v in message.items()})
        if message["type"] == "http.disconnect":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body), messages


_VAR = contextvars.ContextVar("asgi_app_var", default="unset")


async def _call_soon_report() -> dict:
    """What the running loop's `call_soon` does, as asyncio documents it: callbacks in order
    with their arguments, a cancelled handle skipped, the caller's context (or the one given)
    current in the callback, an exception handed to the loop's exception handler."""
    loop = asyncio.get_running_loop()
    ran = []
    done = loop.create_future()
    _VAR.set("request")
    given = contextvars.copy_context()
    given.run(_VAR.set, "given")
    loop.call_soon(ran.append, "a")
    skipped = loop.call_soon(ran.append, "cancelled")
    skipped.cancel()
    loop.call_soon(lambda: ran.append("ctx:" + _VAR.get()))
    loop.call_soon(lambda: ran.append("given:" + _VAR.get()), context=given)
    caught = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda lp, info: caught.append(info))
    try:
        handle = loop.call_soon(operator.truediv, 1, 0)
        loop.call_soon(done.set_result, None)
        await done
    finally:
        loop.set_exception_handler(previous)
    # Every task is in asyncio's set of tasks while it runs, and leaves it when freed.
    import _asyncio

    registry = getattr(_asyncio, "_all_tasks", None) or getattr(_asyncio, "_scheduled_tasks", None)
    mine = asyncio.current_task()
    extra = loop.create_task(asyncio.sleep(0))
    listed = mine in asyncio.all_tasks() and extra in asyncio.all_tasks()
    before = len(registry) if registry is not None else 0
    await extra
    del extra
    # The step that resumed us holds the finished task as its argument until it returns.
    await asyncio.sleep(0)
    gc.collect()
    after = len(registry) if registry is not None else 0
    # call_soon_threadsafe from another thread: the callback runs on the loop, in a copy of
    # the calling thread's context, and the handle is bourbon's too.
    import threading

    threaded = loop.create_future()
    seen = {}

    def from_thread():
        _VAR.set("thread")
        h = loop.call_soon_threadsafe(lambda: threaded.set_result(_VAR.get()))
        seen["type"] = f"{type(h).__module__}.{type(h).__qualname__}"

    t = threading.Thread(target=from_thread)
    t.start()
    threadsafe = {"context": await asyncio.wait_for(threaded, 10)}
    t.join(10)
    threadsafe.update(seen)
    # get_debug answers as the stdlib's does, before and after debug mode is switched on
    # (bourbon's loop answers False from C until then) and off again.
    debug = [loop.get_debug()]
    loop.set_debug(True)
    debug.append(loop.get_debug())
    loop.set_debug(False)
    debug.append(loop.get_debug())
    return {
        "threadsafe": threadsafe,
        "debug": debug,
        "tasks_listed": listed,
        "registry_add": type(vars(registry).get("add")).__name__ if registry is not None else None,
        "freed_task_left_the_set": registry is None or after == before - 1,
        "ran": ran,
        "cancelled": skipped.cancelled(),
        "caught": [type(i["exception"]).__name__ for i in caught],
        "message": caught[0]["message"] if caught else None,
        "handle_reported": bool(caught) and caught[0]["handle"] is handle,
        "handle_type": f"{type(handle).__module__}.{type(handle).__qualname__}",
    }


async def respond(send, status=200, body=b"", headers=None, content_type=b"text/plain"):
    hdrs = [(b"content-type", content_type)] + list(headers or [])
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


def _scope_json(scope) -> bytes:
    out = {}
    for k, v in scope.items():
        if k == "headers":
            out[k] = [[n.decode("latin-1"), val.decode("latin-1")] for n, val in v]
        elif isinstance(v, bytes):
            out[k] = v.decode("latin-1")
        elif k == "state":
            out[k] = {sk: sv for sk, sv in v.items() if isinstance(sv, str)}
        else:
            out[k] = v
    out["header_types"] = sorted({type(h).__name__ for h in scope["headers"]})
    return json.dumps(out).encode()


async def _thread_handbacks(threads: int = 8, rounds: int = 200) -> dict:
    """Threads hand values back through `call_soon_threadsafe`, each waiting for the loop to
    take its last one: first while the loop is busy with `run_in_executor` round trips, then
    while it only sleeps, where a lost wake would leave a thread waiting."""
    import threading

    loop = asyncio.get_running_loop()
    report = {}
    for phase in ("busy", "idle"):
        got = {i: [] for i in range(threads)}
        taken = [threading.Semaphore(0) for _ in range(threads)]
        finished = asyncio.Event()

        def take(i, n, got=got, taken=taken, finished=finished):
            got[i].append(n)
            taken[i].release()
            if sum(map(len, got.values())) == threads * rounds:
                finished.set()

        def worker(i, taken=taken):
            for n in range(rounds):
                loop.call_soon_threadsafe(take, i, n)
                if not taken[i].acquire(timeout=10):
                    return

        started = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in started:
            t.start()
        if phase == "busy":
            for _ in range(100_000):
                if finished.is_set():
                    break
                await loop.run_in_executor(None, int)
        try:
            await asyncio.wait_for(finished.wait(), 15)
        except asyncio.TimeoutError:
            pass
        for t in started:
            await loop.run_in_executor(None, t.join, 15)
        report[phase] = all(got[i] == list(range(rounds)) for i in range(threads))
    return report


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    assert scope["type"] == "http", scope["type"]
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        # What Starlette does: route on the path below the mount point.
        path = path[len(root) :]
    if path == "/" or path == "/hello":
        await respond(send, body=b"Hello, World!")
    elif path.startswith("/scope"):
        await respond(send, body=_scope_json(scope), content_type=b"application/json")
    elif path == "/echo":
        body, _ = await read_body(receive)
        await respond(send, body=body)
    elif path == "/messages":
        body, messages = await read_body(receive)
        await respond(send, body=json.dumps(messages).encode(), content_type=b"application/json")
    elif path == "/no-read":
        # Answers without reading the body (100-continue must then not be sent).
        await respond(send, body=b"did not read")
    elif path == "/stream":
        # Each chunk is flushed before the next is produced: the client acks each one by
        # the path's query (the test reads chunk by chunk).
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-stream", b"1")]})
        for i in range(int(scope["query_string"] or b"3")):
            await send({"type": "http.response.body", "body": b"part%d\n" % i, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/slow-stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await asyncio.sleep(30)
        await send({"type": "http.response.body", "body": b"late\n"})
    elif path == "/big":
        n = int(scope["query_string"] or b"1048576")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < n:
                piece = chunk[: n - sent]
                await send(
                    {
                        "type": "http.response.body",
                        "body": piece,
                        "more_body": sent + len(piece) < n,
                    }
                )
                sent += len(piece)
        except OSError as exc:
            # The client went, or stopped reading past --write-timeout (spec 2.4: send()
            # raises an OSError subclass once the connection is gone).
            _note(f"big-stopped {type(exc).__name__}")
            return
        _note(f"big-done {sent}")
    elif path == "/status":
        code = int(scope["query_string"] or b"200")
        await send({"type": "http.response.start", "status": code, "headers": []})
        await send({"type": "http.response.body", "body": b"should not be sent for 204/304"})
    elif path == "/raise-before":
        raise RuntimeError("boom before start")
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after start")
    elif path == "/return-early":
        return
    elif path == "/bad-header":
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"x-evil", b"a\r\nInjected: yes")],
                }
            )
        except ValueError as e:
            await respond(send, status=500, body=f"refused: {e}".encode())
    elif path == "/bad-name":
        try:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"bad name", b"x")]}
            )
        except ValueError:
            await respond(send, status=500, body=b"refused name")
    elif path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting\n", "more_body": True})
        # Writing keeps failing once the client is gone; so does receive().
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                _note("disconnected")
                return
    elif path == "/send-after-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(10000):
                await send({"type": "http.response.body", "body": b"y" * 65536, "more_body": True})
                await asyncio.sleep(0)
        except OSError as e:
            _note(f"send-raised {type(e).__name__}")
            return
        _note("send-never-raised")
    elif path == "/pathsend":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.pathsend", "path": os.path.abspath(__file__)})
    elif path == "/zerocopy":
        with open(__file__, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", str(size - 10).encode())],
                }
            )
            await send({"type": "http.response.zerocopysend", "file": f, "offset": 10})
    elif path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"body with trailers"})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc123")],
                "more_trailers": False,
            }
        )
    elif path == "/early-hints":
        await send(
            {
                "type": "http.response.early_hint",
                "links": [b"</style.css>; rel=preload; as=style"],
            }
        )
        await respond(send, body=b"after hints")
    elif path == "/state":
        state = scope.get("state", {})
        state["counter"][0] += 1
        state["mine"] = "per-request"
        await respond(send, body=json.dumps(state.get("counter")).encode())
    elif path == "/loop":
        await asyncio.sleep(0.01)  # a timer of the loop's own
        loop = asyncio.get_running_loop()
        # bourbon's own loop is asyncio's, subclassed (a faster call_soon); uvloop's is not.
        if isinstance(loop, asyncio.BaseEventLoop):
            name = "asyncio"
        else:
            name = type(loop).__module__.split(".")[0]
        await respond(send, body=name.encode())
    elif path == "/task":
        # The request's task: the same asyncio Task before and after it first waits (bourbon
        # runs the first step at once), listed, and with a context of its own.
        first = asyncio.current_task()
        before = _VAR.get()
        _VAR.set("mine")
        listed = first in asyncio.all_tasks()
        await asyncio.sleep(0)
        second = asyncio.current_task()
        report = {
            "type": f"{type(first).__module__}.{type(first).__qualname__}",
            "name": first.get_name(),
            "same": first is second,
            "listed": listed,
            "var_before": before,
            "var_after": _VAR.get(),
        }
        await respond(send, body=json.dumps(report).encode())
    elif path == "/threads":
        # Hand-backs from other threads (asgiref's sync_to_async, run_in_executor): each
        # must wake the loop, whether it sleeps or is busy when the thread calls it.
        await respond(send, body=json.dumps(await _thread_handbacks()).encode())
    elif path == "/call-soon":
        await respond(send, body=json.dumps(await _call_soon_report()).encode())
    elif path == "/exit":
        sys.exit(3)
    else:
        await respond(send, status=404, body=b"not found")
