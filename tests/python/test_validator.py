"""bourbon under ``wsgiref.validate``: apps in tests/apps/wsgi_validated.py are wrapped in the
standard library's PEP 3333 checker and driven with real requests. Any violation by the server
raises AssertionError inside it, which would show in its log."""

from __future__ import annotations

import hashlib
import itertools
import json
import os

import pytest
from rawhttp import Reader

APP = "wsgi_validated:app"
_checkpoints = itertools.count()


def build(path: str, method: str = "GET", body: bytes = b"", headers=()) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *(f"{k}: {v}" for k, v in headers)]
    if body and not any(k.lower() == "transfer-encoding" for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def fetch(srv, path: str, method: str = "GET", body: bytes = b"", headers=()):
    with srv.connect(timeout=30) as s:
        s.sendall(build(path, method, body, headers))
        return Reader(s).response(method)


def assert_clean(srv) -> None:
    """After one more request (its handling starts only once the previous one finished, and
    their log lines are in order), the log has no validator complaint."""
    n = next(_checkpoints)
    assert fetch(srv, f"/checkpoint?{n}").status == 200
    srv.wait_for_log(rf"CHECKPOINT {n}\b")
    log = srv.log
    for bad in (
        "AssertionError",
        "Traceback",
        "WSGIWarning",
        "garbage collected without being closed",
        "Error handling request",
    ):
        assert bad not in log, log


@pytest.fixture
def srv(start_server):
    return start_server(APP)


def test_get(srv):
    resp = fetch(srv, "/")
    assert resp.status == 200
    assert resp.body == b"hello from a validated app\n"
    assert resp.header("content-type") == "text/plain"
    assert_clean(srv)


def test_get_with_query_and_unknown_route(srv):
    assert fetch(srv, "/?a=1&b=%20").status == 200
    assert fetch(srv, "/nowhere").status == 404
    assert_clean(srv)


@pytest.mark.parametrize("size", [0, 1, 5000, 3 * 1024 * 1024], ids=["empty", "1", "5k", "3m"])
def test_post_read(srv, size):
    body = os.urandom(size)
    resp = fetch(srv, "/read", "POST", body, headers=[("Content-Type", "application/octet-stream")])
    assert resp.status == 200
    out = json.loads(resp.body)
    assert out == {"len": size, "sha256": hashlib.sha256(body).hexdigest()}
    assert_clean(srv)


def test_post_chunked_read(srv):
    body = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"
    resp = fetch(srv, "/read", "POST", body, headers=[("Transfer-Encoding", "chunked")])
    assert resp.status == 200
    out = json.loads(resp.body)
    assert out == {"len": 12, "sha256": hashlib.sha256(b"hello, world").hexdigest()}
    assert_clean(srv)


def test_post_readline(srv):
    resp = fetch(srv, "/readline", "POST", b"one\ntwo\n\nlast")
    assert resp.status == 200
    assert json.loads(resp.body) == {"lines": ["one\n", "two\n", "\n", "last"]}
    assert_clean(srv)


def test_post_readlines(srv):
    resp = fetch(srv, "/readlines", "POST", b"one\ntwo\nthree\n")
    assert resp.status == 200
    assert json.loads(resp.body) == {"lines": ["one\n", "two\n", "three\n"]}
    assert_clean(srv)


def test_post_iteration(srv):
    resp = fetch(srv, "/iter", "POST", b"a\nb\nc")
    assert resp.status == 200
    assert json.loads(resp.body) == {"lines": ["a\n", "b\n", "c"]}
    assert_clean(srv)


def test_head(srv):
    with srv.connect() as s:
        s.sendall(build("/head", "HEAD"))
        r = Reader(s)
        resp = r.response("HEAD")
        assert resp.status == 200
        assert resp.header("content-length") == str(len(b"a body that HEAD must not send\n"))
        # No body follows: the next response on the connection starts right away.
        s.sendall(build("/"))
        nxt = r.response()
        assert (nxt.status, nxt.body) == (200, b"hello from a validated app\n")
    assert_clean(srv)


def test_generator_with_late_start_response(srv):
    resp = fetch(srv, "/generator")
    assert resp.status == 200
    assert resp.body == b"".join(f"chunk {i}\n".encode() for i in range(5))
    assert_clean(srv)


def test_write_callable(srv):
    resp = fetch(srv, "/write")
    assert resp.status == 200
    assert resp.body == b"written by write()"
    assert_clean(srv)


def test_wsgi_errors(srv):
    assert fetch(srv, "/errors").status == 200
    srv.wait_for_log(r"validated wsgi\.errors line")
    srv.wait_for_log(r"validated writelines line")
    assert_clean(srv)


def test_exc_info_replaces_head(srv):
    resp = fetch(srv, "/exc-info")
    assert resp.status == 404
    assert resp.body == b"replaced"
    assert_clean(srv)


def test_file_wrapper(srv):
    resp = fetch(srv, "/file")
    assert resp.status == 200
    assert resp.body == b"".join(b"%06d file wrapper line\n" % i for i in range(1000))
    assert_clean(srv)


def test_keep_alive_sequence(srv):
    """Several validated requests on one connection, mixing methods and body readers."""
    with srv.connect() as s:
        r = Reader(s)
        for path, method, body in [
            ("/", "GET", b""),
            ("/read", "POST", b"x" * 10000),
            ("/head", "HEAD", b""),
            ("/readline", "POST", b"a\nb\n"),
            ("/generator", "GET", b""),
            ("/write", "GET", b""),
        ]:
            s.sendall(build(path, method, body))
            assert r.response(method).status == 200, path
    assert_clean(srv)
