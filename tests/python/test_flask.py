"""tests/apps/flaskapp.py served by bourbon, end to end over HTTP."""

from __future__ import annotations

import http.client
import json

import pytest
from conftest import APPS

FLASKAPP = APPS / "flaskapp.py"


@pytest.fixture
def srv(start_server):
    return start_server("flaskapp:app")


def request(srv, method: str, path: str, body: bytes | None = None, headers=None):
    host, port = srv.host_port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def test_index(srv):
    resp, body = request(srv, "GET", "/")
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/plain")
    assert body == b"Hello from Flask\n"


def test_json(srv):
    resp, body = request(srv, "GET", "/json")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"message": "Hello from Flask", "items": [1, 2, 3]}


@pytest.mark.parametrize("size", [0, 11, 2 * 1024 * 1024], ids=["empty", "small", "2m"])
def test_echo_post(srv, size):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    resp, body = request(
        srv, "POST", "/echo", body=payload, headers={"Content-Type": "application/x-test"}
    )
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("application/x-test")
    assert body == payload


def test_send_file(srv):
    expected = FLASKAPP.read_bytes()
    resp, body = request(srv, "GET", "/file")
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/x-python")
    assert resp.getheader("Content-Length") == str(len(expected))
    assert body == expected


def test_stream(srv):
    resp, body = request(srv, "GET", "/stream?n=4")
    assert resp.status == 200
    assert body == b"".join(f"chunk {i} of 4\n".encode() for i in range(4))
    resp, body = request(srv, "GET", "/stream")
    assert body.count(b"\n") == 5


def test_abort_404(srv):
    resp, _ = request(srv, "GET", "/abort")
    assert resp.status == 404
    resp, _ = request(srv, "GET", "/no-such-route")
    assert resp.status == 404
    assert "Traceback" not in srv.log
