"""The application behind the supervision tests: every path answers with the pid of the
worker that served it; some paths get stuck, are slow, grow the worker's memory, or end the
worker process with an exit code (``/exit?code=4``, as an application calling
``os._exit(4)`` would)."""

import os
import time
from urllib.parse import parse_qs

# Memory held on purpose by /grow, so the worker's resident size stays up.
_held: list[bytes] = []


def spin_forever():
    """Stuck in pure Python, holding the GIL."""
    n = 0
    while True:
        n += 1


def sleep_forever():
    """Stuck in a C call with the GIL released."""
    time.sleep(1000)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if path == "/spin":
        spin_forever()
    elif path == "/sleep":
        sleep_forever()
    elif path == "/slow":
        if "say" in query:
            print("slow request started", file=environ["wsgi.errors"], flush=True)
        time.sleep(float(query.get("t", ["1"])[0]))
    elif path == "/exit":
        os._exit(int(query.get("code", ["4"])[0]))
    elif path == "/grow":
        # Written byte by byte (not calloc'ed), so every page is resident.
        _held.append(b"x" * (int(query.get("mib", ["100"])[0]) * 1024 * 1024))
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
