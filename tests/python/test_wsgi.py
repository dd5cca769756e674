"""PEP 3333 end to end: bourbon serving tests/apps/wsgi_app.py, driven over raw sockets."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import rawhttp
from rawhttp import Closed, Reader

APP = "wsgi_app:app"
MiB = 1024 * 1024


# --- helpers -------------------------------------------------------------------------------


def build(
    path: str,
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
    host: str | None = "localhost",
) -> bytes:
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if body and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    lines += [f"{k}: {v}" for k, v in hdrs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def fetch(srv, path: str, **kw) -> rawhttp.Response:
    """One request on a fresh connection."""
    method = kw.get("method", "GET")
    with srv.connect() as s:
        s.sendall(build(path, **kw))
        return Reader(s).response(method)


def get_environ(srv, path: str = "/env", **kw) -> dict[str, list]:
    resp = fetch(srv, path, **kw)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def values(env: dict[str, list]) -> dict:
    return {k: v[1] for k, v in env.items()}


def assert_hello(srv) -> None:
    """The server still answers a plain request on a new connection."""
    resp = fetch(srv, "/hello")
    assert resp.status == 200
    assert resp.body == b"hello"


def raw_until_close(srv, path: str) -> bytes:
    """Send one request and return every byte the server sends until it closes."""
    with srv.connect() as s:
        s.sendall(build(path))
        return Reader(s).read_to_close()


def read_events(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_event(path: Path, prefix: str, timeout: float = 15.0) -> list[str]:
    """Poll the app's side-channel file until a line starting with ``prefix`` appears."""
    deadline = time.monotonic() + timeout
    while True:
        found = [ln for ln in read_events(path) if ln.startswith(prefix)]
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no event {prefix!r} in {read_events(path)}")
        time.sleep(0.05)


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return tmp_path / "events.log"


@pytest.fixture
def srv(start_server, events):
    return start_server(APP, env={"WSGI_TEST_LOG": str(events)})


# --- environ -------------------------------------------------------------------------------


def test_required_environ_keys_and_types(srv):
    env = get_environ(srv, "/env?x=1")
    v = values(env)
    for key in (
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
    ):
        assert key in env, key
    # Every CGI-style key (no dot) is a native str.
    for key, (typ, _) in env.items():
        assert isinstance(key, str)
        if "." not in key:
            assert typ == "str", (key, env[key])
    assert v["REQUEST_METHOD"] == "GET"
    assert v["SCRIPT_NAME"] == ""
    assert v["PATH_INFO"] == "/env"
    assert v["QUERY_STRING"] == "x=1"
    assert v["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["wsgi.version"] == ["tuple", [1, 0]]
    assert env["wsgi.url_scheme"] == ["str", "http"]
    for flag in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert env[flag][0] == "bool", flag
    for key in ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper"):
        assert key in env, key


def test_path_info_percent_decoded_as_latin1(srv):
    v = values(get_environ(srv, "/env/caf%C3%A9/a%20b"))
    assert v["PATH_INFO"] == "/env/caf\xc3\xa9/a b"
    assert v["PATH_INFO"].encode("latin-1").decode("utf-8") == "/env/café/a b"


def test_query_string_raw(srv):
    v = values(get_environ(srv, "/env?a=%41%20b&c=caf%C3%A9+x&flag"))
    assert v["QUERY_STRING"] == "a=%41%20b&c=caf%C3%A9+x&flag"


def test_server_port_is_the_connections_port_not_hosts(srv):
    # PEP 3333 / RFC 3875 §4.1.15: the port the request arrived on. Host stays in HTTP_HOST
    # (which URL reconstruction reads first); it is never parsed for a port.
    host, port = srv.host_port
    for sent in ("localhost", "example.com:8080", "[::1]:8080", "example.com:"):
        v = values(get_environ(srv, host=sent))
        assert (v["SERVER_NAME"], v["SERVER_PORT"]) == (host, str(port)), sent
        assert v["HTTP_HOST"] == sent


def test_server_name_port_without_host(srv):
    host, port = srv.host_port
    v = values(get_environ(srv, version="HTTP/1.0", host=None))
    assert (v["SERVER_NAME"], v["SERVER_PORT"]) == (host, str(port))
    assert v["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in v


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_server_name_of_an_ipv6_listener_is_bracketed(start_server):
    # RFC 3875 §4.1.14: "[" ipv6-address "]", so that SERVER_NAME:SERVER_PORT is a URL
    # authority (PEP 3333's URL reconstruction joins them with a colon).
    if not _ipv6_loopback():
        pytest.skip("IPv6 loopback is not available on this machine")
    srv = start_server(APP, "-b", "[::1]:0")
    port = srv.host_port[1]
    v = values(get_environ(srv, host="localhost"))
    assert (v["SERVER_NAME"], v["SERVER_PORT"]) == ("[::1]", str(port))


def test_server_name_port_on_a_unix_socket(start_server):
    # No port on a unix socket: as gunicorn, the request's host (its port, else 80), or
    # without one the socket path and "".
    import shutil
    import socket
    import tempfile

    d = tempfile.mkdtemp(prefix="bbsn", dir="/tmp")
    sock_path = os.path.join(d, "s.sock")
    try:
        start_server(APP, "-b", f"unix:{sock_path}")
        cases = [
            (dict(host="example.com:8443"), ("example.com", "8443")),
            (dict(host="example.com"), ("example.com", "80")),
            (dict(host="[::1]:8080"), ("[::1]", "8080")),
            (dict(path="http://abs.example:81/env", host="example.com"), ("abs.example", "81")),
            (dict(version="HTTP/1.0", host=None), (sock_path, "")),
        ]
        for kw, expected in cases:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(sock_path)
                s.sendall(build(kw.pop("path", "/env"), **kw))
                resp = Reader(s).response()
            assert resp.status == 200, resp
            v = values(json.loads(resp.body))
            assert (v["SERVER_NAME"], v["SERVER_PORT"]) == expected, kw
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_absolute_form_target(srv):
    # RFC 9112 §3.2.2: the target's authority wins over Host; path and query come from the
    # target; RAW_URI stays the target as sent (as gunicorn).
    host, port = srv.host_port
    target = "http://user:pw@example.com:8080/env/caf%C3%A9?q=1&r#frag"
    v = values(get_environ(srv, target, host="other.example"))
    assert v["HTTP_HOST"] == "example.com:8080"
    assert v["PATH_INFO"] == "/env/caf\xc3\xa9"
    assert v["QUERY_STRING"] == "q=1&r"
    assert v["RAW_URI"] == target
    assert (v["SERVER_NAME"], v["SERVER_PORT"]) == (host, str(port))
    v = values(get_environ(srv, "https://[::1]:9000/env?x", host="other.example"))
    assert v["HTTP_HOST"] == "[::1]:9000"
    assert (v["PATH_INFO"], v["QUERY_STRING"]) == ("/env", "x")
    # HTTP/1.0 needs no Host: the target's authority still gives HTTP_HOST.
    v = values(get_environ(srv, "http://plain.example/env", version="HTTP/1.0", host=None))
    assert v["HTTP_HOST"] == "plain.example"


def test_repeated_headers_joined(srv):
    v = values(
        get_environ(
            srv,
            headers=[("X-Multi", "a"), ("X-Other", "o"), ("X-Multi", "b"), ("x-multi", "c")],
        )
    )
    assert v["HTTP_X_MULTI"] == "a, b, c"
    assert v["HTTP_X_OTHER"] == "o"


def test_many_header_fields_build_in_linear_time(start_server):
    # 32,768 fields (the most --limit-request-fields allows). Finding repeats used to compare
    # every pair of names: ~537 million comparisons, 4 to 10 s of CPU holding the GIL; now one
    # pass (0.1 s here). The unit test `linking_is_linear_in_the_number_of_fields` in
    # wsgi/environ.rs proves the linearity by counting; this checks the whole path end to end,
    # with a bound far above the linear time and below the quadratic one.
    srv = start_server(APP, "--limit-request-fields", "32768")
    distinct = [(f"X-F{i}", str(i)) for i in range(32_760)]
    repeated = [("X-Multi", "a"), ("Cookie", "c=1"), ("x-multi", "b"), ("cookie", "d=2")]
    repeated.append(("X-MULTI", "c"))
    request = build("/env", headers=distinct[:100] + repeated + distinct[100:])
    started = time.monotonic()
    with srv.connect(timeout=30) as s:
        s.sendall(request)
        resp = Reader(s).response()
    elapsed = time.monotonic() - started
    assert resp.status == 200, resp
    v = values(json.loads(resp.body))
    assert all(v[f"HTTP_X_F{i}"] == str(i) for i in range(32_760))
    assert v["HTTP_X_MULTI"] == "a, b, c"
    assert v["HTTP_COOKIE"] == "c=1; d=2"
    assert v["HTTP_HOST"] == "localhost"
    assert elapsed < 3.0, f"{elapsed:.2f} s for 32,766 header fields"


def test_content_type_and_length_without_http_prefix(srv):
    body = b"a=1&b=2"
    v = values(
        get_environ(
            srv,
            method="POST",
            headers=[("Content-Type", "application/x-www-form-urlencoded")],
            body=body,
        )
    )
    assert v["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert v["CONTENT_LENGTH"] == str(len(body))
    assert "HTTP_CONTENT_TYPE" not in v
    assert "HTTP_CONTENT_LENGTH" not in v


def test_header_with_underscore_dropped(srv):
    v = values(get_environ(srv, headers=[("X-Real", "proxy"), ("X_Real", "spoofed")]))
    assert v["HTTP_X_REAL"] == "proxy"
    assert "spoofed" not in json.dumps(v)


def test_remote_addr_port_raw_uri_input_terminated(srv):
    raw = "/env/raw%20path?q=%41"
    with srv.connect() as s:
        s.sendall(build(raw))
        resp = Reader(s).response()
        client_port = s.getsockname()[1]
    env = json.loads(resp.body)
    v = values(env)
    assert v["REMOTE_ADDR"] == "127.0.0.1"
    assert v["REMOTE_PORT"] == str(client_port)
    assert v["RAW_URI"] == raw
    assert env["wsgi.input_terminated"] == ["bool", True]


def test_multithread_false_with_one_thread(start_server):
    srv = start_server(APP, "--threads", "1")
    env = get_environ(srv)
    assert env["wsgi.multithread"] == ["bool", False]


def test_multithread_true_with_four_threads(start_server):
    srv = start_server(APP, "--threads", "4")
    env = get_environ(srv)
    assert env["wsgi.multithread"] == ["bool", True]


def test_multiprocess_and_run_once_false(srv):
    env = get_environ(srv)
    assert env["wsgi.multiprocess"] == ["bool", False]
    assert env["wsgi.run_once"] == ["bool", False]


def test_os_environ_does_not_leak(start_server):
    srv = start_server(APP, env={"LEAKCHECK": "1"})
    keys = set(get_environ(srv))
    assert "LEAKCHECK" not in keys
    for name in ("PATH", "HOME", "PYTHONUNBUFFERED", "LANG", "PWD"):
        assert name not in keys, name
    for key in keys:
        assert key.startswith(("HTTP_", "wsgi.", "SERVER_", "REMOTE_", "bourbon.")) or key in {
            "REQUEST_METHOD",
            "SCRIPT_NAME",
            "PATH_INFO",
            "QUERY_STRING",
            "CONTENT_TYPE",
            "CONTENT_LENGTH",
            "RAW_URI",
        }, key


# --- wsgi.input ----------------------------------------------------------------------------

AFTER_END = ["b''", "b''", "b''"] * 3 + ["[]", "[]"]


def post(srv, path: str, body: bytes, **kw) -> dict:
    resp = fetch(srv, path, method="POST", body=body, **kw)
    assert resp.status == 200, (resp, resp.body)
    return json.loads(resp.body)


def test_input_read_all(srv):
    body = b"line one\nline two\n\xff\x00binary"
    out = post(srv, "/input/read", body)
    assert out["len"] == len(body)
    assert out["sha256"] == hashlib.sha256(body).hexdigest()
    assert out["type"] == "bytes"
    assert out["after"] == AFTER_END


def test_input_read_n_loop(srv):
    body = b"abcdefghijklmnopqrstuvwxyz"
    out = post(srv, "/input/readn?n=7", body)
    assert out["chunks"] == ["abcdefg", "hijklmn", "opqrstu", "vwxyz"]
    assert out["types"] == ["bytes"]
    assert out["after"] == AFTER_END


def test_input_readline(srv):
    body = b"first\nsecond\n\nlast without newline"
    out = post(srv, "/input/readline", body)
    assert out["lines"] == ["first\n", "second\n", "\n", "last without newline"]
    assert out["after"] == AFTER_END


def test_input_readline_with_size(srv):
    body = b"abcdefghij\nxy\n"
    out = post(srv, "/input/readline?n=4", body)
    assert out["lines"] == ["abcd", "efgh", "ij\n", "xy\n"]
    assert out["after"] == AFTER_END


def test_input_readlines_hint(srv):
    body = b"l1\nl2\nl3\nl4\n"
    out = post(srv, "/input/readlines?hint=4", body)
    assert out["first"] == ["l1\n", "l2\n"]
    assert out["rest"] == ["l3\n", "l4\n"]
    assert out["after"] == AFTER_END


def test_input_iteration(srv):
    body = b"a\nbb\nccc\nno newline"
    out = post(srv, "/input/iter", body)
    assert out["lines"] == ["a\n", "bb\n", "ccc\n", "no newline"]
    assert out["after"] == AFTER_END


def _post_large(srv, size: int) -> None:
    data = os.urandom(size)
    with srv.connect(timeout=60) as s:
        s.sendall(build("/input/hash", method="POST", body=data))
        resp = Reader(s).response()
    assert resp.status == 200, resp
    out = json.loads(resp.body)
    assert out["len"] == size
    assert out["sha256"] == hashlib.sha256(data).hexdigest()


def test_input_20mib_streamed(srv):
    _post_large(srv, 20 * MiB)


def test_input_20mib_streamed_without_post_buffering(start_server):
    srv = start_server(APP, "--post-buffering", "0")
    _post_large(srv, 20 * MiB)


def test_input_chunked_request_body(srv):
    parts = [b"hello", b" ", b"chunked\n", b"world"]
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    out = post(srv, "/input/read", body, headers=[("Transfer-Encoding", "chunked")])
    assert out["body"] == "hello chunked\nworld"
    assert out["len"] == len(b"hello chunked\nworld")
    assert out["after"] == AFTER_END


def test_input_large_chunked_request_body(srv):
    data = os.urandom(3 * MiB)
    step = 100_000
    body = b"".join(
        b"%x\r\n%s\r\n" % (len(data[i : i + step]), data[i : i + step])
        for i in range(0, len(data), step)
    )
    body += b"0\r\n\r\n"
    with srv.connect(timeout=60) as s:
        s.sendall(
            build(
                "/input/hash",
                method="POST",
                body=body,
                headers=[("Transfer-Encoding", "chunked")],
            )
        )
        resp = Reader(s).response()
    out = json.loads(resp.body)
    assert out["len"] == len(data)
    assert out["sha256"] == hashlib.sha256(data).hexdigest()


# --- wsgi.errors ---------------------------------------------------------------------------


def test_wsgi_errors_goes_to_log(srv):
    resp = fetch(srv, "/errors?m=ERRMARK-31337")
    assert resp.status == 200
    srv.wait_for_log(r"wsgi\.errors says ERRMARK-31337")
    srv.wait_for_log(r"writelines ERRMARK-31337 one")
    srv.wait_for_log(r"writelines ERRMARK-31337 two")


# --- start_response validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        "bytes-status",
        "int-status",
        "no-code",
        "four-digit",
        "no-reason-sep",
        "name-space",
        "name-colon",
        "value-newline",
        "value-cr",
        "value-non-latin1",
        "bytes-header",
        "hop-transfer-encoding",
        "hop-keep-alive",
        "hop-upgrade",
        "headers-none",
    ],
)
def test_start_response_rejects_invalid(srv, case):
    resp = fetch(srv, f"/bad-start?case={case}")
    assert resp.status == 500
    assert b"should never be sent" not in resp.body
    srv.wait_for_log(r"Traceback")
    srv.wait_for_log(r"(TypeError|ValueError|AssertionError)")
    assert_hello(srv)


def test_start_response_without_headers_names_what_is_missing(srv):
    # start_response returns itself as the write() callable, so a call with one argument
    # is a write; a status string alone must still read as a forgotten header list.
    resp = fetch(srv, "/bad-start?case=headers-none")
    assert resp.status == 500
    srv.wait_for_log(r"TypeError: start_response\(\) needs the response headers")
    assert_hello(srv)


def test_start_response_twice_without_exc_info_is_an_error(srv):
    resp = fetch(srv, "/second-without-excinfo")
    assert resp.status == 500
    srv.wait_for_log(r"Traceback")
    assert_hello(srv)


def test_app_connection_close_closes_connection(srv):
    with srv.connect() as s:
        s.sendall(build("/conn-close"))
        r = Reader(s)
        resp = r.response()
        assert resp.status == 200
        assert resp.body == b"bye"
        assert (resp.header("connection") or "").lower() == "close"
        assert r.at_eof(5.0)
    assert_hello(srv)


# --- write() -------------------------------------------------------------------------------


def test_write_callable_only(srv):
    resp = fetch(srv, "/write-only")
    assert resp.status == 200
    assert resp.body == b"one,two,three"


def test_write_then_iterable(srv):
    resp = fetch(srv, "/write-mix")
    assert resp.status == 200
    assert resp.body == b"written-returned-iterable"


def test_large_body_stays_intact_while_the_client_is_slow(srv):
    # Large chunks are written from the Python bytes object itself, not a copy: the object
    # must outlive the write. Here the app's only reference is gone as soon as it returns,
    # the client reads nothing until other requests have made and dropped bodies as large,
    # and the bytes must still be the ones the app produced.
    n = 16 * 1024 * 1024
    with srv.connect() as slow:
        slow.sendall(build(f"/big-unique?n={n}"))
        for _ in range(3):
            other = fetch(srv, f"/big-unique?n={n}")
            assert hashlib.sha256(other.body).hexdigest() == other.header("x-sha256")
        resp = Reader(slow).response()
    assert resp.status == 200
    assert len(resp.body) == n
    assert hashlib.sha256(resp.body).hexdigest() == resp.header("x-sha256")
    assert_hello(srv)


# --- exc_info ------------------------------------------------------------------------------


def test_exc_info_before_body_replaces_head(srv):
    resp = fetch(srv, "/excinfo/before")
    assert resp.status == 503
    assert resp.header("x-second") == "yes"
    assert resp.header("x-first") is None
    assert resp.body == b"second head"


def test_exc_info_after_empty_chunk_still_replaces_head(srv):
    resp = fetch(srv, "/excinfo/after-empty")
    assert resp.status == 404
    assert resp.header("x-second") == "yes"
    assert resp.header("x-first") is None
    assert resp.body == b"replaced"


def test_exc_info_after_body_started_reraises(srv, events):
    raw = raw_until_close(srv, "/excinfo/after")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"partial body" in raw
    assert b"must not be sent" not in raw
    assert not raw.endswith(b"0\r\n\r\n"), raw  # the chunked body is cut, not ended
    srv.wait_for_log(r"Traceback")
    srv.wait_for_log(r"exc-info-after-body-started")
    assert_hello(srv)
    assert not [e for e in read_events(events) if "did not raise" in e]


# --- late start_response and streaming -----------------------------------------------------


def test_late_start_response_in_generator(srv):
    resp = fetch(srv, "/late")
    assert resp.status == 200
    assert resp.header("x-late") == "yes"
    assert resp.body == b"late start"


def test_empty_chunks_before_data(srv):
    resp = fetch(srv, "/empty-first")
    assert resp.status == 200
    assert resp.body == b"data"


def test_streaming_chunks_sent_as_yielded(srv):
    with srv.connect() as s:
        t0 = time.monotonic()
        s.sendall(build("/stream"))
        buf = b""
        seen: dict[int, float] = {}
        while len(seen) < 5:
            data = s.recv(65536)
            if not data:
                break
            now = time.monotonic() - t0
            buf += data
            for i in range(5):
                if i not in seen and f"data: {i}\n\n".encode() in buf:
                    seen[i] = now
    assert sorted(seen) == [0, 1, 2, 3, 4], buf
    assert b"text/event-stream" in buf
    assert seen[0] < 1.0, seen
    assert seen[4] - seen[0] >= 1.0, seen


# --- close() -------------------------------------------------------------------------------


def _assert_closed_once(srv, events: Path, tag: str) -> str:
    wait_for_event(events, f"close {tag}")
    # Another request completes after the first one's handling has finished (one thread).
    assert_hello(srv)
    found = [e for e in read_events(events) if e.startswith(f"close {tag}")]
    assert len(found) == 1, read_events(events)
    return found[0]


def test_close_called_once_normal(srv, events):
    resp = fetch(srv, "/close/normal")
    assert resp.status == 200
    assert resp.body == (b"x" * 1024 + b"\n") * 3
    assert _assert_closed_once(srv, events, "normal") == "close normal produced=3"


def test_close_called_once_on_exception(srv, events):
    with srv.connect() as s:
        s.sendall(build("/close/raise"))
        with pytest.raises(Closed):
            Reader(s).response()
    assert _assert_closed_once(srv, events, "raise") == "close raise produced=2"
    srv.wait_for_log(r"raise failed at chunk 2")


def test_close_called_once_when_client_gone(srv, events):
    s = srv.connect()
    try:
        s.sendall(build("/close/gone"))
        r = Reader(s)
        r.read_until(b"\r\n\r\n")
        r.read_until(b"x" * 1024)
    finally:
        s.close()
    line = _assert_closed_once(srv, events, "gone")
    produced = int(line.rpartition("=")[2])
    assert produced < 10_000, line


# --- Content-Length mismatches -------------------------------------------------------------


@pytest.mark.parametrize("gen", ["", "1"], ids=["list", "generator"])
def test_body_longer_than_content_length(srv, gen):
    with srv.connect() as s:
        s.sendall(build(f"/cl/long?gen={gen}"))
        r = Reader(s)
        resp = r.response()
        assert resp.status == 200
        assert resp.header("content-length") == "5"
        assert resp.body == b"01234"
        if not r.at_eof(0.5):
            # Still open: the extra bytes must not be on the wire.
            assert r.buf == b""
            s.sendall(build("/hello"))
            nxt = r.response()
            assert (nxt.status, nxt.body) == (200, b"hello")
    srv.wait_for_log(r"(?i)longer than (its )?content-length")
    assert_hello(srv)


@pytest.mark.parametrize("gen", ["", "1"], ids=["list", "generator"])
def test_body_shorter_than_content_length(srv, gen):
    with srv.connect() as s:
        s.sendall(build(f"/cl/short?gen={gen}"))
        r = Reader(s)
        with pytest.raises(Closed):
            r.response()
    srv.wait_for_log(r"(?i)shorter than (its )?content-length")
    assert_hello(srv)


# --- wsgi.file_wrapper ---------------------------------------------------------------------


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(5 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


def test_file_wrapper_sends_file(srv, events, big_file):
    path, data = big_file
    with srv.connect(timeout=30) as s:
        s.sendall(build(f"/file?path={quote(str(path))}"))
        resp = Reader(s).response()
    assert resp.status == 200
    assert resp.header("content-length") == str(len(data))
    assert not resp.chunked
    assert len(resp.body) == len(data)
    assert resp.body == data
    wait_for_event(events, f"file closed {path}")


def test_file_wrapper_over_a_unix_socket(start_server, events, big_file):
    # A TCP client on this machine gets file bodies copied (see `send_file` in h1.rs); a
    # unix-socket client gets them with sendfile(2). Both must carry the same bytes.
    import shutil
    import socket
    import tempfile

    path, data = big_file
    d = tempfile.mkdtemp(prefix="bbfw", dir="/tmp")
    sock_path = os.path.join(d, "s.sock")
    try:
        start_server(APP, "-b", f"unix:{sock_path}", env={"WSGI_TEST_LOG": str(events)})
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(sock_path)
            for _ in range(2):  # twice on one connection: the framing stays right
                s.sendall(build(f"/file?path={quote(str(path))}"))
                resp = Reader(s).response()
                assert resp.status == 200
                assert resp.header("content-length") == str(len(data))
                assert resp.body == data
    finally:
        shutil.rmtree(d, ignore_errors=True)
    wait_for_event(events, f"file closed {path}")


def test_file_wrapper_bytesio_iterated(srv, events, tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / "small.bin"
    path.write_bytes(data)
    resp = fetch(srv, f"/file?kind=bytesio&path={quote(str(path))}")
    assert resp.status == 200
    assert resp.body == data
    wait_for_event(events, "bytesio closed")


def test_file_wrapper_from_seeked_offset(srv, big_file):
    path, data = big_file
    offset = 1_234_567
    resp = fetch(srv, f"/file?kind=open&offset={offset}&path={quote(str(path))}")
    assert resp.status == 200
    assert resp.header("content-length") == str(len(data) - offset)
    assert resp.body == data[offset:]


def test_file_wrapper_after_buffered_read(srv, big_file):
    # After read(10) the buffered file's position is 10, its descriptor's is further on.
    path, data = big_file
    resp = fetch(srv, f"/file?kind=open&pre_read=10&path={quote(str(path))}")
    assert resp.status == 200
    assert resp.header("content-length") == str(len(data) - 10)
    assert resp.body == data[10:]


# --- exceptions ----------------------------------------------------------------------------


def test_exception_before_start_response(srv):
    resp = fetch(srv, "/raise/before")
    assert resp.status == 500
    assert b"Traceback" not in resp.body
    assert b"secret-boom" not in resp.body
    srv.wait_for_log(r"Traceback")
    srv.wait_for_log(r"RuntimeError: secret-boom-before-start-response")
    assert_hello(srv)


def test_exception_mid_iteration_closes_connection(srv):
    raw = raw_until_close(srv, "/raise/mid")
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"first chunk" in raw
    assert not raw.endswith(b"0\r\n\r\n"), raw
    with srv.connect() as s:
        s.sendall(build("/raise/mid"))
        with pytest.raises(Closed):
            Reader(s).response()
    srv.wait_for_log(r"Traceback")
    srv.wait_for_log(r"RuntimeError: boom-in-the-middle")
    assert_hello(srv)


def test_close_runs_after_the_response_is_sent(start_server):
    """PEP 3333 asks only that close() be called; bourbon calls it once the response is on
    the wire, as a blocking server would, so a slow close() (Django's request_finished
    clean-up) does not delay the client."""
    srv = start_server("close_app:app")
    with srv.connect() as s:
        started = time.monotonic()
        s.sendall(b"GET /slow-close HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"done\n"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        assert time.monotonic() - started < 0.4, "the response waited for close()"
        srv.wait_for_log("close_app: closed after sleeping")
        # The connection goes on after close() has run.
        s.sendall(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"done\n"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk


def test_an_error_in_a_late_close_is_logged(start_server):
    srv = start_server("close_app:app")
    with srv.connect() as s:
        s.sendall(b"GET /bad-close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"done\n"), data
    srv.wait_for_log("close_app: close failed")
    assert "Error handling request /bad-close" in srv.log
