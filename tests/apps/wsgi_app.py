"""A plain WSGI application that exercises PEP 3333 for tests/python/test_wsgi.py.

Every behaviour lives under its own path; the tests drive it over real sockets. Side effects
the client cannot see (``close()`` calls) are appended to the file named by the
``WSGI_TEST_LOG`` environment variable, one ``tag`` per line.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
from urllib.parse import parse_qs

TEXT = [("Content-Type", "text/plain")]

# File objects handed to wsgi.file_wrapper are kept alive here so that only an explicit
# close() (by the server, through the wrapper) closes them, never the garbage collector.
_KEEP: list[object] = []


def record(tag: str) -> None:
    """Append ``tag`` to the side-channel file (one line per event)."""
    path = os.environ.get("WSGI_TEST_LOG")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(tag + "\n")


def _json(start_response, obj, status: str = "200 OK"):
    body = json.dumps(obj).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _qs(environ) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}


def _describe(value):
    """A JSON-friendly (type name, value) pair for an environ value."""
    if isinstance(value, (str, bool, int)) or value is None:
        return [type(value).__name__, value]
    if isinstance(value, tuple):
        return ["tuple", list(value)]
    return [type(value).__name__, repr(value)]


def _latin1(b: bytes) -> str:
    return b.decode("latin-1")


# --- environ -------------------------------------------------------------------------------


def env_dump(environ, start_response):
    return _json(start_response, {k: _describe(v) for k, v in environ.items()})


# --- wsgi.input ----------------------------------------------------------------------------


def _after_end(inp) -> list[str]:
    """What further reads return once the body is exhausted (several times each)."""
    out = []
    for _ in range(3):
        out += [repr(inp.read()), repr(inp.read(10)), repr(inp.readline())]
    out.append(repr(inp.readlines()))
    out.append(repr(list(inp)))
    return out


def input_read(environ, start_response):
    inp = environ["wsgi.input"]
    data = inp.read()
    return _json(
        start_response,
        {
            "len": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "body": _latin1(data[:200]),
            "type": type(data).__name__,
            "after": _after_end(inp),
        },
    )


def input_readn(environ, start_response):
    n = int(_qs(environ)["n"])
    inp = environ["wsgi.input"]
    chunks = []
    while True:
        chunk = inp.read(n)
        if not chunk:
            break
        chunks.append(chunk)
    return _json(
        start_response,
        {
            "chunks": [_latin1(c) for c in chunks],
            "types": sorted({type(c).__name__ for c in chunks}),
            "after": _after_end(inp),
        },
    )


def input_readline(environ, start_response):
    inp = environ["wsgi.input"]
    n = _qs(environ).get("n")
    lines = []
    while True:
        line = inp.readline() if n is None else inp.readline(int(n))
        if not line:
            break
        lines.append(_latin1(line))
    return _json(start_response, {"lines": lines, "after": _after_end(inp)})


def input_readlines(environ, start_response):
    inp = environ["wsgi.input"]
    hint = int(_qs(environ)["hint"])
    first = inp.readlines(hint)
    rest = inp.readlines()
    return _json(
        start_response,
        {
            "first": [_latin1(x) for x in first],
            "rest": [_latin1(x) for x in rest],
            "after": _after_end(inp),
        },
    )


def input_iter(environ, start_response):
    inp = environ["wsgi.input"]
    lines = [_latin1(x) for x in inp]
    return _json(start_response, {"lines": lines, "after": _after_end(inp)})


def input_hash(environ, start_response):
    inp = environ["wsgi.input"]
    digest = hashlib.sha256()
    size = 0
    reads = 0
    while True:
        chunk = inp.read(64 * 1024)
        if not chunk:
            break
        assert len(chunk) <= 64 * 1024
        digest.update(chunk)
        size += len(chunk)
        reads += 1
    return _json(start_response, {"len": size, "sha256": digest.hexdigest(), "reads": reads})


# --- wsgi.errors ---------------------------------------------------------------------------


def errors(environ, start_response):
    err = environ["wsgi.errors"]
    marker = _qs(environ).get("m", "marker")
    err.write(f"wsgi.errors says {marker}\n")
    err.writelines([f"writelines {marker} one\n", f"writelines {marker} two\n"])
    err.flush()
    start_response("200 OK", TEXT)
    return [b"logged"]


# --- start_response ------------------------------------------------------------------------

BAD_START = {
    "bytes-status": (b"200 OK", TEXT),
    "int-status": (200, TEXT),
    "no-code": ("OK", TEXT),
    "four-digit": ("2000 x", TEXT),
    "no-reason-sep": ("200OK", TEXT),
    "name-space": ("200 OK", [("X Bad", "v")]),
    "name-colon": ("200 OK", [("X:Bad", "v")]),
    "value-newline": ("200 OK", [("X-Bad", "a\nb")]),
    "value-cr": ("200 OK", [("X-Bad", "a\rb")]),
    "value-non-latin1": ("200 OK", [("X-Bad", "\u20ac")]),
    "bytes-header": ("200 OK", [(b"X-Bad", b"v")]),
    "hop-transfer-encoding": ("200 OK", [("Transfer-Encoding", "chunked")]),
    "hop-keep-alive": ("200 OK", [("Keep-Alive", "timeout=5")]),
    "hop-upgrade": ("200 OK", [("Upgrade", "websocket")]),
    "headers-none": ("200 OK", None),
}


def bad_start(environ, start_response):
    case = _qs(environ)["case"]
    status, headers = BAD_START[case]
    start_response(status, headers)
    return [b"should never be sent"]


def conn_close(environ, start_response):
    start_response("200 OK", [*TEXT, ("Content-Length", "3"), ("Connection", "close")])
    return [b"bye"]


def write_only(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"one,")
    write(b"")
    write(b"two,")
    write(b"three")
    return []


def big_unique(environ, start_response):
    # A body made for this request only: once returned, the server holds the only reference.
    n = int(_qs(environ)["n"])
    data = os.urandom(n)
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("X-Sha256", hashlib.sha256(data).hexdigest()),
        ],
    )
    return [data]


def write_mix(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"written-")
    return [b"returned-", b"iterable"]


# --- exc_info ------------------------------------------------------------------------------


def excinfo_before(environ, start_response):
    start_response("200 OK", [*TEXT, ("X-First", "yes")])
    try:
        raise ValueError("replaced before the body")
    except ValueError:
        start_response("503 Service Unavailable", [*TEXT, ("X-Second", "yes")], sys.exc_info())
    return [b"second head"]


def excinfo_after(environ, start_response):
    def gen():
        start_response("200 OK", TEXT)
        yield b"partial body"
        try:
            raise ValueError("exc-info-after-body-started")
        except ValueError:
            # PEP 3333: with the head already sent, this must re-raise the exception.
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        record("excinfo-after: start_response did not raise")
        yield b"must not be sent"

    return gen()


def excinfo_after_empty(environ, start_response):
    """An empty chunk does not send the head: replacing it afterwards still works."""

    def gen():
        start_response("200 OK", [*TEXT, ("X-First", "yes")])
        yield b""
        try:
            raise KeyError("not found after an empty chunk")
        except KeyError:
            start_response("404 Not Found", [*TEXT, ("X-Second", "yes")], sys.exc_info())
        yield b"replaced"

    return gen()


def second_without_excinfo(environ, start_response):
    start_response("200 OK", TEXT)
    start_response("201 Created", TEXT)
    return [b"twice"]


# --- late start_response and streaming -----------------------------------------------------


def late(environ, start_response):
    def gen():
        start_response("200 OK", [*TEXT, ("X-Late", "yes")])
        yield b"late "
        yield b"start"

    return gen()


def empty_first(environ, start_response):
    def gen():
        start_response("200 OK", TEXT)
        yield b""
        yield b""
        yield b"data"

    return gen()


def stream(environ, start_response):
    def gen():
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        for i in range(5):
            if i:
                time.sleep(0.3)
            yield f"data: {i}\n\n".encode()

    return gen()


# --- close() -------------------------------------------------------------------------------


class Tracked:
    """An iterable whose close() is recorded; optionally fails or runs (almost) forever."""

    def __init__(self, tag: str, chunks: int, fail_at: int | None = None, pause: float = 0):
        self.tag = tag
        self.chunks = chunks
        self.fail_at = fail_at
        self.pause = pause
        self.produced = 0

    def __iter__(self):
        for i in range(self.chunks):
            if i == self.fail_at:
                raise RuntimeError(f"{self.tag} failed at chunk {i}")
            if i and self.pause:
                time.sleep(self.pause)
            self.produced += 1
            yield b"x" * 1024 + b"\n"

    def close(self):
        record(f"close {self.tag} produced={self.produced}")


def close_normal(environ, start_response):
    start_response("200 OK", TEXT)
    return Tracked("normal", 3)


def close_raise(environ, start_response):
    start_response("200 OK", TEXT)
    return Tracked("raise", 5, fail_at=2)


def close_gone(environ, start_response):
    start_response("200 OK", TEXT)
    return Tracked("gone", 10_000, pause=0.01)


# --- Content-Length mismatches -------------------------------------------------------------


def cl_long(environ, start_response):
    start_response("200 OK", [*TEXT, ("Content-Length", "5")])
    if _qs(environ).get("gen"):
        return iter([b"0123", b"456789"])
    return [b"0123456789"]


def cl_short(environ, start_response):
    start_response("200 OK", [*TEXT, ("Content-Length", "100")])
    if _qs(environ).get("gen"):
        return iter([b"sh", b"ort"])
    return [b"short"]


# --- wsgi.file_wrapper ---------------------------------------------------------------------


class RecordingFile(io.FileIO):
    """A real file (with fileno) whose close() is recorded."""

    def close(self):
        if not self.closed:
            record(f"file closed {self.name}")
        super().close()


class RecordingBytesIO(io.BytesIO):
    def close(self):
        if not self.closed:
            record("bytesio closed")
        super().close()


def file_wrapper(environ, start_response):
    q = _qs(environ)
    path = q["path"]
    kind = q.get("kind", "fileio")
    if kind == "fileio":
        f = RecordingFile(path, "rb")
    elif kind == "bytesio":
        with open(path, "rb") as src:
            f = RecordingBytesIO(src.read())
    else:
        f = open(path, "rb")  # closed by the server, through the wrapper
    if "offset" in q:
        f.seek(int(q["offset"]))
    if "pre_read" in q:
        # A buffered file's logical position differs from its descriptor's after a read.
        f.read(int(q["pre_read"]))
    _KEEP.append(f)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 8192)


# --- exceptions ----------------------------------------------------------------------------


def raise_before(environ, start_response):
    raise RuntimeError("secret-boom-before-start-response")


def raise_mid(environ, start_response):
    def gen():
        start_response("200 OK", TEXT)
        yield b"first chunk"
        raise RuntimeError("boom-in-the-middle")

    return gen()


def hello(environ, start_response):
    body = b"hello"
    start_response("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
    return [body]


ROUTES = {
    "/input/read": input_read,
    "/input/readn": input_readn,
    "/input/readline": input_readline,
    "/input/readlines": input_readlines,
    "/input/iter": input_iter,
    "/input/hash": input_hash,
    "/errors": errors,
    "/bad-start": bad_start,
    "/conn-close": conn_close,
    "/write-only": write_only,
    "/write-mix": write_mix,
    "/big-unique": big_unique,
    "/excinfo/before": excinfo_before,
    "/excinfo/after": excinfo_after,
    "/excinfo/after-empty": excinfo_after_empty,
    "/second-without-excinfo": second_without_excinfo,
    "/late": late,
    "/empty-first": empty_first,
    "/stream": stream,
    "/close/normal": close_normal,
    "/close/raise": close_raise,
    "/close/gone": close_gone,
    "/cl/long": cl_long,
    "/cl/short": cl_short,
    "/file": file_wrapper,
    "/raise/before": raise_before,
    "/raise/mid": raise_mid,
    "/hello": hello,
}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/env"):
        return env_dump(environ, start_response)
    handler = ROUTES.get(path)
    if handler is None:
        start_response("404 Not Found", TEXT)
        return [b"no such route\n"]
    return handler(environ, start_response)
