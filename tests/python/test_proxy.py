"""Proxy trust (--forwarded-allow-ips), the PROXY protocol (--proxy-protocol) and request ids,
for WSGI and ASGI (HTTP and WebSocket), over real loopback and unix sockets.

A peer on loopback is made "untrusted" by trusting another address (10.9.9.9) instead of the
default 127.0.0.1. PROXY headers are built here from HAProxy's specification
(proxy-protocol.txt): the v1 text line and the v2 binary block with its signature.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import struct
from pathlib import Path

import pytest
from conftest import run_bourbon
from rawhttp import Reader, request
from websockets.sync.client import connect

TIMEOUT = 10.0
APPS = {"wsgi": "proxy_app:wsgi", "asgi": "proxy_app:asgi"}
FORGED = (
    "X-Forwarded-For: 203.0.113.9\r\n"
    "X-Forwarded-Proto: https\r\n"
    "X-Forwarded-Host: evil.example\r\n"
    "X-Forwarded-Port: 9999\r\n"
    'Forwarded: for=198.51.100.1;proto=https;host="evil2.example"\r\n'
)
HEX32 = re.compile(r"^[0-9a-f]{32}$")
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def ask(sock: socket.socket, extra: str = "", path: str = "/", host: str = "localhost:1234"):
    """One request on ``sock``; the response and the JSON the application answered."""
    sock.settimeout(TIMEOUT)
    data = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    resp = request(sock, data.encode("latin-1"))
    assert resp.status == 200, resp
    return resp, json.loads(resp.body)


def tcp(srv) -> socket.socket:
    return srv.connect(TIMEOUT)


def unix(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(str(path))
    return s


def seen(kind: str, body: dict) -> dict:
    """What the application saw, in one shape for both interfaces."""
    if kind == "wsgi":
        return {
            "client": body["REMOTE_ADDR"],
            "port": body["REMOTE_PORT"],
            "scheme": body["wsgi.url_scheme"],
            "host": body["HTTP_HOST"],
            "server": [body["SERVER_NAME"], body["SERVER_PORT"]],
            "request_id": body["HTTP_X_REQUEST_ID"],
        }
    client = body["client"] or ["", ""]
    ids = body["request_id"]
    assert len(ids) <= 1, ids
    server = body["server"]
    return {
        "client": client[0],
        "port": str(client[1]),
        "scheme": body["scheme"],
        "host": body["host"][0] if body["host"] else None,
        "server": [server[0], str(server[1])] if server else None,
        "request_id": ids[0] if ids else None,
    }


def access_lines(srv, count: int) -> list[str]:
    srv.wait_for_count(r"^ACCESS ", count)
    return [ln for ln in srv.log.splitlines() if ln.startswith("ACCESS ")]


LOG = ["--access-logfile", "-", "--access-logformat", "ACCESS %(h)s %({x-request-id}o)s"]


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_forged_headers_from_an_untrusted_peer_change_nothing(start_server, kind):
    srv = start_server(APPS[kind], "--forwarded-allow-ips", "10.9.9.9", *LOG)
    port = srv.host_port[1]
    with tcp(srv) as s:
        resp, body = ask(s, FORGED + "X-Request-ID: forged-id\r\n")
    v = seen(kind, body)
    assert v["client"] == "127.0.0.1"
    assert v["scheme"] == "http"
    assert v["host"] == "localhost:1234"
    assert v["server"] == ["127.0.0.1", str(port)]
    # The client's request id is replaced by one the server made.
    assert v["request_id"] != "forged-id" and HEX32.match(v["request_id"])
    assert resp.header("X-Request-ID") == v["request_id"]
    if kind == "wsgi":
        # The headers themselves pass through untouched.
        assert body["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
        assert body["HTTP_FORWARDED"] == 'for=198.51.100.1;proto=https;host="evil2.example"'
    assert access_lines(srv, 1)[0] == f"ACCESS 127.0.0.1 {v['request_id']}"


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_x_forwarded_headers_from_a_trusted_peer(start_server, kind):
    # Default --forwarded-allow-ips: 127.0.0.1,::1.
    srv = start_server(APPS[kind], *LOG)
    extra = (
        # The leftmost entry is the client's own claim; the proxy appended what it saw.
        "X-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n"
        "X-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: shop.example\r\n"
        "X-Forwarded-Port: 8443\r\n"
        "X-Request-ID: from-the-proxy-1\r\n"
    )
    with tcp(srv) as s:
        resp, body = ask(s, extra)
    v = seen(kind, body)
    assert v["client"] == "203.0.113.9"
    assert v["port"] == "0"
    assert v["scheme"] == "https"
    assert v["host"] == "shop.example:8443"
    assert v["server"] == ["shop.example", "8443"]
    assert v["request_id"] == "from-the-proxy-1"
    assert resp.header("X-Request-ID") == "from-the-proxy-1"
    assert access_lines(srv, 1)[0] == "ACCESS 203.0.113.9 from-the-proxy-1"


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_forwarded_wins_over_x_forwarded(start_server, kind):
    srv = start_server(APPS[kind])
    extra = (
        'Forwarded: for="[2001:db8::5]:4711";proto=https;host=api.example, for=127.0.0.1\r\n'
        "X-Forwarded-For: 9.9.9.9\r\n"
        "X-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: other.example\r\n"
    )
    with tcp(srv) as s:
        _, body = ask(s, extra)
    v = seen(kind, body)
    # 127.0.0.1 (trusted) is skipped; the element before it names the client.
    assert v["client"] == "2001:db8::5"
    assert v["port"] == "4711"
    assert v["scheme"] == "https"
    assert v["host"] == "api.example"
    assert v["server"] == ["api.example", "443"]
    # A Forwarded field that does not parse is ignored: X-Forwarded-* apply.
    with tcp(srv) as s:
        _, body = ask(s, "Forwarded: for=[::1]\r\nX-Forwarded-For: 9.9.9.9\r\n")
    assert seen(kind, body)["client"] == "9.9.9.9"


@pytest.mark.parametrize("trusted", [True, False])
def test_websocket_scope_follows_trust(start_server, trusted):
    allow = "127.0.0.1" if trusted else "10.9.9.9"
    srv = start_server(APPS["asgi"], "--forwarded-allow-ips", allow)
    host, port = srv.host_port
    headers = {
        "X-Forwarded-For": "203.0.113.50",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "chat.example",
    }
    with connect(f"ws://{host}:{port}/ws", open_timeout=TIMEOUT, additional_headers=headers) as ws:
        view = json.loads(ws.recv(timeout=TIMEOUT))
        rid = ws.response.headers.get("X-Request-ID")
    if trusted:
        assert view["client"] == ["203.0.113.50", 0]
        assert view["scheme"] == "wss"
        assert view["host"] == ["chat.example"]
        assert view["server"] == ["chat.example", 443]
    else:
        assert view["client"][0] == "127.0.0.1"
        assert view["scheme"] == "ws"
        assert view["host"] == [f"{host}:{port}"]
        assert view["server"] == ["127.0.0.1", port]
    # The 101 carries the request id the application saw.
    assert view["request_id"] == [rid] and HEX32.match(rid)


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_unix_socket_peers_are_trusted(start_server, tmp_path, kind):
    path = tmp_path / "b.sock"
    srv = start_server(APPS[kind], "-b", f"unix:{path}", "--forwarded-allow-ips", "10.9.9.9")
    srv.wait_for_log("Listening")
    with unix(path) as s:
        _, body = ask(s, "X-Forwarded-For: 203.0.113.77\r\nX-Forwarded-Proto: https\r\n")
    v = seen(kind, body)
    assert v["client"] == "203.0.113.77"
    assert v["scheme"] == "https"


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_request_ids_made_distinct_and_left_to_the_app(start_server, kind):
    srv = start_server(APPS[kind])
    ids = []
    for _ in range(3):
        with tcp(srv) as s:
            resp, body = ask(s)
        rid = seen(kind, body)["request_id"]
        assert HEX32.match(rid) and resp.header_all("X-Request-ID") == [rid]
        ids.append(rid)
    assert len(set(ids)) == 3
    # Made per worker: a common prefix, a counter after it.
    assert len({i[:16] for i in ids}) == 1
    if kind == "wsgi":
        # The application's own X-Request-ID is the only one in the response.
        with tcp(srv) as s:
            resp, _ = ask(s, path="/own-id")
        assert resp.header_all("X-Request-ID") == ["set-by-app"]


def test_request_ids_can_be_renamed_or_turned_off(start_server):
    srv = start_server(APPS["wsgi"], "--request-id-header", "")
    with tcp(srv) as s:
        resp, body = ask(s, "X-Request-ID: clients-own\r\n")
    assert resp.header("X-Request-ID") is None
    assert body["HTTP_X_REQUEST_ID"] == "clients-own"
    srv2 = start_server(APPS["asgi"], "--request-id-header", "X-Correlation-ID")
    with tcp(srv2) as s:
        resp, _ = ask(s)
    assert HEX32.match(resp.header("X-Correlation-ID") or "")
    assert resp.header("X-Request-ID") is None


# ---- the PROXY protocol ----


def v1(src: str, dst: str, sport: int, dport: int) -> bytes:
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src: str, dst: str, sport: int, dport: int, command: int = 1, tlvs: bytes = b"") -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
@pytest.mark.parametrize(
    "header,client,port",
    [
        (v1("192.0.2.1", "192.0.2.2", 56324, 443), "192.0.2.1", "56324"),
        (v1("2001:db8::1", "2001:db8::2", 4000, 443), "2001:db8::1", "4000"),
        # A TLV (PP2_TYPE_AUTHORITY) after the addresses is skipped.
        (
            v2("198.51.100.3", "198.51.100.4", 40000, 80, tlvs=b"\x02\x00\x03abc"),
            "198.51.100.3",
            "40000",
        ),
        (v2("2001:db8::9", "::1", 1234, 80), "2001:db8::9", "1234"),
    ],
    ids=["v1-tcp4", "v1-tcp6", "v2-inet", "v2-inet6"],
)
def test_proxy_header_on_tcp_sets_the_client(start_server, kind, header, client, port):
    srv = start_server(APPS[kind], "--proxy-protocol", *LOG)
    with tcp(srv) as s:
        # The header and the request in one write: the bytes after the header are HTTP.
        s.sendall(header)
        _, body = ask(s)
    v = seen(kind, body)
    assert (v["client"], v["port"]) == (client, port)
    assert access_lines(srv, 1)[0].startswith(f"ACCESS {client} ")


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
def test_proxy_header_on_a_unix_listener(start_server, tmp_path, kind):
    path = tmp_path / "p.sock"
    srv = start_server(APPS[kind], "-b", f"unix:{path}", "--proxy-protocol")
    srv.wait_for_log("Listening")
    for header, client in [
        (v2("192.0.2.44", "192.0.2.1", 5555, 80), "192.0.2.44"),
        (v1("192.0.2.45", "192.0.2.1", 5556, 80), "192.0.2.45"),
        # LOCAL: the proxy's own health check keeps the real (unix) peer.
        (V2_SIG + b"\x20\x00\x00\x00", ""),
    ]:
        with unix(path) as s:
            s.sendall(header)
            _, body = ask(s)
        assert seen(kind, body)["client"] == client


def test_the_proxied_client_is_not_a_trusted_proxy(start_server):
    # The PROXY header names the real client; its own X-Forwarded-For is not believed.
    srv = start_server(APPS["wsgi"], "--proxy-protocol")
    with tcp(srv) as s:
        s.sendall(v1("192.0.2.1", "192.0.2.2", 1000, 80))
        _, body = ask(s, "X-Forwarded-For: 6.6.6.6\r\n")
    assert body["REMOTE_ADDR"] == "192.0.2.1"


def refused(sock: socket.socket) -> bool:
    """The server closed ``sock`` without answering."""
    reader = Reader(sock)
    return reader.read_to_close() == b""


@pytest.mark.parametrize(
    "allow,first",
    [
        # A header from a peer not in --proxy-allow-from.
        ("10.9.9.9", v1("192.0.2.1", "192.0.2.2", 1, 2)),
        # A malformed header from an allowed peer.
        ("127.0.0.1", b"PROXY TCP4 192.0.2.1 nonsense 1 2\r\n"),
        ("127.0.0.1", V2_SIG + b"\x21\x11\x00\x04\x00\x00\x00\x00"),
        # No header from an allowed peer.
        ("127.0.0.1", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ],
    ids=["not-allowed", "bad-v1", "short-v2", "missing"],
)
def test_a_refused_proxy_header_closes_only_its_connection(start_server, allow, first):
    srv = start_server(APPS["wsgi"], "--proxy-protocol", "--proxy-allow-from", allow)
    with tcp(srv) as other, tcp(srv) as bad:
        bad.sendall(first)
        assert refused(bad)
        srv.wait_for_log("closing a connection from 127.0.0.1")
        # The connection opened before the refusal is served as usual.
        if allow == "127.0.0.1":
            other.sendall(v1("192.0.2.9", "192.0.2.2", 7, 80))
        _, body = ask(other)
    assert body["REMOTE_ADDR"] == ("192.0.2.9" if allow == "127.0.0.1" else "127.0.0.1")


def test_a_proxy_header_that_never_completes_times_out(start_server):
    srv = start_server(APPS["wsgi"], "--proxy-protocol", "--header-timeout", "1")
    with tcp(srv) as slow, tcp(srv) as other:
        slow.sendall(b"PROXY TCP4 192.0.2.1 ")
        other.sendall(v1("192.0.2.10", "192.0.2.2", 7, 80))
        _, body = ask(other)
        assert body["REMOTE_ADDR"] == "192.0.2.10"
        assert refused(slow)
    srv.wait_for_log("within the header timeout")


# ---- settings ----


@pytest.mark.parametrize(
    "args,named",
    [
        (["--forwarded-allow-ips", "localhost"], "--forwarded-allow-ips"),
        (["--proxy-allow-from", "10.0.0.0/40"], "--proxy-allow-from"),
        (["--request-id-header", "X Bad"], "--request-id-header"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(args, named):
    r = run_bourbon("hello_app:app", *args, "--check-config", timeout=30)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}: "), r.stderr


def test_gunicorns_forwarded_allow_ips_variable_is_the_default():
    env = {"FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.0.2.1"}
    r = run_bourbon("hello_app:app", "--print-config", env=env, timeout=30)
    assert 'forwarded_allow_ips = ["10.0.0.0/8", "192.0.2.1"]' in r.stdout, r.stdout
    # The flag wins over the variable.
    r = run_bourbon(
        "hello_app:app", "--print-config", "--forwarded-allow-ips", "*", env=env, timeout=30
    )
    assert 'forwarded_allow_ips = ["*"]' in r.stdout, r.stdout
