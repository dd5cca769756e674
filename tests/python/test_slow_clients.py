"""Slow and idle clients: header timeout (slowloris), keep-alive idle timeout, write timeout for
clients that stop reading, and a crowd of slow clients that must not delay a normal request.

Sleeps here are only ever part of *being* a slow client; readiness comes from the fixture.
"""

from __future__ import annotations

import resource
import socket
import threading
import time
from contextlib import closing

from conftest import wait_readable
from rawhttp import Reader

APP = "http_app:app"


def get(path: str, *extra: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\n" + "".join(e + "\r\n" for e in extra) + "\r\n"
    ).encode()


def wait_closed(sock: socket.socket, bound: float) -> tuple[bool, float, bytes]:
    """Read until the peer closes or ``bound`` seconds pass. Returns (closed, elapsed, data)."""
    start = time.monotonic()
    data = b""
    while True:
        left = bound - (time.monotonic() - start)
        if left <= 0:
            return False, time.monotonic() - start, data
        if not wait_readable(sock, left):
            continue
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True, time.monotonic() - start, data
        if not chunk:
            return True, time.monotonic() - start, data
        data += chunk


def is_open(sock: socket.socket) -> bool:
    """True if the peer has not closed ``sock`` (checked without blocking)."""
    old = sock.gettimeout()
    sock.settimeout(0)  # with a timeout set, recv() would wait for data first
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(old)
    return bool(data)


# ---------------------------------------------------------------------------------------------
# (a) header timeout


def test_header_timeout_closes_partial_head(start_server):
    srv = start_server(APP, "--header-timeout", "1")
    with closing(srv.connect(timeout=5)) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Partial: ")
        closed, elapsed, data = wait_closed(s, 5.0)
    assert closed, "a partial request head was held for more than 5 s with --header-timeout 1"
    assert 0.5 <= elapsed < 5.0, elapsed
    assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:200]
    assert "app-call" not in srv.log


def test_header_timeout_closes_silent_connection(start_server):
    srv = start_server(APP, "--header-timeout", "1")
    with closing(srv.connect(timeout=5)) as s:
        closed, elapsed, data = wait_closed(s, 5.0)
    assert closed, "a connection that never sent a byte was held more than 5 s"
    assert elapsed < 5.0


def test_header_timeout_is_for_the_whole_head_not_per_byte(start_server):
    """A slowloris that keeps sending a byte every 0.2 s must still be cut off."""
    srv = start_server(APP, "--header-timeout", "1")
    with closing(srv.connect(timeout=5)) as s:
        s.sendall(b"GET /loris HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 5.0:
            try:
                s.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if wait_readable(s, 0.2):
                try:
                    if s.recv(65536) == b"":
                        closed = True
                        break
                except ConnectionResetError:
                    closed = True
                    break
        elapsed = time.monotonic() - start
    assert closed, "a trickling request head was held for more than 5 s"
    assert elapsed < 5.0


def test_header_timeout_applies_to_later_heads_on_keepalive(start_server):
    srv = start_server(APP, "--header-timeout", "1", "--keep-alive", "30")
    with closing(srv.connect(timeout=5)) as s:
        s.sendall(get("/first"))
        assert Reader(s).response().status == 200
        s.sendall(b"GET /second HTTP/1.1\r\nHost: a\r\n")
        closed, elapsed, data = wait_closed(s, 5.0)
    assert closed, "a partial second head on a keep-alive connection was held over 5 s"
    assert elapsed < 5.0
    assert b"/second" not in data


def test_timeouts_do_not_cut_a_slow_application(start_server):
    """Neither the header nor the keep-alive deadline runs while the app works."""
    srv = start_server(APP, "--header-timeout", "1", "--keep-alive", "1")
    with closing(srv.connect(timeout=10)) as s:
        s.sendall(get("/_/sleep?s=2.5"))
        resp = Reader(s).response()
    assert resp.status == 200
    assert resp.body == b"slept\n"


# ---------------------------------------------------------------------------------------------
# (b) keep-alive idle timeout


def test_idle_keepalive_connection_closed_after_keepalive_seconds(start_server):
    srv = start_server(APP, "--keep-alive", "2")
    with closing(srv.connect(timeout=10)) as s:
        s.sendall(get("/idle"))
        r = Reader(s)
        assert r.response().status == 200
        assert not r.at_eof(1.0), "closed well before --keep-alive 2"
        s.sendall(get("/still-open"))
        assert r.response().status == 200, "connection unusable within the keep-alive window"
        closed, elapsed, data = wait_closed(s, 5.0)
    assert closed, "idle keep-alive connection not closed within 5 s (--keep-alive 2)"
    assert data == b""
    assert 1.5 <= elapsed < 4.0, elapsed


def test_keepalive_zero_closes_after_each_response(start_server):
    srv = start_server(APP, "--keep-alive", "0")
    with closing(srv.connect(timeout=5)) as s:
        s.sendall(get("/once") + get("/twice"))
        r = Reader(s)
        resp = r.response()
        assert resp.status == 200
        assert (resp.header("connection") or "").lower() == "close"
        assert r.at_eof(5.0)


# ---------------------------------------------------------------------------------------------
# (c) a client that stops reading a large response

STREAM_TOTAL = 64 * 1024 * 1024


def test_client_that_stops_reading_is_cut_off_by_write_timeout(start_server):
    srv = start_server(APP, "--write-timeout", "2", "--threads", "2", "--keep-alive", "5")
    host, port = srv.host_port
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        stuck.settimeout(10)
        stuck.connect((host, port))
        stuck.sendall(get(f"/_/stream?chunk=65536&total={STREAM_TOTAL}&id=stuck"))
        head = Reader(stuck).read_until(b"\r\n\r\n")  # read the head, then stop reading
        assert head.startswith(b"HTTP/1.1 200")
        started = time.monotonic()

        # other clients are served promptly while the stuck one is held
        for i in range(5):
            t0 = time.monotonic()
            with closing(srv.connect(timeout=5)) as s:
                s.sendall(get(f"/other/{i}", "Connection: close"))
                assert Reader(s).response().status == 200
            assert time.monotonic() - t0 < 1.0, f"request {i} waited behind the stuck client"

        # the application is not held by the stuck client: its body waits in the spool and
        # its iterable is closed at once
        srv.wait_for_log(r"stream-closed stuck", timeout=20)
        # the client stays stuck past the write timeout (2 s): the server gives up on it
        time.sleep(4)
        closed, _, data = wait_closed(stuck, 10.0)
        assert closed, "the stuck connection is still open after the write timeout"
        assert len(data) < STREAM_TOTAL, "the whole response was sent: nothing was stuck"
        assert time.monotonic() - started < 20.0
    finally:
        stuck.close()
    # and the Python threads are free again
    with closing(srv.connect(timeout=5)) as s:
        s.sendall(get("/after", "Connection: close"))
        assert Reader(s).response().status == 200


def test_stuck_reader_releases_the_only_python_thread(start_server):
    """With one Python thread, a stuck reader may hold it only until the write timeout."""
    srv = start_server(APP, "--write-timeout", "2", "--threads", "1")
    host, port = srv.host_port
    stuck = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        stuck.settimeout(10)
        stuck.connect((host, port))
        stuck.sendall(get(f"/_/stream?chunk=65536&total={STREAM_TOTAL}&id=solo"))
        t0 = time.monotonic()
        with closing(srv.connect(timeout=15)) as s:
            s.sendall(get("/behind", "Connection: close"))
            assert Reader(s).response().status == 200
        assert time.monotonic() - t0 < 10.0
        srv.wait_for_log(r"stream-closed solo", timeout=10)
    finally:
        stuck.close()


# ---------------------------------------------------------------------------------------------
# (d) a crowd of slow clients


class Trickler(threading.Thread):
    """Sends one byte every ``interval`` seconds to each socket, without ever blocking."""

    def __init__(self, socks: list[socket.socket], byte: bytes, interval: float = 0.5):
        super().__init__(daemon=True)
        self.socks = socks
        self.byte = byte
        self.interval = interval
        self.stop = threading.Event()
        self.errors = 0
        self.rounds = 0

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            for s in self.socks:
                try:
                    s.send(self.byte, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    pass
                except OSError:
                    self.errors += 1
            self.rounds += 1


def test_slow_clients_do_not_delay_a_normal_request(start_server):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    assert hard >= 3000, f"RLIMIT_NOFILE hard limit {hard} too low for 1400 client sockets"
    # the server inherits our raised limit
    srv = start_server(APP, "--header-timeout", "10", "--keep-alive", "30", "--threads", "1")
    host, port = srv.host_port
    deadline = time.monotonic() + 30.0
    all_socks: list[socket.socket] = []
    tricklers: list[Trickler] = []

    def connect() -> socket.socket:
        assert time.monotonic() < deadline, "setup took too long"
        s = socket.create_connection((host, port), timeout=10)
        all_socks.append(s)
        return s

    try:
        # 1000 idle keep-alive connections, one completed request each
        idle = [connect() for _ in range(1000)]
        for i, s in enumerate(idle):
            s.sendall(get(f"/idle/{i}"))
        for s in idle:
            assert Reader(s).response().status == 200
            assert time.monotonic() < deadline

        # 100 slow readers: ask for 1 MiB (64 KiB chunks) and never read
        readers = [connect() for _ in range(100)]
        for i, s in enumerate(readers):
            s.sendall(get(f"/_/stream?chunk=65536&total={1024 * 1024}&id=reader{i}"))

        # 100 slow bodies: complete head, Content-Length 100000, a trickle of body bytes
        bodies = [connect() for _ in range(100)]
        for s in bodies:
            s.sendall(
                b"POST /slowbody HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"b" * 10
            )

        # 200 slowloris: a partial head, then a byte every 0.5 s
        loris = [connect() for _ in range(200)]
        for s in loris:
            s.sendall(b"GET /loris HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        held_since = time.monotonic()

        tricklers = [Trickler(loris, b"a"), Trickler(bodies, b"b")]
        for t in tricklers:
            t.start()

        # let every kind of slow client be in place (part of being slow, not readiness)
        time.sleep(1.0)

        # a normal request must be answered within 1 s, three times over
        times = []
        for i in range(3):
            t0 = time.monotonic()
            with closing(socket.create_connection((host, port), timeout=5)) as s:
                s.sendall(get(f"/normal/{i}", "Connection: close"))
                resp = Reader(s).response()
            times.append(time.monotonic() - t0)
            assert resp.status == 200
            assert b'"/normal/%d"' % i in resp.body
        assert max(times) < 1.0, f"normal request latencies under load: {times}"

        # the load was real: the slow connections are still held by the server
        assert time.monotonic() - held_since < 9.0, "too slow to check before the header timeout"
        assert all(t.rounds >= 1 for t in tricklers)
        closed_idle = sum(not is_open(s) for s in idle)
        closed_loris = sum(not is_open(s) for s in loris)
        closed_bodies = sum(not is_open(s) for s in bodies)
        assert (closed_idle, closed_loris, closed_bodies) == (0, 0, 0), (
            f"connections dropped early: idle={closed_idle} loris={closed_loris} "
            f"bodies={closed_bodies}"
        )
        assert "accept failed" not in srv.log
        assert "app-call POST /slowbody" not in srv.log, "a slow body reached the app early"
    finally:
        for t in tricklers:
            t.stop.set()
        for t in tricklers:
            t.join(5)
        for s in all_socks:
            s.close()
