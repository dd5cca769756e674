"""Response buffering: a client that reads slower than the application produces never holds a
Python thread (issue 11, point 1).

A streamed body waits for its client in memory (``--response-buffer-size``), then in an
unlinked temporary file (``--temp-path``, up to ``--max-temp-file-size``), so the application
finishes iterating and its thread serves others. Past the cap, and for responses that must not
be buffered (server-sent events, ``X-Accel-Buffering: no``), the iteration parks without a
thread until the client reads.

Sleeps here are only ever part of *being* a slow client or a probe's pacing; readiness comes
from the fixture and from log lines.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from conftest import APPS, wait_readable
from procs import children, wait_until
from rawhttp import Reader

sys.path.insert(0, str(APPS))
from spool_app import expected  # noqa: E402  (the app module gives the expected bytes)

APP = "spool_app:app"
MiB = 1024 * 1024


def get(path: str, *extra: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\n" + "".join(e + "\r\n" for e in extra) + "\r\n"
    ).encode()


def slow_client(srv, path: str) -> socket.socket:
    """A connection with a small receive buffer that sends ``path`` and reads nothing."""
    host, port = srv.host_port
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.settimeout(30)
    s.connect((host, port))
    s.sendall(get(path))
    return s


class Prober(threading.Thread):
    """Sends ``GET /probe`` on a new connection every ``every`` seconds and records how long
    each answer took (a failure counts as an infinitely slow answer)."""

    def __init__(self, srv, every: float = 0.01):
        super().__init__(daemon=True)
        self.srv = srv
        self.every = every
        self.stop = threading.Event()
        self.times: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                with closing(self.srv.connect(timeout=5)) as s:
                    s.sendall(get("/probe", "Connection: close"))
                    resp = Reader(s).response()
                    ok = resp.status == 200 and resp.body == b"ok\n"
            except OSError:
                ok = False
            self.times.append(time.monotonic() - t0 if ok else float("inf"))
            self.stop.wait(self.every)

    def p99(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def probe_promptly(srv, n: int) -> None:
    """``n`` requests, one after the other, each answered within a second."""
    for i in range(n):
        with closing(srv.connect(timeout=5)) as s:
            t0 = time.monotonic()
            s.sendall(get(f"/probe?i={i}", "Connection: close"))
            assert Reader(s).response().status == 200
            assert time.monotonic() - t0 < 1.0, f"probe {i} took {time.monotonic() - t0:.2f} s"


def worker_of(srv) -> int:
    return wait_until(lambda: next(iter(children(srv.pid)), None), what="the worker")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_in(pid: int, directory: Path) -> list[str]:
    """The descriptors of ``pid`` that point into ``directory`` (deleted files included)."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(directory) + "/"):
            found.append(target)
    return found


def read_body(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    resp = Reader(sock).response()
    assert resp.status == 200, resp.status
    return resp.body


def test_slow_readers_never_hold_the_python_thread(start_server, tmp_path):
    """The issue's scenario: one worker, one thread, 50 clients that ask for an 8 MiB generator
    body and do not read. The application finishes all 50 while a probe keeps being answered;
    worker memory stays bounded; afterwards every client gets its body byte for byte, and no
    temporary file is left."""
    spool = tmp_path / "spool"
    spool.mkdir()
    srv = start_server(APP, "-w", "1", "--threads", "1", "--temp-path", str(spool))
    worker = worker_of(srv)
    size, chunk, n = 8 * MiB, 64 * 1024, 50
    with closing(srv.connect()) as s:  # warm the worker up before measuring its memory
        s.sendall(get("/probe", "Connection: close"))
        assert Reader(s).response().status == 200
    rss_before = rss_kib(worker)

    prober = Prober(srv)
    prober.start()
    clients: list[socket.socket] = []
    try:
        clients = [slow_client(srv, f"/gen?size={size}&chunk={chunk}&id={i}") for i in range(n)]
        # Every application call runs to its end although no client has read a thing.
        for i in range(n):
            srv.wait_for_log(rf"gen {i}-closed", timeout=60)
        assert open_in(worker, spool), "nothing waits in a temporary file: was it spooled?"
        assert not list(spool.iterdir()), "temporary files must have no name"
        grown = rss_kib(worker) - rss_before
        assert grown < 64 * 1024, f"worker grew by {grown} KiB holding {n} slow responses"
        # Each client now reads its whole body, byte for byte.
        want = hashlib.sha256(expected(size, chunk)).hexdigest()
        for i, c in enumerate(clients):
            body = read_body(c)
            assert len(body) == size, (i, len(body))
            assert hashlib.sha256(body).hexdigest() == want, f"client {i}: wrong bytes"
    finally:
        prober.stop.set()
        prober.join(10)
        for c in clients:
            c.close()
    assert len(prober.times) >= 50, prober.times
    assert prober.p99() < 0.1, f"probe p99 {prober.p99():.3f} s over {len(prober.times)} probes"
    wait_until(lambda: not open_in(worker, spool), timeout=10, what="temporary files closed")
    assert not list(spool.iterdir())


def test_small_chunks_mix_memory_and_file_in_order(start_server, tmp_path):
    """Many small chunks (copied, not lent) through memory and the file, in order."""
    srv = start_server(APP, "--threads", "1", "--temp-path", str(tmp_path))
    size, chunk = 3 * MiB + 123, 1000
    with closing(slow_client(srv, f"/gen?size={size}&chunk={chunk}&id=small")) as c:
        srv.wait_for_log(r"gen small-closed", timeout=30)
        body = read_body(c)
    assert body == expected(size, chunk)


def test_past_the_file_cap_the_iteration_parks_without_a_thread(start_server, tmp_path):
    """With a 1 MiB cap an 8 MiB body cannot finish before its client reads; the only Python
    thread is free meanwhile, and the body arrives whole once the client reads."""
    srv = start_server(
        APP,
        "--threads",
        "1",
        "--temp-path",
        str(tmp_path),
        "--max-temp-file-size",
        "1m",
        "--response-buffer-size",
        "64k",
    )
    worker = worker_of(srv)
    size, chunk = 8 * MiB, 64 * 1024
    with closing(slow_client(srv, f"/gen?size={size}&chunk={chunk}&id=capped")) as c:
        # The cap is reached once the file holds its megabyte.
        wait_until(lambda: open_in(worker, tmp_path), what="the temporary file")
        # Other requests are answered while the capped one waits for its client.
        probe_promptly(srv, 20)
        assert "gen capped-closed" not in srv.log, "the cap did not hold the application back"
        body = read_body(c)
    assert body == expected(size, chunk)
    srv.wait_for_log(r"gen capped-closed", timeout=10)


def test_event_streams_are_not_buffered_and_do_not_hold_a_thread(start_server, tmp_path):
    srv = start_server(APP, "--threads", "1", "--temp-path", str(tmp_path))
    worker = worker_of(srv)
    with closing(slow_client(srv, "/sse?events=100000&id=ev")) as c:
        assert wait_readable(c, 10), "the event stream did not start"
        probe_promptly(srv, 20)
        assert not open_in(worker, tmp_path), "an event stream was spooled"
        assert "sse ev-closed" not in srv.log
        c.settimeout(10)
        head = Reader(c).read_until(b"\r\n\r\n")
        assert b"text/event-stream" in head
    # The client went away: the parked iteration is resumed only to be closed.
    srv.wait_for_log(r"sse ev-closed", timeout=10)


def test_x_accel_buffering_no_is_honoured_and_not_forwarded(start_server, tmp_path):
    srv = start_server(APP, "--threads", "1", "--temp-path", str(tmp_path))
    worker = worker_of(srv)
    size, chunk = 8 * MiB, 64 * 1024
    with closing(slow_client(srv, f"/nobuf?size={size}&chunk={chunk}&id=nb")) as c:
        assert wait_readable(c, 10), "the response did not start"
        probe_promptly(srv, 1)
        assert not open_in(worker, tmp_path), "an X-Accel-Buffering: no response was spooled"
        assert "nobuf nb-closed" not in srv.log
        c.settimeout(30)
        resp = Reader(c).response()
    assert resp.status == 200
    assert resp.header("X-Accel-Buffering") is None
    assert resp.body == expected(size, chunk)
    srv.wait_for_log(r"nobuf nb-closed", timeout=10)


def test_legacy_write_is_buffered_too(start_server, tmp_path):
    srv = start_server(APP, "--threads", "2", "--temp-path", str(tmp_path))
    size, chunk = 4 * MiB, 32 * 1024
    with closing(slow_client(srv, f"/write?size={size}&chunk={chunk}&id=w")) as c:
        srv.wait_for_log(r"write-done w", timeout=30)
        body = read_body(c)
    assert body == expected(size, chunk)


def test_a_client_gone_mid_spool_leaves_nothing(start_server, tmp_path):
    srv = start_server(APP, "--threads", "1", "--temp-path", str(tmp_path))
    worker = worker_of(srv)
    c = slow_client(srv, f"/gen?size={16 * MiB}&chunk=65536&id=gone")
    try:
        srv.wait_for_log(r"gen gone-closed", timeout=30)
        assert open_in(worker, tmp_path)
    finally:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # a reset: the server's next write fails
    wait_until(lambda: not open_in(worker, tmp_path), timeout=10, what="the spool file closed")
    with closing(srv.connect(timeout=5)) as s:
        s.sendall(get("/probe", "Connection: close"))
        assert Reader(s).response().status == 200
