"""Health checks answered by the server itself (issue 14, point 6): ``--health-path`` (readiness)
and ``--liveness-path``, for WSGI and ASGI, over real sockets.

What each test shows:
- the probes' answers (status, body, ``Cache-Control: no-store``, HEAD, 405), and that the
  application never sees them: its own call counter does not move, they are not in the access
  log (unless ``--health-access-log``) and do not count towards ``--max-requests``;
- a probe is answered while a thread holds the GIL in one long C call, so no Python code can
  run anywhere in the worker: it is answered without entering Python;
- readiness says 503 ``draining`` during a TERM drain, with ``Connection: close``;
- readiness says 503 ``stuck`` once every application thread has been busy past half of
  ``--timeout`` (the master's judgement, published to the workers through shared memory).

Sleeps here are only the application's; readiness comes from log lines.
"""

from __future__ import annotations

import signal
import socket
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from conftest import run_bourbon
from rawhttp import Reader, Response

WSGI = "health_app:app"
ASGI = "health_app:asgi"
PROBES = ("--health-path", "/readyz", "--liveness-path", "/livez")


def ask(sock: socket.socket, path: str, method: str = "GET", extra: str = "") -> Response:
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode())
    return Reader(sock).response(method)


def probe(srv, path: str, method: str = "GET", timeout: float = 5.0) -> Response:
    """One request on a new connection; it must be answered within ``timeout`` seconds."""
    with closing(srv.connect(timeout=timeout)) as s:
        s.settimeout(timeout)
        return ask(s, path, method, "Connection: close\r\n")


def calls(srv) -> int:
    body = probe(srv, "/calls").body.decode()
    assert body.startswith("calls="), body
    return int(body.strip().split("=")[1])


class Background(threading.Thread):
    """A request whose answer the test does not wait for."""

    def __init__(self, srv, path: str):
        super().__init__(daemon=True)
        self.sock = srv.connect(timeout=60)
        self.path = path

    def run(self) -> None:
        try:
            ask(self.sock, self.path)
        except Exception:  # noqa: BLE001 - the server is stopped under it
            pass
        finally:
            self.sock.close()


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_probes_answer_without_the_application(start_server, app):
    srv = start_server(app, *PROBES, "--access-logfile", "-")
    ok = probe(srv, "/readyz")
    assert (ok.status, ok.body) == (200, b"ok\n")
    assert ok.header("Cache-Control") == "no-store"
    assert ok.header("Content-Type") == "text/plain; charset=utf-8"
    live = probe(srv, "/livez?verbose=1")  # the query is not part of the path
    assert (live.status, live.body) == (200, b"ok\n")
    head = probe(srv, "/readyz", method="HEAD")
    assert (head.status, head.header("Content-Length"), head.body) == (200, "3", b"")
    post = probe(srv, "/readyz", method="POST")
    assert post.status == 405 and post.header("Allow") == "GET, HEAD"
    # Keep-alive: probes and application requests share a connection.
    with closing(srv.connect()) as s:
        for _ in range(3):
            assert ask(s, "/readyz").status == 200
        assert ask(s, "/other").body == b"app /other\n"
    # Only the application's own requests reached it: /other and this /calls.
    assert calls(srv) == 2
    srv.wait_for_log(r'"GET /calls HTTP/1.1" 200')
    assert "/readyz" not in srv.log and "/livez" not in srv.log


def test_probes_in_the_access_log_on_request(start_server):
    srv = start_server(WSGI, *PROBES, "--access-logfile", "-", "--health-access-log")
    assert probe(srv, "/livez").status == 200
    srv.wait_for_log(r'"GET /livez HTTP/1.1" 200 3 ')


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_probe_answers_while_python_cannot_run(start_server, app):
    srv = start_server(app, *PROBES, "--threads", "2", "--loop", "asyncio")
    keep = Background(srv, "/gil")
    keep.start()
    srv.wait_for_log(r"health_app: holding the GIL", timeout=15)
    # No Python code can run in the worker now; the probes are answered all the same.
    for path in ("/readyz", "/livez"):
        started = time.monotonic()
        assert probe(srv, path, timeout=3).status == 200
        assert time.monotonic() - started < 3
    srv.stop(signal.SIGKILL)
    keep.join(10)


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_health_503_during_a_term_drain(start_server, app):
    srv = start_server(
        app, *PROBES, "--threads", "2", "--graceful-timeout", "20", "--log-level", "debug"
    )
    with closing(srv.connect(timeout=20)) as keep:
        keep.settimeout(20)
        assert ask(keep, "/readyz").status == 200
        slow = Background(srv, "/sleep?seconds=8")
        slow.start()
        srv.wait_for_log(r"health_app: sleeping", timeout=10)
        # The start of the next probe is on its way when the stop comes (a client cannot
        # know), so the worker keeps the connection for it.
        keep.sendall(b"GET /readyz HTTP/1.1\r\n")
        srv.proc.send_signal(signal.SIGTERM)  # the master only
        srv.wait_for_log(r"stopped listening; draining", timeout=10)
        keep.sendall(b"Host: localhost\r\n\r\n")
        resp = Reader(keep).response()
        assert (resp.status, resp.body) == (503, b"draining\n")
        assert resp.header("Connection") == "close"
        assert resp.header("Cache-Control") == "no-store"
        assert Reader(keep).at_eof(5)
    assert srv.stop(timeout=20) == 0


def test_a_worker_recycled_alone_answers_ready_and_closes(start_server):
    """A worker stopping on its own (here ``--max-requests``) while the server goes on is not
    "draining": the server can take work through the worker's replacement. The probe says
    200, with ``Connection: close`` so that the next one reaches a worker that stays."""
    srv = start_server(WSGI, *PROBES, "--max-requests", "1", "--log-level", "debug")
    with closing(srv.connect(timeout=20)) as keep:
        keep.settimeout(20)
        assert ask(keep, "/readyz").status == 200
        keep.sendall(b"GET /readyz HTTP/1.1\r\n")
        assert probe(srv, "/one").status == 200
        srv.wait_for_log(r"Autorestarting worker", timeout=10)
        srv.wait_for_log(r"stopped listening; draining", timeout=10)
        keep.sendall(b"Host: localhost\r\n\r\n")
        resp = Reader(keep).response()
        assert (resp.status, resp.body) == (200, b"ok\n")
        assert resp.header("Connection") == "close"
    assert probe(srv, "/readyz").status == 200


def test_health_503_when_every_thread_is_stuck(start_server):
    srv = start_server(WSGI, *PROBES, "--threads", "2", "--timeout", "8", "--keep-alive", "30")
    with closing(srv.connect(timeout=20)) as keep:
        keep.settimeout(20)
        assert ask(keep, "/readyz").status == 200
        first = Background(srv, "/sleep?seconds=30")
        first.start()
        srv.wait_for_log(r"health_app: sleeping", timeout=10)
        # One thread busy: still ready.
        assert ask(keep, "/readyz").status == 200
        second = Background(srv, "/sleep?seconds=30")
        second.start()
        srv.wait_for_count(r"health_app: sleeping", 2, timeout=10)
        srv.wait_for_log(r"every worker has been busy for more than 4 s", timeout=10)
        stuck = ask(keep, "/readyz")
        assert (stuck.status, stuck.body) == (503, b"stuck\n")
        # Liveness stays 200: the master replaces the worker itself (at --timeout).
        assert ask(keep, "/livez").status == 200
    # The master kills the stuck worker at --timeout; its replacement can take work.
    srv.wait_for_log(r"WORKER TIMEOUT", timeout=15)
    srv.wait_for_log(r"readiness probes answer 200", timeout=30)
    assert probe(srv, "/readyz", timeout=10).status == 200


def test_probes_do_not_count_towards_max_requests(start_server):
    srv = start_server(WSGI, *PROBES, "--max-requests", "2")
    for _ in range(5):
        assert probe(srv, "/readyz").status == 200
    assert probe(srv, "/one").status == 200
    assert probe(srv, "/two").status == 200
    line = srv.wait_for_log(r"Autorestarting worker", timeout=10)
    assert "2 requests served" in line, line


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--health-path", "healthz"], "--health-path"),
        (["--liveness-path", "/a b"], "--liveness-path"),
        (["--health-path", "/"], "--health-path"),
        (["--health-path", "/h", "--liveness-path", "/h"], "--liveness-path"),
    ],
)
def test_bad_probe_paths_exit_2(args, needle):
    res = run_bourbon(WSGI, *args)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr


def test_probes_on_every_listener_before_static_files_in_the_combined_mode(start_server):
    """WSGI and ASGI side by side (``--asgi``), a static mount that holds a file at the probe's
    path, a TCP and a unix listener: the probe is the server's on both listeners."""
    with tempfile.TemporaryDirectory(prefix="bb-health-", dir="/tmp") as d:
        root = Path(d)
        (root / "files").mkdir()
        (root / "files" / "ready").write_text("a static file\n")
        (root / "files" / "other").write_text("static other\n")
        sock = root / "s.sock"
        srv = start_server(
            "combined_app:wsgi",
            "--asgi",
            "combined_app:asgi",
            "--asgi-path",
            "/a",
            "--static",
            f"/health/={root / 'files'}",
            "--health-path",
            "/health/ready",
            "--liveness-path",
            "/a/live",
            "-b",
            "127.0.0.1:0",
            "-b",
            f"unix:{sock}",
        )
        with closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as u:
            u.settimeout(10)
            u.connect(str(sock))
            for path in ("/health/ready", "/a/live"):
                resp = ask(u, path)
                assert (resp.status, resp.body) == (200, b"ok\n"), path
            # Everything else still reaches the static files and both applications.
            assert ask(u, "/health/ready?x").body == b"ok\n"
            assert ask(u, "/health/other").body == b"static other\n"
            assert ask(u, "/a/other").body.startswith(b"asgi ")
            assert ask(u, "/w").body.startswith(b"wsgi ")
        for path in ("/health/ready", "/a/live"):
            assert probe(srv, path).body == b"ok\n", path
        srv.stop()
