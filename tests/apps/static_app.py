"""WSGI app behind bourbon's static-file layer, for tests/python/test_static.py.

Every answer of the app carries ``X-Answered-By: static_app``, so a test can tell a response
the app made from one the static layer made.

- ``/_/seen``: JSON list of every ``RAW_URI`` the app was called with (this path excluded), in
  order: proof that a refused request never reached the app.
- ``/download/accel?to=URI``: a response with ``X-Accel-Redirect: URI`` and a body that must
  never reach the client. ``/download/sendfile?to=PATH`` does the same with ``X-Sendfile``.
  Both take ``type=`` (the Content-Type to set; ``none`` sets none; default
  ``application/x-report``) and ``extras=1`` (adds Cache-Control, Expires, Set-Cookie and a
  header the hand-over is expected to drop).
- ``/hello``: a plain 200 ``hello from the app``.
- Anything else: 404 ``static_app: <RAW_URI>``.
"""

from __future__ import annotations

import json
import threading
from urllib.parse import parse_qs

APP_BODY = b"app body: must never reach the client when a file is handed over\n"
_lock = threading.Lock()
_seen: list[str] = []


def _answer(start_response, status: str, body: bytes, headers=()):
    start_response(
        status,
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("X-Answered-By", "static_app"),
            *headers,
        ],
    )
    return [body]


def _hand_over(environ, start_response, field: str):
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    to = query.get("to", [""])[0]
    ctype = query.get("type", ["application/x-report"])[0]
    headers = [
        (field, to),
        ("Content-Disposition", 'attachment; filename="report.pdf"'),
        ("Content-Length", str(len(APP_BODY))),
        ("X-Answered-By", "static_app"),
    ]
    if ctype != "none":
        headers.append(("Content-Type", ctype))
    if query.get("extras") == ["1"]:
        headers += [
            ("Cache-Control", "private, max-age=5"),
            ("Expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
            ("Set-Cookie", "downloaded=1; Path=/"),
            ("X-App-Internal", "dropped"),
        ]
    start_response("200 OK", headers)
    return [APP_BODY]


def app(environ, start_response):
    raw = environ.get("RAW_URI", "")
    path = environ.get("PATH_INFO", "")
    if path == "/_/seen":
        with _lock:
            body = json.dumps(_seen).encode()
        return _answer(start_response, "200 OK", body, [("X-Seen", "1")])
    with _lock:
        _seen.append(raw)
    if path == "/download/accel":
        return _hand_over(environ, start_response, "X-Accel-Redirect")
    if path == "/download/sendfile":
        return _hand_over(environ, start_response, "X-Sendfile")
    if path == "/hello":
        return _answer(start_response, "200 OK", b"hello from the app\n")
    return _answer(start_response, "404 Not Found", f"static_app: {raw}\n".encode("latin-1"))
