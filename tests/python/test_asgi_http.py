"""ASGI 3 over HTTP end to end (ASGI spec: "HTTP & WebSocket" message format 2.x, the HTTP
part, and the extensions bourbon advertises), plus lifespan: bourbon serving
tests/apps/asgi_app.py, driven over raw sockets."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time

import pytest
import rawhttp
from conftest import run_bourbon, wait_readable
from rawhttp import Reader

APP = "asgi_app:app"


def build(
    path: str,
    *,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    lines = [f"{method} {path} {version}", "Host: localhost"]
    hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if body and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    lines += [f"{k}: {v}" for k, v in hdrs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def fetch(srv, path: str, **kw) -> rawhttp.Response:
    method = kw.get("method", "GET")
    with srv.connect() as s:
        s.sendall(build(path, **kw))
        return Reader(s).response(method)


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events"
    path.touch()
    return path


def lines_of(path) -> list[str]:
    return [ln.split(" ", 1)[1] for ln in path.read_text().splitlines()]


def wait_event(srv, event: str, timeout: float = 10.0) -> None:
    """Wait for the application to note `event` (it writes it to the server's log too)."""
    srv.wait_for_log(rf"asgi-event {re.escape(event)}$", timeout=timeout)


# --- choosing the interface ------------------------------------------------------------------


def test_an_asgi_app_is_detected_and_served(start_server):
    srv = start_server(APP)
    resp = fetch(srv, "/hello")
    assert resp.status == 200
    assert resp.body == b"Hello, World!"
    assert resp.header("content-length") == "13"
    assert resp.header("server") == "bourbon"


def test_interface_wsgi_refuses_an_asgi_app_with_exit_4():
    res = run_bourbon(APP, "--interface", "wsgi", "-b", "127.0.0.1:0", "--check-config")
    assert res.returncode == 4, res.stderr
    assert "--interface wsgi" in res.stderr + res.stdout


def test_check_config_accepts_an_asgi_app():
    res = run_bourbon(APP, "-b", "127.0.0.1:0", "--check-config")
    assert res.returncode == 0, res.stderr


def test_asgi2_class_apps_are_served(start_server, tmp_path):
    (tmp_path / "asgi2_app.py").write_text(
        "class App:\n"
        "    def __init__(self, scope):\n"
        "        self.scope = scope\n"
        "    async def __call__(self, receive, send):\n"
        "        if self.scope['type'] != 'http':\n"
        "            return\n"
        "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "        await send({'type': 'http.response.body', 'body': b'asgi2'})\n"
    )
    srv = start_server("asgi2_app:App", cwd=tmp_path)
    assert fetch(srv, "/").body == b"asgi2"


# --- the scope --------------------------------------------------------------------------------


def test_scope_has_every_key_of_the_spec(start_server):
    srv = start_server(APP)
    resp = fetch(
        srv,
        "/scope?a=1&b=%20x",
        headers=[("X-Dup", "one"), ("X-Dup", "two"), ("X-CaSe", "Value")],
    )
    scope = json.loads(resp.body)
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"].startswith("2.")
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "a=1&b=%20x"
    assert scope["root_path"] == ""
    assert scope["header_types"] == ["tuple"]
    hdrs = scope["headers"]
    assert ["x-dup", "one"] in hdrs and ["x-dup", "two"] in hdrs
    assert hdrs.index(["x-dup", "one"]) < hdrs.index(["x-dup", "two"])
    assert ["x-case", "Value"] in hdrs, "names lower-cased, values as sent"
    host, port = srv.host_port
    assert scope["server"] == [host, port]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    for ext in ("http.response.trailers", "http.response.pathsend", "http.response.early_hint"):
        assert ext in scope["extensions"]


def test_path_is_percent_decoded_once_and_raw_path_kept(start_server):
    srv = start_server(APP)
    scope = json.loads(fetch(srv, "/scope/%2541/caf%C3%A9/a%2Fb").body)
    assert scope["path"] == "/scope/%41/café/a/b"
    assert scope["raw_path"] == "/scope/%2541/caf%C3%A9/a%2Fb"


def test_http10_request(start_server):
    srv = start_server(APP)
    resp = fetch(srv, "/scope", version="HTTP/1.0")
    assert json.loads(resp.body)["http_version"] == "1.0"


def test_root_path_is_prefixed_to_path(start_server):
    srv = start_server(APP, "--root-path", "/app")
    scope = json.loads(fetch(srv, "/scope").body)
    assert scope["root_path"] == "/app"
    # The application routes on the un-prefixed path in this test app; the prefix shows in
    # path and raw_path as uvicorn does (Starlette strips root_path itself).
    assert scope["path"] == "/app/scope"
    assert scope["raw_path"] == "/app/scope"


def test_unix_socket_scope(start_server, tmp_path):
    sock_path = tmp_path / "asgi.sock"
    srv = start_server(APP, "-b", f"unix:{sock_path}")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        s.sendall(build("/scope"))
        scope = json.loads(Reader(s).response().body)
    assert scope["client"] is None
    assert scope["server"] == [str(sock_path), None]
    assert srv.proc.poll() is None


# --- request bodies ---------------------------------------------------------------------------


def test_small_body_arrives_whole(start_server):
    srv = start_server(APP)
    resp = fetch(srv, "/messages", method="POST", body=b"hello")
    messages = json.loads(resp.body)
    assert messages == [{"type": "http.request", "body": 5, "more_body": False}]


def test_large_body_streams_with_more_body(start_server):
    srv = start_server(APP)
    body = os.urandom(3 * 1024 * 1024)
    resp = fetch(srv, "/echo", method="POST", body=body)
    assert resp.status == 200
    assert resp.body == body
    resp = fetch(srv, "/messages", method="POST", body=body)
    messages = json.loads(resp.body)
    assert len(messages) > 1
    assert all(m["type"] == "http.request" for m in messages)
    assert all(m["more_body"] for m in messages[:-1])
    assert messages[-1]["more_body"] is False
    assert sum(m["body"] for m in messages) == len(body)


def test_chunked_body(start_server):
    srv = start_server(APP)
    chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    with srv.connect() as s:
        s.sendall(build("/echo", method="POST", headers=[("Transfer-Encoding", "chunked")]))
        s.sendall(chunked)
        resp = Reader(s).response()
    assert resp.body == b"hello world"


def test_expect_100_continue_only_when_the_app_reads(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(
            build(
                "/echo",
                method="POST",
                headers=[("Expect", "100-continue"), ("Content-Length", "4")],
            )
        )
        assert wait_readable(s, 10)
        first = s.recv(100)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        s.sendall(b"data")
        r = Reader(s)
        r.buf = first[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
        resp = r.response()
    assert resp.body == b"data"
    with srv.connect() as s:
        s.sendall(
            build(
                "/no-read",
                method="POST",
                headers=[("Expect", "100-continue"), ("Content-Length", "4")],
            )
        )
        resp = Reader(s).response()
        assert resp.status == 200 and resp.body == b"did not read"
        assert resp.status != 100


def test_body_over_the_limit_is_refused(start_server):
    srv = start_server(APP, "--limit-request-body", "100")
    resp = fetch(srv, "/echo", method="POST", body=b"x" * 1000)
    assert resp.status == 413


# --- responses --------------------------------------------------------------------------------


def test_streamed_response_is_chunked_and_flushed_per_chunk(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(build("/stream?3"))
        s.settimeout(10)
        got = b""
        # The first part arrives before the application produced the rest (each part is
        # flushed when sent; the app sleeps between them).
        while b"part0" not in got:
            got += s.recv(4096)
        assert b"part2" not in got
        while not got.endswith(b"0\r\n\r\n"):
            got += s.recv(4096)
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"part0\n" in body and b"part2\n" in body


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(start_server, status):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(build(f"/status?{status}") + build("/hello"))
        r = Reader(s)
        first = r.response()
        assert first.status == status
        assert first.body == b""
        second = r.response()
        assert second.body == b"Hello, World!", "the connection stays in sync"


def test_head_gets_no_body(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(build("/hello", method="HEAD") + build("/hello"))
        r = Reader(s)
        head = r.response("HEAD")
        assert head.status == 200 and head.body == b""
        assert r.response().body == b"Hello, World!"


def test_keep_alive_serves_many_requests(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        r = Reader(s)
        for _ in range(50):
            s.sendall(build("/hello"))
            assert r.response().body == b"Hello, World!"


def test_large_response_with_backpressure(start_server, events):
    srv = start_server(APP, env={"ASGI_EVENTS": str(events)})
    n = 20 * 1024 * 1024
    with srv.connect() as s:
        s.sendall(build(f"/big?{n}"))
        # Read nothing for a while: the app must be held by send() (bounded memory), not
        # have produced everything.
        time.sleep(0.5)
        assert not any(ln.startswith("big-done") for ln in lines_of(events))
        resp = Reader(s).response()
    assert len(resp.body) == n
    wait_event(srv, f"big-done {n}")


def test_a_client_that_stops_reading_is_cut_off_by_write_timeout(start_server, events):
    # --write-timeout holds for ASGI responses as for WSGI ones: a client that takes nothing
    # for that long is let go, and the application's waiting send() raises (an OSError), so
    # its task ends instead of waiting forever.
    srv = start_server(APP, "--write-timeout", "1", env={"ASGI_EVENTS": str(events)})
    with srv.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(build(f"/big?{1 << 30}"))
        started = time.monotonic()
        wait_event(srv, "big-stopped ClientDisconnected", timeout=20)
        assert time.monotonic() - started >= 0.9
        assert not any(ln.startswith("big-done") for ln in lines_of(events))
        # What was written before the stall still arrives, then the end of the stream.
        s.settimeout(10)
        got, ended = 0, False
        for _ in range(100_000):
            try:
                data = s.recv(1 << 16)
            except ConnectionResetError:
                ended = True
                break
            if not data:
                ended = True
                break
            got += len(data)
        assert ended and got < 1 << 30
    assert fetch(srv, "/hello").status == 200, "the worker carries on"


# --- errors -----------------------------------------------------------------------------------


def test_exception_before_start_is_a_500_with_traceback(start_server):
    srv = start_server(APP)
    resp = fetch(srv, "/raise-before")
    assert resp.status == 500
    srv.wait_for_log("Exception in ASGI application")
    srv.wait_for_log("RuntimeError: boom before start")
    assert fetch(srv, "/hello").status == 200, "the worker carries on"


def test_return_without_response_is_a_500(start_server):
    srv = start_server(APP)
    assert fetch(srv, "/return-early").status == 500
    srv.wait_for_log("returned without starting response")


def test_exception_after_start_closes_the_connection(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(build("/raise-after"))
        data = read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"partial" in data
    assert not data.endswith(b"0\r\n\r\n"), "never a response that looks complete"
    srv.wait_for_log("RuntimeError: boom after start")
    assert fetch(srv, "/hello").status == 200


def test_invalid_header_values_never_reach_the_wire(start_server):
    srv = start_server(APP)
    resp = fetch(srv, "/bad-header")
    assert resp.status == 500
    assert resp.header("injected") is None and resp.header("x-evil") is None
    assert resp.body.startswith(b"refused")
    resp = fetch(srv, "/bad-name")
    assert resp.body == b"refused name"


# --- disconnects ------------------------------------------------------------------------------


def test_disconnect_reaches_receive(start_server, events):
    srv = start_server(APP, env={"ASGI_EVENTS": str(events)})
    s = srv.connect()
    s.sendall(build("/wait-disconnect"))
    assert wait_readable(s, 10)
    s.recv(1000)
    s.close()
    wait_event(srv, "disconnected")


def test_send_after_disconnect_raises_oserror(start_server, events):
    srv = start_server(APP, env={"ASGI_EVENTS": str(events)})
    s = srv.connect()
    s.sendall(build("/send-after-disconnect"))
    assert wait_readable(s, 10)
    s.recv(1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    wait_event(srv, "send-raised ClientDisconnected")
    assert fetch(srv, "/hello").status == 200


# --- extensions -------------------------------------------------------------------------------


def test_pathsend_serves_the_file(start_server):
    srv = start_server(APP)
    resp = fetch(srv, "/pathsend")
    here = os.path.join(os.path.dirname(__file__), "..", "apps", "asgi_app.py")
    with open(here, "rb") as f:
        expected = f.read()
    assert resp.status == 200
    assert resp.body == expected
    assert resp.header("content-length") == str(len(expected))


def test_zerocopysend_serves_the_range(start_server):
    srv = start_server(APP)
    resp = fetch(srv, "/zerocopy")
    here = os.path.join(os.path.dirname(__file__), "..", "apps", "asgi_app.py")
    with open(here, "rb") as f:
        expected = f.read()[10:]
    assert resp.body == expected


def test_trailers_follow_a_chunked_body(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(build("/trailers", headers=[("TE", "trailers")]))
        data = b""
        s.settimeout(10)
        while b"\r\n\r\n" not in data.split(b"\r\n\r\n", 1)[-1] or not data.endswith(b"\r\n\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            if data.count(b"\r\n\r\n") >= 2:
                break
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"body with trailers" in rest
    assert b"x-checksum: abc123" in rest.lower()


def test_trailers_are_dropped_for_clients_that_did_not_ask(start_server):
    srv = start_server(APP)
    resp = fetch(srv, "/trailers")
    assert resp.body == b"body with trailers"
    assert resp.header("x-checksum") is None


def test_early_hints_come_before_the_response(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(build("/early-hints"))
        data = b""
        s.settimeout(10)
        while b"after hints" not in data:
            chunk = s.recv(4096)
            assert chunk
            data += chunk
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\n")
    assert b"link: </style.css>; rel=preload; as=style" in data.lower()
    assert b"HTTP/1.1 200 OK" in data


# --- lifespan ---------------------------------------------------------------------------------


def test_lifespan_startup_and_shutdown_in_order(start_server, events):
    srv = start_server(APP, env={"ASGI_EVENTS": str(events)})
    # Served only once startup completed.
    assert fetch(srv, "/hello").status == 200
    assert lines_of(events) == ["startup"]
    assert srv.stop(signal.SIGTERM) == 0
    assert lines_of(events) == ["startup", "shutdown"]


def test_lifespan_runs_in_every_worker(start_server, events):
    srv = start_server(APP, "-w", "2", env={"ASGI_EVENTS": str(events)})
    srv.wait_for_count(r"asgi-event startup$", 2)
    pids = {ln.split()[0] for ln in events.read_text().splitlines()}
    assert len(pids) == 2
    srv.stop(signal.SIGTERM)
    assert lines_of(events).count("shutdown") == 2


def test_lifespan_state_is_copied_into_each_scope(start_server):
    srv = start_server(APP)
    scope = json.loads(fetch(srv, "/scope").body)
    assert scope["state"] == {"greeting": "hello from lifespan"}
    # A key one request adds to its copy is not seen by the next (a shallow copy), while
    # mutable values are shared, as the spec says.
    assert fetch(srv, "/state").body == b"[1]"
    assert fetch(srv, "/state").body == b"[2]"
    assert "mine" not in json.loads(fetch(srv, "/scope").body)["state"]


def test_lifespan_startup_failed_stops_the_server_with_exit_3(tmp_path):
    res = run_bourbon(APP, "-b", "127.0.0.1:0", env={"ASGI_LIFESPAN": "fail"}, timeout=60)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "database unreachable" in res.stdout + res.stderr


def test_lifespan_refused_is_quiet_in_auto(start_server):
    srv = start_server(APP, env={"ASGI_LIFESPAN": "refuse"})
    assert fetch(srv, "/hello").status == 200
    assert "Traceback" not in srv.log
    assert "ERROR" not in srv.log


def test_lifespan_refused_fails_the_boot_when_on():
    res = run_bourbon(APP, "-b", "127.0.0.1:0", "--lifespan", "on", env={"ASGI_LIFESPAN": "refuse"})
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Django can only handle" in res.stdout + res.stderr


def test_lifespan_off_sends_nothing(start_server, events):
    srv = start_server(APP, "--lifespan", "off", env={"ASGI_EVENTS": str(events)})
    assert fetch(srv, "/hello").status == 200
    srv.stop(signal.SIGTERM)
    assert lines_of(events) == []
    # Without lifespan there is no state in the scope.


# --- the event loop ---------------------------------------------------------------------------


def test_default_loop_is_asyncio(start_server):
    srv = start_server(APP)
    assert fetch(srv, "/loop").body == b"asyncio"


def test_call_soon_keeps_asyncio_semantics(start_server):
    # The worker's loop schedules callbacks through bourbon's call_soon (Rust): order,
    # arguments, cancel, contexts and the exception handler must be asyncio's.
    srv = start_server(APP)
    report = json.loads(fetch(srv, "/call-soon").body)
    assert report["ran"] == ["a", "ctx:request", "given:given"], report
    assert report["cancelled"] is True
    assert report["caught"] == ["ZeroDivisionError"]
    assert report["message"].startswith("Exception in callback"), report
    assert report["handle_reported"] is True
    assert report["handle_type"] == "bourbon._bourbon.Handle", report
    # Tasks are registered through bourbon's add on asyncio's task set (asgi/handle.rs).
    assert report["registry_add"] in ("TaskSetAdd", None), report  # None: CPython 3.14+
    assert report["tasks_listed"] is True
    assert report["freed_task_left_the_set"] is True
    assert report["debug"] == [False, True, False], report
    assert report["threadsafe"] == {"context": "thread", "type": "bourbon._bourbon.Handle"}, report
    assert fetch(srv, "/hello").status == 200


def test_request_task_is_one_asyncio_task(start_server):
    # The first step of a request's task runs as soon as the request reaches Python
    # (asgi/handle.rs, start_eagerly), in the task itself: current_task() is the same
    # asyncio Task (named for its kind) before and after the first wait, listed in
    # all_tasks(), and a context variable set by one request is not seen by the next.
    srv = start_server(APP)
    for _ in range(2):
        report = json.loads(fetch(srv, "/task").body)
        assert report == {
            "type": "_asyncio.Task",
            "name": "bourbon-http",
            "same": True,
            "listed": True,
            "var_before": "unset",
            "var_after": "mine",
        }, report
    with srv.connect() as s:
        s.sendall(build("/task") * 3)
        reader = Reader(s)
        for _ in range(3):
            assert json.loads(reader.response().body)["same"] is True


def test_uvloop_serves_http_streams_and_lifespan(start_server, events):
    srv = start_server(APP, "--loop", "uvloop", env={"ASGI_EVENTS": str(events)})
    assert fetch(srv, "/loop").body == b"uvloop"
    assert fetch(srv, "/hello").body == b"Hello, World!"
    body = os.urandom(1024 * 1024)
    assert fetch(srv, "/echo", method="POST", body=body).body == body
    with srv.connect() as s:
        s.sendall(build("/stream?3"))
        assert Reader(s).response().body == b"part0\npart1\npart2\n"
    assert srv.stop(signal.SIGTERM) == 0
    assert lines_of(events) == ["startup", "shutdown"]


# --- process model ----------------------------------------------------------------------------


def test_term_drains_in_flight_requests(start_server):
    srv = start_server(APP)
    with srv.connect() as s:
        s.sendall(build("/stream?10"))
        assert wait_readable(s, 10)
        srv.send_signal(signal.SIGTERM)
        data = read_until_closed(s)
    assert data.endswith(b"0\r\n\r\n"), "the response in flight finished"
    assert b"part9" in data
    assert srv.proc.wait(15) == 0


def test_max_requests_recycles_asgi_workers(start_server):
    srv = start_server(APP, "--max-requests", "5")
    for _ in range(12):
        assert fetch(srv, "/hello").status == 200
    srv.wait_for_log("Autorestarting worker")


def test_a_hung_loop_is_killed_by_the_timeout(start_server, tmp_path):
    (tmp_path / "hang_app.py").write_text(
        "import asyncio, time\n"
        "async def waiting_for_the_database():\n"
        "    await asyncio.sleep(100)\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    if scope['path'] == '/wait':\n"
        "        await waiting_for_the_database()\n"
        "    if scope['path'] == '/hang':\n"
        "        time.sleep(60)\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
    )
    srv = start_server("hang_app:app", "--timeout", "2", cwd=tmp_path)
    waiting = srv.connect()
    waiting.sendall(build("/wait"))
    s = srv.connect()
    s.sendall(build("/hang"))
    srv.wait_for_log(r"WORKER TIMEOUT", timeout=20)
    # The thread stacks (the blocking call), then every asyncio task's.
    srv.wait_for_log(r"hang_app\.py", timeout=20)
    srv.wait_for_log(r"Stacks of the \d+ asyncio tasks", timeout=20)
    srv.wait_for_log(r"in waiting_for_the_database", timeout=20)
    waiting.close()
    s.close()
    srv.wait_for_log(r"Booting worker", timeout=20)
    # The listening socket is the master's: the new worker takes the connection once it
    # serves.
    assert fetch(srv, "/").status == 200


def test_threadsafe_hand_backs_always_wake_the_loop(start_server):
    # call_soon_threadsafe from many threads at once (asgiref's executors do this for every
    # sync_to_async call): bourbon's loop writes one wake-up byte for many calls
    # (python/bourbon/_asgi.py, _write_to_self), and none may be lost, whether the loop is
    # busy or asleep when a thread calls it.
    srv = start_server(APP)
    for _ in range(3):
        with srv.connect(timeout=60) as s:
            s.sendall(build("/threads"))
            report = json.loads(Reader(s).response().body)
        assert report == {"busy": True, "idle": True}, report
    assert fetch(srv, "/hello").status == 200
