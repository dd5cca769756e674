"""A WSGI app for the response-buffering tests (stdlib only).

- ``/gen?size=N&chunk=C&id=X``: a generator body of ``size`` bytes in ``chunk``-byte pieces,
  piece ``k`` made of the byte ``k % 251``; prints ``gen-closed X`` when its ``close()`` runs.
- ``/nobuf?...``: the same with ``X-Accel-Buffering: no``; prints ``nobuf-closed X``.
- ``/sse?events=N&id=X``: ``text/event-stream``, N events of 1 KiB; prints ``sse-closed X``.
- ``/write?size=N&chunk=C&id=X``: the same bytes as ``/gen`` through the legacy ``write()``.
- ``/probe``: a short fixed answer.

Every body is deterministic, so a client can check it byte for byte (see :func:`expected`).
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qs


def piece(k: int, n: int) -> bytes:
    return bytes([k % 251]) * n


def expected(size: int, chunk: int) -> bytes:
    """The body ``/gen``, ``/nobuf`` and ``/write`` send for these parameters."""
    return b"".join(
        piece(k, min(chunk, size - k * chunk)) for k in range((size + chunk - 1) // chunk)
    )


class Body:
    def __init__(self, size: int, chunk: int, tag: str):
        self.size = size
        self.chunk = chunk
        self.tag = tag

    def __iter__(self):
        k = 0
        while k * self.chunk < self.size:
            yield piece(k, min(self.chunk, self.size - k * self.chunk))
            k += 1

    def close(self) -> None:
        print(f"{self.tag}-closed", flush=True)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    qs = parse_qs(environ.get("QUERY_STRING", ""))
    size = int(qs.get("size", ["1048576"])[0])
    chunk = int(qs.get("chunk", ["65536"])[0])
    ident = qs.get("id", ["-"])[0]
    if path == "/probe":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok\n"]
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Body(size, chunk, f"gen {ident}")
    if path == "/nobuf":
        start_response(
            "200 OK", [("Content-Type", "application/octet-stream"), ("X-Accel-Buffering", "no")]
        )
        return Body(size, chunk, f"nobuf {ident}")
    if path == "/sse":
        events = int(qs.get("events", ["100000"])[0])
        start_response(
            "200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
        )
        return Body(events * 1024, 1024, f"sse {ident}")
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for part in Body(size, chunk, ""):
            write(part)
        print(f"write-done {ident}", flush=True)
        return []
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    print(f"unknown path {path}", file=sys.stderr, flush=True)
    return [b"not found\n"]
