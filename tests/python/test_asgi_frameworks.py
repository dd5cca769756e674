"""Starlette and FastAPI applications (tests/apps/starlette_app.py, fastapi_app.py) served by
bourbon as ASGI applications, end to end over real sockets.

Both apps have the same routes, so every test runs on both: plain text, JSON, a request body
echo, a ``FileResponse``, state set by the lifespan at startup and the lifespan's shutdown on
SIGTERM, a streaming response that must reach the client chunk by chunk while the app is
still producing it, and a WebSocket echo spoken by the ``websockets`` library's client.
bourbon recognises the apps as ASGI by itself (no flag).
"""

from __future__ import annotations

import http.client
import json
import signal
import uuid

import pytest
from conftest import APPS
from rawhttp import Reader, get
from websockets.sync.client import connect

TIMEOUT = 10.0
APPS_UNDER_TEST = {"starlette": "starlette_app:app", "fastapi": "fastapi_app:app"}


@pytest.fixture(params=sorted(APPS_UNDER_TEST))
def framework(request) -> str:
    return request.param


@pytest.fixture
def srv(start_server, framework):
    return start_server(APPS_UNDER_TEST[framework])


def request(srv, method: str, path: str, body: bytes | None = None, headers=None):
    host, port = srv.host_port
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def ws_url(srv, path: str) -> str:
    host, port = srv.host_port
    return f"ws://{host}:{port}{path}"


def test_plain_text(srv, framework):
    resp, body = request(srv, "GET", "/")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert resp.getheader("Content-Length") == str(len(body))
    assert body == f"Hello from {framework}\n".encode()


def test_json(srv, framework):
    resp, body = request(srv, "GET", "/json")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    assert json.loads(body) == {"framework": framework, "items": [1, 2, 3]}


def test_not_found(srv):
    resp, _ = request(srv, "GET", "/nowhere")
    assert resp.status == 404


@pytest.mark.parametrize("size", [0, 11, 3 * 1024 * 1024 + 7], ids=["empty", "small", "3m"])
def test_request_body_echo(srv, size):
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    resp, body = request(
        srv, "POST", "/echo", body=payload, headers={"Content-Type": "application/x-test"}
    )
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/x-test"
    assert body == payload


def test_chunked_request_body_echo(srv):
    # No Content-Length: the body arrives in chunks and the app reads it to the end.
    parts = [b"first,", b"second," * 1000, b"last"]
    host, port = srv.host_port
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request(
            "POST",
            "/echo",
            body=iter(parts),
            headers={"Content-Type": "text/plain", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200
    assert body == b"".join(parts)


def test_file_response(srv, framework):
    expected = (APPS / f"{framework}_app.py").read_bytes()
    resp, body = request(srv, "GET", "/file")
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/x-python")
    assert resp.getheader("Content-Length") == str(len(expected))
    assert resp.getheader("Last-Modified")
    assert resp.getheader("ETag")
    assert body == expected


def test_head_file_response_has_no_body(srv, framework):
    expected = (APPS / f"{framework}_app.py").stat().st_size
    host, port = srv.host_port
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request("HEAD", "/file")
        resp = conn.getresponse()
        assert resp.read() == b""
        # The same connection still works: no stray body bytes were sent after the head.
        conn.request("GET", "/json")
        again = conn.getresponse()
        again.read()
    finally:
        conn.close()
    assert resp.status == 200
    assert resp.getheader("Content-Length") == str(expected)
    assert again.status == 200


def test_lifespan_state_reaches_requests(srv, framework):
    resp, body = request(srv, "GET", "/state")
    assert resp.status == 200
    assert json.loads(body)["greeting"] == f"set by the {framework} lifespan"


def test_lifespan_shutdown_runs_on_sigterm(start_server, framework, tmp_path):
    marker = tmp_path / "shutdown.txt"
    srv = start_server(APPS_UNDER_TEST[framework], env={"ASGI_APP_SHUTDOWN_FILE": str(marker)})
    resp, _ = request(srv, "GET", "/state")
    assert resp.status == 200
    assert not marker.exists()
    assert srv.stop(signal.SIGTERM) == 0, srv.log
    assert marker.read_text() == "shutdown", srv.log


def test_streaming_response_arrives_chunk_by_chunk(srv):
    # /stream/KEY sends "chunk 0", then waits for POST /release/KEY before the rest. Reading
    # the first chunk before releasing shows the server sent it while the app was still
    # running, rather than buffering the whole response.
    key = uuid.uuid4().hex
    with srv.connect(timeout=TIMEOUT) as sock:
        sock.sendall(get(f"/stream/{key}", host="test"))
        reader = Reader(sock)
        head = reader.read_until(b"\r\n\r\n").decode("latin-1").lower()
        assert head.startswith("http/1.1 200"), head
        assert "\r\ntransfer-encoding: chunked" in head, head
        assert "\r\ncontent-length:" not in head, head

        def next_chunk() -> bytes:
            # The last chunk (size 0) comes back as b"", its empty trailer section read too.
            size = int(reader.read_until(b"\r\n").split(b";")[0], 16)
            data = reader.read_exact(size)
            assert reader.read_exact(2) == b"\r\n"
            return data

        first = b""
        for _ in range(len(b"chunk 0\n")):  # at most one byte per chunk
            first += next_chunk()
            if len(first) >= len(b"chunk 0\n"):
                break
        assert first == b"chunk 0\n"

        resp, _ = request(srv, "POST", f"/release/{key}")
        assert resp.status == 204

        rest = b""
        for _ in range(10_000):
            data = next_chunk()
            if not data:
                break
            rest += data
        else:
            raise AssertionError("no last chunk")
    assert rest == b"".join(f"chunk {i}\n".encode() for i in range(1, 5))


def test_websocket_echo(srv):
    with connect(ws_url(srv, "/ws"), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        for text in ("hello", "", "ünïcode ✓", "x" * 70_000):
            ws.send(text)
            assert ws.recv(timeout=TIMEOUT) == text
        for data in (b"\x00\x01\xff", bytes(range(256)) * 300):
            ws.send(data)
            assert ws.recv(timeout=TIMEOUT) == data


def test_websocket_and_http_on_one_listener(srv, framework):
    # A WebSocket stays open while plain requests are served next to it.
    with connect(ws_url(srv, "/ws"), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        ws.send("before")
        assert ws.recv(timeout=TIMEOUT) == "before"
        resp, body = request(srv, "GET", "/json")
        assert resp.status == 200
        assert json.loads(body)["framework"] == framework
        ws.send("after")
        assert ws.recv(timeout=TIMEOUT) == "after"


def test_fastapi_validates_the_json_body(start_server):
    srv = start_server(APPS_UNDER_TEST["fastapi"])
    ok = json.dumps({"name": "pen", "price": 1.5, "quantity": 4}).encode()
    resp, body = request(srv, "POST", "/items", ok, {"Content-Type": "application/json"})
    assert resp.status == 200
    assert json.loads(body) == {"name": "pen", "total": 6.0}
    bad = json.dumps({"name": "pen", "price": "free"}).encode()
    resp, body = request(srv, "POST", "/items", bad, {"Content-Type": "application/json"})
    assert resp.status == 422
    assert json.loads(body)["detail"][0]["loc"] == ["body", "price"]
