"""Applications for the health-check tests (tests/python/test_health.py), WSGI ``app`` and
ASGI ``asgi``. Each counts the calls it gets, so a test can tell that a probe never reached it.

- ``/calls``: how many calls the application had, this one included.
- ``/sleep?seconds=S``: prints "health_app: sleeping" and waits S seconds (WSGI: on its
  thread; ASGI: ``asyncio.sleep``, the loop stays free).
- ``/gil?n=N``: a thread holds the GIL for a long time in one C call (``sum(range(N))`` never
  returns to the interpreter's loop, so it never lets the GIL go): no Python code runs
  anywhere in the process meanwhile. It prints "health_app: holding the GIL" first. WSGI:
  on the request's own thread, which never answers; ASGI: on a thread started half a second
  after the response, once the event loop waits again.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from urllib.parse import parse_qs

CALLS = 0


def _param(query: str, name: str, default: str) -> str:
    return parse_qs(query).get(name, [default])[0]


def _hold_gil(n: int) -> None:
    print(f"health_app: holding the GIL (pid {os.getpid()})", file=sys.stderr, flush=True)
    sum(range(n))


def app(environ, start_response):
    global CALLS
    CALLS += 1
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")
    if path == "/sleep":
        seconds = float(_param(query, "seconds", "1"))
        print("health_app: sleeping", file=sys.stderr, flush=True)
        time.sleep(seconds)
    elif path == "/gil":
        _hold_gil(int(_param(query, "n", str(10**10))))
    body = f"calls={CALLS}\n".encode() if path == "/calls" else f"app {path}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    global CALLS
    if scope["type"] != "http":
        return
    CALLS += 1
    path = scope["path"]
    query = scope["query_string"].decode("latin-1")
    if path == "/sleep":
        print("health_app: sleeping", file=sys.stderr, flush=True)
        await asyncio.sleep(float(_param(query, "seconds", "1")))
    elif path == "/gil":
        n = int(_param(query, "n", str(10**10)))
        threading.Timer(0.5, _hold_gil, args=(n,)).start()
    body = f"calls={CALLS}\n".encode() if path == "/calls" else f"app {path}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
