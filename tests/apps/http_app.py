"""Plain WSGI app (stdlib only) for bourbon's HTTP/1.1 end-to-end tests.

Every path not listed below echoes the request as JSON: method, raw URI, PATH_INFO,
QUERY_STRING, protocol, the length and SHA-256 of what ``wsgi.input.read()`` returned, and the
``HTTP_*``/``CONTENT_*`` environ keys.

Special paths (under ``/_/``):

- ``/_/calls``: how many times the app was called (this path itself is not counted).
- ``/_/noread``: answers without touching ``wsgi.input``.
- ``/_/fixed``: a one-element list body (the server computes Content-Length).
- ``/_/setcl``: a generator body with a Content-Length set by the app.
- ``/_/gen``: a generator body without Content-Length.
- ``/_/status/NNN``: status NNN with a body attempt (for 204/304).
- ``/_/sleep?s=SECS``: sleeps (at most 10 s), then answers.
- ``/_/stream?chunk=N&total=M``: a generator yielding ``total`` bytes in ``chunk``-byte pieces;
  prints ``stream-closed <id>`` when its ``close()`` runs.

Every call prints ``app-call METHOD RAW_URI`` to stdout.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
_calls = 0

FIXED_BODY = b"hello from the fixed body\n"
GEN_PARTS = [b"part one\n", b"part two\n", b"part three\n"]
STATUS_BODY = b"this body must never reach the client\n"


def _count() -> None:
    global _calls
    with _lock:
        _calls += 1


def _text(start_response, body: bytes, status: str = "200 OK", extra=()):
    headers = [("Content-Type", "text/plain"), *extra]
    start_response(status, headers)
    return [body]


def _echo(environ, start_response):
    body = environ["wsgi.input"].read()
    data = {
        "method": environ["REQUEST_METHOD"],
        "raw_uri": environ.get("RAW_URI"),
        "path_info": environ.get("PATH_INFO"),
        "query_string": environ.get("QUERY_STRING"),
        "protocol": environ.get("SERVER_PROTOCOL"),
        "content_length": environ.get("CONTENT_LENGTH"),
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "env": {
            k: v
            for k, v in environ.items()
            if k.startswith("HTTP_") or k in ("CONTENT_LENGTH", "CONTENT_TYPE")
        },
    }
    out = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [out]


class _Stream:
    """A streamed body whose close() is observable in the log."""

    def __init__(self, chunk: int, total: int, ident: str):
        self.chunk = chunk
        self.total = total
        self.ident = ident

    def __iter__(self):
        sent = 0
        piece = b"x" * self.chunk
        while sent < self.total:
            n = min(self.chunk, self.total - sent)
            yield piece if n == self.chunk else piece[:n]
            sent += n

    def close(self) -> None:
        print(f"stream-closed {self.ident}", flush=True)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/_/calls":
        with _lock:
            n = _calls
        return _text(start_response, str(n).encode())
    _count()
    print(f"app-call {environ['REQUEST_METHOD']} {environ.get('RAW_URI')}", flush=True)
    sys.stdout.flush()
    if path == "/_/noread":
        return _text(start_response, b"answered without reading the body\n")
    if path == "/_/fixed":
        return _text(start_response, FIXED_BODY)
    if path == "/_/setcl":
        total = sum(len(p) for p in GEN_PARTS)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(total))])
        return iter(list(GEN_PARTS))
    if path == "/_/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (p for p in GEN_PARTS)
    if path.startswith("/_/status/"):
        code = int(path.rsplit("/", 1)[1])
        reason = {204: "No Content", 304: "Not Modified"}.get(code, "Whatever")
        start_response(f"{code} {reason}", [("Content-Type", "text/plain")])
        return [STATUS_BODY]
    if path == "/_/sleep":
        secs = float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["1"])[0])
        time.sleep(min(secs, 10.0))
        return _text(start_response, b"slept\n")
    if path == "/_/stream":
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        chunk = int(qs.get("chunk", ["65536"])[0])
        total = int(qs.get("total", [str(1024 * 1024)])[0])
        ident = qs.get("id", ["-"])[0]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return _Stream(chunk, total, ident)
    return _echo(environ, start_response)
