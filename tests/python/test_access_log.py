"""The access log: gunicorn's format language, one line per completed request."""

from __future__ import annotations

import datetime
import json
import re
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import rawhttp
from conftest import run_bourbon
from websockets.sync.client import connect

LINE = re.compile(
    r"^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "
    r'"GET /hello\?x=1 HTTP/1\.1" 200 13 "http://ref\.example/" "agent/1\.0"$'
)


def test_default_format_line_per_request(start_server):
    srv = start_server("hello_app:app", "--access-logfile", "-")
    req = urllib.request.Request(
        srv.url + "/hello?x=1",
        headers={"User-Agent": "agent/1.0", "Referer": "http://ref.example/"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    line = srv.wait_for_log(r'"GET /hello')
    assert LINE.match(line.strip()), line


def test_custom_format_and_file(start_server, tmp_path):
    log = tmp_path / "access.log"
    srv = start_server(
        "hello_app:app",
        "--access-logfile",
        str(log),
        "--access-logformat",
        '%(m)s %(U)s %(s)s %(B)s %({x-req}i)s "%(a)s"',
    )
    req = urllib.request.Request(
        srv.url + "/hello", headers={"X-Req": 'a"b', "User-Agent": "evil\tagent"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.read() == b"Hello, world!"
    srv.stop()
    text = log.read_text()
    # Quotes and control characters from the client are escaped: no forged fields or lines.
    assert text == 'GET /hello 200 13 a\\"b "evil\\x09agent"\n'


def test_no_access_log_by_default(start_server):
    srv = start_server("hello_app:app")
    with urllib.request.urlopen(srv.url + "/hello", timeout=10) as resp:
        assert resp.status == 200
    srv.stop()
    assert '"GET /hello' not in srv.log


def test_bad_format_is_a_settings_error():
    proc = run_bourbon("hello_app:app", "--access-logfile", "-", "--access-logformat", "%(nope)s")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--access-logformat" in lines[0], proc.stderr


# ---- the same lines as gunicorn ----------------------------------------------------------

# Every atom gunicorn has, separated by `|` (which no request below contains).
ALL_ATOMS = [
    "h", "l", "u", "t", "r", "m", "U", "q", "H", "s", "B", "b", "f", "a", "T", "M", "D", "L",
    "p", "{x-custom}i", "{user-agent}i", "{x-missing}i", "{content-type}o", "{x-missing}o",
    "{REQUEST_METHOD}e", "{QUERY_STRING}e", "{RAW_URI}e", "{SERVER_PROTOCOL}e",
    "{REMOTE_ADDR}e", "{REMOTE_PORT}e", "{PATH_INFO}e", "{CONTENT_TYPE}e", "{CONTENT_LENGTH}e",
    "{HTTP_HOST}e", "{HTTP_USER_AGENT}e", "{wsgi.url_scheme}e",
]  # fmt: skip
ALL_FORMAT = "|".join(f"%({a})s" for a in ALL_ATOMS)

# What must differ between two servers, and what it must look like on both.
MASKED = {
    "t": r"\[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\]",
    "p": r"<\d+>",
    "T": r"\d+",
    "M": r"\d+",
    "D": r"\d+",
    "L": r"\d+\.\d{6}",
    "{REMOTE_PORT}e": r"\d+",
}

# The same requests to both servers, each on its own connection; nothing in them varies.
REQUESTS = [
    b"GET /hello?x=1&y=%20z HTTP/1.1\r\nHost: example.test\r\nUser-Agent: agent/1.0\r\n"
    b'Referer: http://ref.example/\r\nX-Custom: say "hi"\r\n'
    b"Authorization: Basic YWxpY2U6c2VjcmV0\r\nConnection: close\r\n\r\n",
    b"GET /a%20b/c HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    b"POST /post?k=v HTTP/1.1\r\nHost: example.test\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n"
    b"Connection: close\r\n\r\nabc=def",
    b"HEAD /hello HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    b"GET /empty HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    b"GET /chunks HTTP/1.0\r\nHost: example.test\r\n\r\n",
    b"GET /id?a=b%2Fc HTTP/1.1\r\nHost: example.test\r\nUser-Agent: x\r\nConnection: close\r\n\r\n",
]


def gunicorn_exe() -> str:
    exe = Path(sys.executable).parent / "gunicorn"
    assert exe.exists(), "gunicorn is not installed in this environment (make venvs)"
    return str(exe)


def send_all(host_port: tuple[str, int]) -> None:
    """Send REQUESTS one connection each and read every answer to its end."""
    for raw in REQUESTS:
        with socket.create_connection(host_port, timeout=10) as s:
            s.sendall(raw)
            while s.recv(65536):
                pass


def run_both(launch, start_server, tmp_path, fmt: str | None) -> tuple[list[str], list[str]]:
    """Serve access_app with gunicorn and with bourbon, the same format, the same requests;
    return each one's access log lines."""
    logs = []
    for name in ("gunicorn", "bourbon"):
        log = tmp_path / f"{name}.log"
        args = ["--access-logfile", str(log)]
        if fmt is not None:
            args += ["--access-logformat", fmt]
        env = {"TZ": "UTC"}
        if name == "gunicorn":
            argv = [gunicorn_exe(), "-w", "1", "-b", "127.0.0.1:0", *args, "access_app:app"]
            srv = launch(argv, env=env)
        else:
            srv = start_server("access_app:app", *args, env=env)
        send_all(srv.host_port)
        assert srv.stop() == 0, srv.log
        logs.append(log.read_text().splitlines())
    return logs[0], logs[1]


def test_default_format_is_gunicorns_byte_for_byte(launch, start_server, tmp_path):
    theirs, ours = run_both(launch, start_server, tmp_path, None)
    assert len(theirs) == len(ours) == len(REQUESTS), (theirs, ours)
    time = re.compile(MASKED["t"])
    for g, b in zip(theirs, ours, strict=True):
        assert time.search(g) and time.search(b), (g, b)
        assert time.sub("[T]", b) == time.sub("[T]", g)


def test_every_atom_matches_gunicorn(launch, start_server, tmp_path):
    theirs, ours = run_both(launch, start_server, tmp_path, ALL_FORMAT)
    assert len(theirs) == len(ours) == len(REQUESTS), (theirs, ours)
    for g, b in zip(theirs, ours, strict=True):
        gf, bf = g.split("|"), b.split("|")
        assert len(gf) == len(bf) == len(ALL_ATOMS), (g, b)
        for atom, gv, bv in zip(ALL_ATOMS, gf, bf, strict=True):
            if atom in MASKED:
                assert re.fullmatch(MASKED[atom], gv), (atom, g)
                assert re.fullmatch(MASKED[atom], bv), (atom, b)
            else:
                assert bv == gv, f"%({atom})s: bourbon {bv!r}, gunicorn {gv!r}\n{g}\n{b}"


# ---- presets ------------------------------------------------------------------------------


def request(srv, raw: bytes) -> bytes:
    with socket.create_connection(srv.host_port, timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def json_lines(srv, count: int) -> list[dict]:
    srv.wait_for_count(r'^\{"time":', count)
    return [json.loads(ln) for ln in srv.log.splitlines() if ln.startswith('{"time":')]


def test_common_and_combined_presets(start_server):
    for preset, tail in (("common", ""), ("combined", ' "-" "ua/1"')):
        srv = start_server("access_app:app", "--access-logfile", "-", "--access-logformat", preset)
        request(
            srv, b"GET /x?y HTTP/1.1\r\nHost: h\r\nUser-Agent: ua/1\r\nConnection: close\r\n\r\n"
        )
        line = srv.wait_for_log(r'"GET /x\?y HTTP/1\.1"').rstrip("\n")
        assert re.fullmatch(
            r"127\.0\.0\.1 - - \[[^]]+\] \"GET /x\?y HTTP/1\.1\" 200 13" + re.escape(tail), line
        ), (preset, line)
        srv.stop()


def test_json_preset_wsgi(start_server):
    srv = start_server("access_app:app", "--access-logfile", "-", "--access-logformat", "json")
    before = time.time()
    # Quotes, a backslash, a tab and a byte that is not UTF-8 from the client.
    request(
        srv,
        b'GET /id?q=%22x%22 HTTP/1.1\r\nHost: h\r\nUser-Agent: a "q" \\ \t\xff end\r\n'
        b"Referer: http://r/\r\nConnection: close\r\n\r\n",
    )
    posted = request(
        srv, b"POST /post HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    )
    first, second = json_lines(srv, 2)
    assert list(first) == [
        "time", "remote_addr", "method", "path", "query", "protocol", "status", "bytes_sent",
        "duration_ms", "referer", "user_agent", "request_id", "pid", "interface",
    ]  # fmt: skip
    assert first["remote_addr"] == "127.0.0.1"
    assert (first["method"], first["path"], first["query"]) == ("GET", "/id", "q=%22x%22")
    assert (first["protocol"], first["status"], first["bytes_sent"]) == ("HTTP/1.1", 200, 10)
    assert first["user_agent"] == 'a "q" \\ \t\xff end'
    assert first["referer"] == "http://r/"
    assert first["request_id"] == "req-42"
    assert first["interface"] == "wsgi"
    assert isinstance(first["pid"], int) and first["pid"] != srv.pid
    assert 0 <= first["duration_ms"] < 10_000
    stamp = datetime.datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert before - 5 < stamp.timestamp() < time.time() + 5
    assert (second["method"], second["status"], second["bytes_sent"]) == ("POST", 200, 5)
    assert second["referer"] is None and second["user_agent"] is None
    # The response's X-Request-ID (the application sets none here; the server may add one).
    sent_id = re.search(rb"(?im)^x-request-id: *(\S+)\r$", posted.split(b"\r\n\r\n")[0])
    assert second["request_id"] == (sent_id.group(1).decode() if sent_id else None)


# ---- ASGI: HTTP and WebSocket sessions ------------------------------------------------


def test_asgi_http_and_websocket_lines(start_server):
    srv = start_server("asgi_ws:app", "--access-logfile", "-", "--access-logformat", "json")
    host, port = srv.host_port
    request(srv, b"GET /plain?a=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    [http_line] = json_lines(srv, 1)
    assert (http_line["path"], http_line["query"], http_line["status"]) == ("/plain", "a=1", 200)
    assert (http_line["interface"], http_line["bytes_sent"]) == ("asgi", 10)
    assert "ws_messages_in" not in http_line
    with connect(f"ws://{host}:{port}/echo", user_agent_header="ws-client/1") as ws:
        for text in ("one", "two", "three"):
            ws.send(text)
            assert ws.recv(timeout=10) == text
        # While the session lives there is no line for it: it is written when it ends.
        with pytest.raises(AssertionError):
            srv.wait_for_count(r'^\{"time":', 2, timeout=1.5)
    http_line, ws_line = json_lines(srv, 2)
    assert (ws_line["method"], ws_line["path"], ws_line["status"]) == ("GET", "/echo", 101)
    assert ws_line["user_agent"] == "ws-client/1"
    assert (ws_line["ws_messages_in"], ws_line["ws_messages_out"]) == (3, 3)
    assert ws_line["ws_close_code"] == 1000
    assert ws_line["interface"] == "asgi"
    # The session's frames: three 3-5 byte texts and the Close, each with a 2-byte header.
    assert ws_line["bytes_sent"] >= 3 * 5 + 2
    assert ws_line["duration_ms"] >= 1000  # the session outlived the wait above


def test_asgi_default_format_websocket(start_server):
    srv = start_server("asgi_ws:app", "--access-logfile", "-")
    host, port = srv.host_port
    with connect(f"ws://{host}:{port}/echo?k=v") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    line = srv.wait_for_log(r'"GET /echo\?k=v HTTP/1\.1" 101 ').rstrip("\n")
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[[^]]+\] "GET /echo\?k=v HTTP/1\.1" 101 \d+ "-" ".*"', line
    )


# ---- buffering: within a second, and nothing lost at exit ------------------------------


def test_a_line_comes_within_a_second_on_an_idle_server(start_server):
    srv = start_server("access_app:app", "--access-logfile", "-")
    request(srv, b"GET /idle HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    answered = time.monotonic()
    srv.wait_for_log(r'"GET /idle HTTP/1\.1" 200', timeout=5)
    # The flusher writes at most a second after the first buffered line; allow for a busy
    # machine, but not for "only at exit" or "only when the buffer fills".
    assert time.monotonic() - answered < 2.5


@pytest.mark.parametrize("app", ["access_app:app", "asgi_ws:app"])
def test_every_line_is_written_by_term(start_server, tmp_path, app):
    log = tmp_path / "access.log"
    srv = start_server(app, "--access-logfile", str(log), "--workers", "2")
    n = 150
    with socket.create_connection(srv.host_port, timeout=10) as s:
        reader = rawhttp.Reader(s)
        for i in range(n):
            s.sendall(f"GET /n{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            assert reader.response().status == 200
    assert srv.stop() == 0, srv.log
    lines = log.read_text().splitlines()
    assert len(lines) == n, srv.log
    assert {ln.split('"GET /n')[1].split()[0] for ln in lines} == {str(i) for i in range(n)}


def test_usr1_writes_buffered_lines_to_the_old_file(start_server, tmp_path):
    log = tmp_path / "access.log"
    rotated = tmp_path / "access.log.1"
    srv = start_server("access_app:app", "--access-logfile", str(log))
    request(srv, b"GET /before HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    log.rename(rotated)
    srv.send_signal(signal.SIGUSR1)
    srv.wait_for_count(r"log files reopened", 2)  # the master and its worker
    request(srv, b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert srv.stop() == 0, srv.log
    assert "/before" in rotated.read_text() and "/after" not in rotated.read_text()
    assert "/after" in log.read_text() and "/before" not in log.read_text()


def test_json_interface_of_a_static_file(start_server, tmp_path):
    (tmp_path / "site.css").write_bytes(b"body{}")
    srv = start_server(
        "access_app:app",
        "--static",
        f"/static/={tmp_path}",
        "--access-logfile",
        "-",
        "--access-logformat",
        "json",
    )
    request(srv, b"GET /static/site.css HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    request(srv, b"GET /app HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    from_rust, from_app = json_lines(srv, 2)
    assert (from_rust["path"], from_rust["status"], from_rust["bytes_sent"]) == (
        "/static/site.css",
        200,
        6,
    )
    assert from_rust["interface"] == "static"
    assert (from_app["path"], from_app["interface"]) == ("/app", "wsgi")
