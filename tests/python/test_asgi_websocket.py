"""WebSockets through ASGI end to end (RFC 6455, RFC 7692, the ASGI spec's "WebSocket" part
and its `websocket.http.response` extension): bourbon serving tests/apps/asgi_ws.py, driven by
the `websockets` client library and, where a client library would hide the wire, by raw
sockets."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import struct
import time

import pytest
from conftest import wait_readable
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

APP = "asgi_ws:app"


def url(srv, path: str = "/") -> str:
    host, port = srv.host_port
    return f"ws://{host}:{port}{path}"


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events"
    path.touch()
    return path


def read_events(path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def wait_event(srv, path, name: str, timeout: float = 10.0) -> dict:
    """Wait for the application to note the event `name` (it writes it to the server's log
    too); its record from the events file."""
    srv.wait_for_log(rf"asgi-event {name}$", timeout=timeout)
    return next(e for e in read_events(path) if e.get("event") == name)


def handshake(path: str = "/", extra: str = "", version: str = "13") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n{extra}\r\n"
    ).encode()


def read_head(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


# --- the handshake ----------------------------------------------------------------------------


def test_echo_text_and_binary(start_server):
    srv = start_server(APP)
    with connect(url(srv), open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"\x00\x01binary"
        ws.send("")
        assert ws.recv(timeout=10) == ""
        big = os.urandom(200_000)
        ws.send(big)
        assert ws.recv(timeout=10) == big
        assert ws.response.headers["x-accepted"] == "yes"


def test_scope_of_a_websocket(start_server):
    srv = start_server(APP)
    with connect(url(srv, "/scope?q=1"), open_timeout=10, subprotocols=["chat", "v2"]) as ws:
        scope = json.loads(ws.recv(timeout=10))
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope"
    assert scope["query_string"] == "q=1"
    assert scope["http_version"] == "1.1"
    assert scope["subprotocols"] == ["chat", "v2"]
    assert "websocket.http.response" in scope["extensions"]
    assert ["upgrade", "websocket"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"


def test_subprotocol_is_returned(start_server):
    srv = start_server(APP)
    with connect(url(srv), open_timeout=10, subprotocols=["one", "two"]) as ws:
        assert ws.subprotocol == "two"


def test_close_before_accept_is_403(start_server):
    srv = start_server(APP)
    with pytest.raises(InvalidStatus) as e:
        connect(url(srv, "/refuse"), open_timeout=10)
    assert e.value.response.status_code == 403


def test_return_before_accept_is_403(start_server):
    srv = start_server(APP)
    with pytest.raises(InvalidStatus) as e:
        connect(url(srv, "/return"), open_timeout=10)
    assert e.value.response.status_code == 403


def test_denial_response_extension(start_server):
    srv = start_server(APP)
    with pytest.raises(InvalidStatus) as e:
        connect(url(srv, "/deny"), open_timeout=10)
    resp = e.value.response
    assert resp.status_code == 401
    assert resp.headers["x-why"] == "token"
    assert resp.body == b"no token!"


def test_exception_before_accept_is_500(start_server):
    srv = start_server(APP)
    with pytest.raises(InvalidStatus) as e:
        connect(url(srv, "/raise"), open_timeout=10)
    assert e.value.response.status_code == 500
    srv.wait_for_log("RuntimeError: boom before accept")


def test_wrong_version_is_426_and_never_reaches_the_app(start_server, events):
    srv = start_server(APP, env={"ASGI_EVENTS": str(events)})
    with srv.connect() as s:
        s.sendall(handshake(version="8"))
        head = read_head(s)
    assert head.startswith(b"HTTP/1.1 426")
    assert b"sec-websocket-version: 13" in head.lower()


def test_bad_key_is_400(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert read_head(s).startswith(b"HTTP/1.1 400")


def test_accept_key_is_computed_per_rfc_6455(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        # The example key of RFC 6455 §1.3 and its answer.
        s.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        head = read_head(s)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head


def test_plain_http_still_works_on_the_same_listener(start_server):
    srv = start_server(APP)
    with connect(url(srv), open_timeout=10) as ws:
        with srv.connect() as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            s.settimeout(10)
            while chunk := s.recv(4096):
                data += chunk
        assert data.endswith(b"plain http")
        ws.send("still here")
        assert ws.recv(timeout=10) == "still here"


# --- messages and closing ---------------------------------------------------------------------


def test_fragmented_message_is_reassembled(start_server):
    srv = start_server(APP)
    with connect(url(srv), open_timeout=10) as ws:
        ws.send(["frag", "mented ", "text"])
        assert ws.recv(timeout=10) == "fragmented text"


def test_app_close_code_and_reason_reach_the_client(start_server):
    srv = start_server(APP)
    with connect(url(srv, "/close-now"), open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert e.value.rcvd.code == 4001
    assert e.value.rcvd.reason == "bye from app"


def test_client_close_code_reaches_the_app(start_server, events):
    srv = start_server(APP, env={"ASGI_EVENTS": str(events)})
    with connect(url(srv), open_timeout=10) as ws:
        ws.close(code=4321, reason="client leaving")
    e = wait_event(srv, events, "disconnect")
    assert e["code"] == 4321
    assert e["reason"] == "client leaving"


def test_vanished_client_is_1006(start_server, events):
    srv = start_server(APP, env={"ASGI_EVENTS": str(events)})
    s = srv.connect()
    s.sendall(handshake())
    assert read_head(s).startswith(b"HTTP/1.1 101")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    e = wait_event(srv, events, "disconnect")
    assert e["code"] == 1006


def test_exception_after_accept_closes_with_1011(start_server):
    srv = start_server(APP)
    with connect(url(srv, "/greet-then-raise"), open_timeout=10) as ws:
        assert ws.recv(timeout=10) == "hello"
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert e.value.rcvd.code == 1011
    srv.wait_for_log("RuntimeError: boom after accept")


def test_message_over_ws_max_size_is_1009(start_server):
    srv = start_server(APP, "--ws-max-size", "1024")
    with connect(url(srv), open_timeout=10, compression=None) as ws:
        ws.send("x" * 1000)
        assert ws.recv(timeout=10) == "x" * 1000
        ws.send("y" * 2000)
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=10)
    assert e.value.rcvd.code == 1009


def test_invalid_utf8_is_1007(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(handshake())
        assert read_head(s).startswith(b"HTTP/1.1 101")
        s.sendall(client_frame(0x1, b"\xff\xfe bad"))
        s.settimeout(10)
        data = s.recv(100)
    assert data[0] == 0x88, data
    assert struct.unpack("!H", data[2:4])[0] == 1007


def test_pings_are_answered_without_the_app(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(handshake())
        assert read_head(s).startswith(b"HTTP/1.1 101")
        s.sendall(client_frame(0x9, b"are you there"))
        s.settimeout(10)
        data = s.recv(100)
    assert data[0] == 0x8A, data
    assert data[2:] == b"are you there"


def test_unanswered_pings_close_the_connection(start_server, events):
    srv = start_server(
        APP,
        "--ws-ping-interval",
        "0.2",
        "--ws-ping-timeout",
        "0.3",
        env={"ASGI_EVENTS": str(events)},
    )
    with srv.connect() as s:
        s.sendall(handshake())
        assert read_head(s).startswith(b"HTTP/1.1 101")
        s.settimeout(10)
        data = b""
        # A ping comes; we never answer; then a Close 1011 and the end.
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data[0] == 0x89, "a ping first"
    assert b"\x88" in data, data
    e = wait_event(srv, events, "disconnect")
    assert e["code"] == 1006


def test_permessage_deflate_is_negotiated(start_server):
    srv = start_server(APP)
    with connect(url(srv), open_timeout=10) as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert ext.startswith("permessage-deflate"), ext
        text = "compressible " * 1000
        ws.send(text)
        assert ws.recv(timeout=10) == text


def test_permessage_deflate_can_be_turned_off(start_server):
    srv = start_server(APP, "--ws-per-message-deflate", "false")
    with connect(url(srv), open_timeout=10) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv(timeout=10) == "plain"


def test_backpressure_holds_the_apps_send(start_server, events):
    srv = start_server(APP, env={"ASGI_EVENTS": str(events)})
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(handshake("/push"))
        assert read_head(s).startswith(b"HTTP/1.1 101")
        # Never read: the app must be stopped by send() long before 20,000 × 64 KiB.
        time.sleep(1.0)
        pushed = [e["n"] for e in read_events(events) if e.get("event") == "pushed"]
        assert not pushed or max(pushed) < 1000, pushed
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_event(srv, events, "push-stopped")


def test_a_client_that_stops_reading_is_let_go(start_server, events):
    # With pings off, only the write timeout bounds a peer that stopped reading: --write-timeout
    # applies to WebSocket frames as to HTTP responses. The app's send then fails (its receive
    # would say 1006) and the connection is dropped, while the client still holds it open.
    srv = start_server(
        APP, "--write-timeout", "1", "--ws-ping-interval", "0", env={"ASGI_EVENTS": str(events)}
    )
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(handshake("/push"))
        assert read_head(s).startswith(b"HTTP/1.1 101")
        started = time.monotonic()
        stopped = wait_event(srv, events, "push-stopped", timeout=20)
        assert time.monotonic() - started >= 0.9
        assert stopped["n"] < 1000, stopped
        # What was written before the stall is still delivered, then the end of the stream.
        s.settimeout(10)
        ended = False
        for _ in range(100_000):
            try:
                if not s.recv(65536):
                    ended = True
                    break
            except ConnectionResetError:
                ended = True
                break
        assert ended
    with connect(url(srv), open_timeout=10) as ws:
        ws.send("still serving")
        assert ws.recv(timeout=10) == "still serving"


def test_many_connections_at_once(start_server):
    srv = start_server(APP)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(url(srv), open_timeout=10)) for _ in range(50)]
        for i, ws in enumerate(clients):
            ws.send(f"n{i}")
        for i, ws in enumerate(clients):
            assert ws.recv(timeout=10) == f"n{i}"


# --- the process model ------------------------------------------------------------------------


def test_graceful_stop_closes_with_1012(start_server):
    srv = start_server(APP)
    with connect(url(srv), open_timeout=10) as ws:
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        srv.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=15)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1012
    assert srv.proc.wait(15) == 0


def test_websockets_go_to_the_asgi_app_in_combined_mode(start_server):
    srv = start_server("combined_app:wsgi", "--asgi", "combined_app:asgi", "--threads", "2")
    with connect(url(srv, "/anything"), open_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "asgi hi"
    with srv.connect() as s:
        s.sendall(b"GET /anything HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_readable(s, 10)
        assert b"wsgi /anything" in s.recv(4096)
