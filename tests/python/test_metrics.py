"""Metrics (issue 14, point 5): the master's ``GET /metrics`` in the Prometheus text format,
summed over the workers from shared memory, surviving recycling, HUP and crashes; and
gunicorn's StatsD lines over UDP. Real processes, real sockets, bounded waits.

Every scrape is parsed by the strict parser below (the text exposition format 0.0.4):
``# HELP`` and ``# TYPE`` once per family and before its samples, metric and label names
by the grammar, label values with only the three escapes, numeric values, histogram
buckets cumulative and ending with ``+Inf`` equal to ``_count``.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import run_bourbon
from procs import wait_children
from websockets.sync.client import connect

TIMEOUT = 15.0
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Parse an exposition strictly; return the samples and each family's type."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    samples: Samples = {}
    types: dict[str, str] = {}
    helps: set[str] = set()
    seen_samples: set[str] = set()
    for line in text.split("\n")[:-1]:
        assert line, "no empty lines"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[1] in ("HELP", "TYPE"), line
            name = parts[2]
            assert NAME.match(name), line
            assert name not in seen_samples, f"{line}: after the family's samples"
            if parts[1] == "HELP":
                assert name not in helps, f"HELP twice: {line}"
                helps.add(name)
                assert "\n" not in parts[3]
            else:
                assert name not in types, f"TYPE twice: {line}"
                assert parts[3] in TYPES, line
                types[name] = parts[3]
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)\Z", line)
        assert m, f"not a sample line: {line!r}"
        name, labels_text, value = m.groups()
        labels: list[tuple[str, str]] = []
        if labels_text:
            inner = labels_text[1:-1]
            pos = 0
            while pos < len(inner):
                lm = LABEL.match(inner, pos)
                assert lm, f"bad label at {inner[pos:]!r} in {line!r}"
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
                if pos < len(inner):
                    assert inner[pos] == ",", line
                    pos += 1
        family = re.sub(r"_(bucket|sum|count)\Z", "", name)
        family = family if family in types else name
        assert family in types, f"sample without TYPE: {line}"
        seen_samples.add(family)
        v = float(value)
        assert not math.isnan(v), line
        key = (name, tuple(labels))
        assert key not in samples, f"sample twice: {line}"
        samples[key] = v
    for family, kind in types.items():
        if kind == "counter":
            assert family.endswith("_total"), family
        if kind != "histogram":
            continue
        series: dict[tuple, list[tuple[float, float]]] = {}
        for (name, labels), v in samples.items():
            if name == family + "_bucket":
                rest = tuple(kv for kv in labels if kv[0] != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((float(le), v))
        for rest, buckets in series.items():
            bounds = [b for b, _ in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == math.inf, (family, bounds)
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), (family, rest, counts)
            assert samples[(family + "_count", rest)] == counts[-1]
    return samples, types


def scrape(sock_path: Path) -> tuple[Samples, dict[str, str]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(str(sock_path))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
    assert re.search(rb"Content-Length: (\d+)", head).group(1) == str(len(body)).encode()
    return parse(body.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter never incremented is not listed)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of ``name`` whose labels include ``labels``."""
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all(dict(ls).get(k) == w for k, w in labels.items())
    )


def normalized(samples: Samples) -> Samples:
    return {(n, tuple(sorted(ls))): v for (n, ls), v in samples.items()}


def wait_scrape(sock_path: Path, predicate, what: str) -> Samples:
    """Scrape until ``predicate(samples)`` holds (a response reaches the client an instant
    before the worker counts it); bounded."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        samples = normalized(scrape(sock_path)[0])
        if predicate(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {sorted(kv for kv in samples.items() if kv[1])}")
        time.sleep(0.02)


def assert_monotonic(before: Samples, after: Samples, types: dict[str, str]) -> None:
    for (name, labels), v in before.items():
        family = re.sub(r"_(bucket|sum|count)\Z", "", name)
        if types.get(family, types.get(name)) in ("counter", "histogram"):
            assert after.get((name, labels), 0.0) >= v, (name, labels, v, after.get((name, labels)))


def exchange(srv, raw: bytes) -> bytes:
    """Send one request on a fresh connection; return everything the server sent."""
    with srv.connect(timeout=TIMEOUT) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


def test_requests_are_summed_exactly_over_two_workers(start_server, tmp_path):
    sock = tmp_path / "metrics.sock"
    srv = start_server(
        "supervision_app:app",
        "-w",
        "2",
        "--threads",
        "1",
        "--metrics-bind",
        f"unix:{sock}",
    )
    srv.wait_for_log(r"Serving metrics at: http://unix:")
    wait_children(srv.pid, lambda k: len(k) == 2)
    sent = received = 0
    pids: set[int] = set()
    counts = {"GET": 0, "POST": 0, "HEAD": 0}

    def one(method: str, target: str, body: bytes = b"") -> bytes:
        nonlocal sent, received
        raw = (
            f"{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        resp = exchange(srv, raw)
        assert resp.startswith(b"HTTP/1.1 200"), resp
        sent += len(raw)
        received += len(resp)
        counts[method] += 1
        return resp

    # One worker is kept busy by a slow request (its only thread is taken, so it accepts
    # nothing), and the others go to the second worker: both have counted.
    slow_raw = b"GET /slow?t=2&say=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with srv.connect(timeout=TIMEOUT) as slow:
        slow.sendall(slow_raw)
        srv.wait_for_log("slow request started")
        for i in range(30):
            method = ("GET", "POST", "HEAD")[i % 3]
            resp = one(method, f"/?n={i}", b"x" * (i % 7) if method == "POST" else b"")
            if method != "HEAD":
                pids.add(int(body_of(resp)))
        slow_resp = b""
        while chunk := slow.recv(65536):
            slow_resp += chunk
    assert slow_resp.startswith(b"HTTP/1.1 200"), slow_resp
    sent += len(slow_raw)
    received += len(slow_resp)
    counts["GET"] += 1
    pids.add(int(body_of(slow_resp)))
    assert len(pids) == 2, "both workers answered"
    n = sum(counts.values())
    s = wait_scrape(
        sock,
        lambda s: (
            total(s, "bourbon_requests_total") >= n and value(s, "bourbon_connections_open") == 0
        ),
        f"{n} requests counted",
    )
    for method, c in counts.items():
        assert (
            value(s, "bourbon_requests_total", interface="wsgi", method=method, status="2xx") == c
        )
    assert total(s, "bourbon_requests_total") == n
    assert value(s, "bourbon_request_duration_seconds_count", interface="wsgi") == n
    assert value(s, "bourbon_request_queue_seconds_count", interface="wsgi") == n
    assert value(s, "bourbon_received_bytes_total") == sent
    assert value(s, "bourbon_sent_bytes_total") == received
    assert value(s, "bourbon_connections_total") == n
    assert value(s, "bourbon_requests_in_flight") == 0
    assert value(s, "bourbon_python_threads", state="idle") == 2
    assert value(s, "bourbon_python_threads", state="busy") == 0
    assert value(s, "bourbon_workers") == 2
    assert total(s, "bourbon_worker_restarts_total") == 0
    assert value(s, "bourbon_static_files_total") == 0
    assert total(s, "bourbon_rejected_requests_total") == 0
    # A head the parser refuses: counted apart, by status class.
    bad = b"GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n"
    assert exchange(srv, bad).startswith(b"HTTP/1.1 400")
    s = wait_scrape(
        sock,
        lambda s: value(s, "bourbon_rejected_requests_total", status="4xx") == 1,
        "one rejected",
    )
    assert total(s, "bourbon_requests_total") == n
    # Nothing more is counted later: the sums were exact, not still growing.
    s = wait_scrape(sock, lambda _: True, "again")
    assert total(s, "bourbon_requests_total") == n
    assert total(s, "bourbon_rejected_requests_total") == 1


def test_a_request_in_progress_is_in_flight_and_busy(start_server, tmp_path):
    sock = tmp_path / "metrics.sock"
    srv = start_server(
        "supervision_app:app", "-w", "1", "--threads", "2", "--metrics-bind", f"unix:{sock}"
    )
    with srv.connect(timeout=TIMEOUT) as c:
        c.sendall(b"GET /slow?t=5&say=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        srv.wait_for_log("slow request started")
        s = wait_scrape(
            sock, lambda s: value(s, "bourbon_requests_in_flight") == 1, "one in flight"
        )
        assert value(s, "bourbon_python_threads", state="busy") == 1
        assert value(s, "bourbon_python_threads", state="idle") == 1
        assert value(s, "bourbon_connections_open") == 1


def test_counts_survive_recycling_hup_and_crashes_with_restarts_by_reason(start_server, tmp_path):
    sock = tmp_path / "metrics.sock"
    srv = start_server(
        "supervision_app:app",
        "-w",
        "1",
        "--max-requests",
        "4",
        "--metrics-bind",
        f"unix:{sock}",
    )
    history: list[Samples] = []
    types = scrape(sock)[1]

    def check(pred, what: str) -> Samples:
        s = wait_scrape(sock, pred, what)
        if history:
            assert_monotonic(history[-1], s, types)
        history.append(s)
        return s

    served = 0
    # Enough requests for at least two recycles (each worker serves 4, or a few more that it
    # had accepted before it was told to stop); bounded.
    for _ in range(200):
        with urllib.request.urlopen(srv.url + "/", timeout=TIMEOUT) as r:
            assert r.status == 200
        served += 1
        s = normalized(scrape(sock)[0])
        if value(s, "bourbon_worker_restarts_total", reason="max-requests") >= 2:
            break
    s = check(
        lambda s: total(s, "bourbon_requests_total") >= served,
        f"{served} requests over recycled workers",
    )
    assert total(s, "bourbon_requests_total") == served
    assert value(s, "bourbon_worker_restarts_total", reason="max-requests") >= 2
    assert value(s, "bourbon_worker_restarts_total", reason="crash") == 0

    # HUP: a new worker, the old one retired; nothing counted is lost.
    (old,) = wait_children(srv.pid, lambda k: len(k) == 1)
    os.kill(srv.pid, signal.SIGHUP)  # to the master, as an operator or systemd does
    wait_children(srv.pid, lambda k: len(k) == 1 and old not in k)
    s = check(
        lambda s: value(s, "bourbon_worker_restarts_total", reason="reload") == 1,
        "one reload restart",
    )
    assert total(s, "bourbon_requests_total") == served

    # kill -9 the worker: a crash; its counts stay.
    with urllib.request.urlopen(srv.url + "/", timeout=TIMEOUT) as r:
        victim = int(r.read())
    served += 1
    s = check(lambda s: total(s, "bourbon_requests_total") == served, "counted before kill")
    os.kill(victim, signal.SIGKILL)
    wait_children(srv.pid, lambda k: len(k) == 1 and victim not in k)
    s = check(
        lambda s: value(s, "bourbon_worker_restarts_total", reason="crash") == 1,
        "one crash",
    )
    assert total(s, "bourbon_requests_total") == served
    assert value(s, "bourbon_request_duration_seconds_count", interface="wsgi") == served
    assert value(s, "bourbon_worker_restarts_total", reason="timeout") == 0


def test_asgi_static_and_websocket_are_labelled(start_server, tmp_path):
    root = tmp_path / "static"
    root.mkdir()
    (root / "a.txt").write_bytes(b"static file body\n")
    sock = tmp_path / "metrics.sock"
    srv = start_server(
        "asgi_ws:app",
        "--static",
        f"/static/={root}",
        "--metrics-bind",
        f"unix:{sock}",
    )
    assert body_of(exchange(srv, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")) == (
        b"plain http"
    )
    resp = exchange(srv, b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert resp.startswith(b"HTTP/1.1 200") and body_of(resp) == b"static file body\n"
    host, port = srv.host_port
    with connect(f"ws://{host}:{port}/", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        s = wait_scrape(sock, lambda s: value(s, "bourbon_websockets_open") == 1, "ws open")
        assert value(s, "bourbon_websockets_total") == 1
    s = wait_scrape(
        sock,
        lambda s: (
            value(s, "bourbon_websockets_open") == 0 and total(s, "bourbon_requests_total") >= 3
        ),
        "ws closed",
    )
    assert value(s, "bourbon_websockets_total") == 1
    assert value(s, "bourbon_requests_total", interface="asgi", method="GET", status="2xx") == 1
    assert value(s, "bourbon_requests_total", interface="static", method="GET", status="2xx") == 1
    # The handshake's 101.
    assert value(s, "bourbon_requests_total", interface="asgi", method="GET", status="1xx") == 1
    assert total(s, "bourbon_requests_total", interface="wsgi") == 0
    assert value(s, "bourbon_static_files_total") == 1
    assert value(s, "bourbon_request_queue_seconds_count", interface="asgi") == 1
    assert value(s, "bourbon_request_duration_seconds_count", interface="static") == 1


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 section 5.2), payload under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def test_bytes_are_counted_exactly_for_chunked_static_and_websocket(start_server, tmp_path):
    # Every byte each way is counted: a chunked ASGI response (its size lines too), a file
    # sent with sendfile, and a WebSocket session (the 101, then frames both ways).
    root = tmp_path / "static"
    root.mkdir()
    (root / "a.txt").write_bytes(b"static file body\n" * 100)
    sock = tmp_path / "metrics.sock"
    srv = start_server(
        "asgi_ws:app", "-w", "1", "--static", f"/static/={root}", "--metrics-bind", f"unix:{sock}"
    )
    sent = received = 0
    for raw, body in (
        # Two parts and no length from the application: chunked.
        (
            b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            b"5\r\nplain\r\n5\r\n http\r\n0\r\n\r\n",
        ),
        (
            b"GET /static/a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            b"static file body\n" * 100,
        ),
    ):
        resp = exchange(srv, raw)
        assert resp.startswith(b"HTTP/1.1 200") and body_of(resp).startswith(body), resp
        sent += len(raw)
        received += len(resp)
    handshake = (
        b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with srv.connect(timeout=TIMEOUT) as ws:
        ws.sendall(handshake)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = ws.recv(65536)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 101"), data
        hello = _ws_frame(0x1, b"hello")
        ws.sendall(hello)
        while len(data.partition(b"\r\n\r\n")[2]) < 7:
            chunk = ws.recv(65536)
            assert chunk, data
            data += chunk
        assert data.partition(b"\r\n\r\n")[2] == b"\x81\x05hello", data
        close = _ws_frame(0x8, (1000).to_bytes(2, "big"))
        ws.sendall(close)
        while chunk := ws.recv(65536):
            data += chunk
        assert data.partition(b"\r\n\r\n")[2][7:9] == b"\x88\x02", data
    sent += len(handshake) + len(hello) + len(close)
    received += len(data)
    s = wait_scrape(
        sock,
        lambda s: (
            value(s, "bourbon_connections_open") == 0
            and value(s, "bourbon_websockets_open") == 0
            and value(s, "bourbon_sent_bytes_total") >= received
        ),
        "every connection closed",
    )
    assert value(s, "bourbon_received_bytes_total") == sent
    assert value(s, "bourbon_sent_bytes_total") == received


def test_metrics_over_tcp_and_other_paths(start_server):
    srv = start_server("hello_app:app", "--metrics-bind", "127.0.0.1:0")
    line = srv.wait_for_log(r"Serving metrics at: http://127\.0\.0\.1:\d+/metrics")
    port = int(re.search(r"127\.0\.0\.1:(\d+)/metrics", line).group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as r:
        assert r.status == 200
        parse(r.read().decode())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=TIMEOUT)
    e.value.close()
    assert e.value.code == 404
    # A client that connects and says nothing does not stop the master serving others.
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as r:
            assert r.status == 200


def test_statsd_lines_reach_a_udp_socket(start_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(TIMEOUT)
        port = udp.getsockname()[1]
        srv = start_server(
            "supervision_app:app",
            "--statsd-host",
            f"127.0.0.1:{port}",
            "--statsd-prefix",
            "site",
            "--dogstatsd-tags",
            "env:test,app:x",
        )
        for _ in range(4):
            with urllib.request.urlopen(srv.url + "/", timeout=TIMEOUT) as r:
                assert r.status == 200
        lines: list[str] = []

        def enough() -> bool:
            return (
                sum(ln == "site.gunicorn.requests:1|c|#env:test,app:x" for ln in lines) >= 4
                and any(ln.startswith("site.gunicorn.workers:1|g") for ln in lines)
                and sum(ln.startswith("site.gunicorn.request.status.200:1|c") for ln in lines) >= 4
            )

        deadline = time.monotonic() + TIMEOUT
        while not enough() and time.monotonic() < deadline:
            lines += udp.recv(65536).decode().split("\n")
        assert enough(), lines
        durations = [ln for ln in lines if ln.startswith("site.gunicorn.request.duration:")]
        assert len(durations) >= 4
        duration = re.compile(r"site\.gunicorn\.request\.duration:\d+\.\d{3}\|ms\|#env:test,app:x")
        for ln in durations:
            assert duration.fullmatch(ln), ln


@pytest.mark.parametrize(
    ("args", "setting"),
    [
        (["--metrics-bind", "fd://3"], "metrics_bind"),
        (["--metrics-bind", "127.0.0.1:99999"], "metrics_bind"),
        (["--dogstatsd-tags", "a|b"], "dogstatsd_tags"),
    ],
)
def test_bad_values_exit_2_naming_the_setting(args, setting):
    proc = run_bourbon("hello_app:app", *args, "--check-config")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert setting.replace("_", "-") in lines[0] or setting in lines[0], lines


def test_a_binary_upgrade_hands_the_endpoint_to_the_new_master(start_server, tmp_path):
    pidfile = tmp_path / "bourbon.pid"
    sock = tmp_path / "metrics.sock"
    srv = start_server(
        "supervision_app:app", "--pid", str(pidfile), "--metrics-bind", f"unix:{sock}"
    )
    old = srv.pid
    new = None
    try:
        os.kill(old, signal.SIGUSR2)
        line = srv.wait_for_log(r"usr2; started a new master \(pid:\d+\)")
        new = int(line.split("(pid:")[1].split(")")[0])
        # The new master serves the same endpoint (it could not bind the path again).
        srv.wait_for_log(rf"\[{new}\] \[INFO\] Serving metrics at: http://unix:{sock}/metrics")
        srv.wait_for_log(rf"\[{new}\] \[INFO\] Arbiter booted")
        os.kill(old, signal.SIGTERM)
        assert srv.proc.wait(TIMEOUT) == 0
        assert sock.exists(), "the old master left the socket file to the new one"
        s = wait_scrape(sock, lambda s: value(s, "bourbon_workers") == 1, "new master's")
        assert total(s, "bourbon_worker_restarts_total") == 0
    finally:
        try:
            os.killpg(old, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if new is not None:
            try:
                os.kill(new, signal.SIGKILL)
            except ProcessLookupError:
                pass
