"""Several worker processes under a master (`-w N`): forking, replacing, scaling, stopping."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

from conftest import run_bourbon
from procs import children, wait_children

TIMEOUT = 15.0


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def test_workers_share_the_socket_and_say_multiprocess(start_server):
    srv = start_server("workers_app:app", "-w", "2")
    kids = wait_children(srv.pid, lambda k: len(k) == 2)
    seen = set()
    for _ in range(40):
        data = get_json(srv.url + "/")
        assert data["multiprocess"] is True
        assert data["multithread"] is False
        seen.add(data["pid"])
    assert seen <= kids and srv.pid not in seen


def test_a_killed_worker_is_logged_and_replaced(start_server):
    srv = start_server("workers_app:app", "-w", "2")
    kids = wait_children(srv.pid, lambda k: len(k) == 2)
    victim = min(kids)
    os.kill(victim, signal.SIGKILL)
    srv.wait_for_log(rf"Worker \(pid:{victim}\) was killed by signal 9")
    new = wait_children(srv.pid, lambda k: len(k) == 2 and victim not in k)
    assert len(new - kids) == 1
    assert get_json(srv.url + "/")["pid"] in new


def test_ttin_adds_and_ttou_removes_a_worker(start_server):
    srv = start_server("workers_app:app", "-w", "2")
    wait_children(srv.pid, lambda k: len(k) == 2)
    os.kill(srv.pid, signal.SIGTTIN)
    wait_children(srv.pid, lambda k: len(k) == 3)
    os.kill(srv.pid, signal.SIGTTOU)
    wait_children(srv.pid, lambda k: len(k) == 2)
    assert get_json(srv.url + "/")["multiprocess"] is True


def test_term_stops_master_and_workers(start_server):
    srv = start_server("workers_app:app", "-w", "3")
    kids = wait_children(srv.pid, lambda k: len(k) == 3)
    assert srv.stop(signal.SIGTERM) == 0
    assert "Shutting down: Master" in srv.log
    for pid in kids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_int_is_a_fast_stop(start_server):
    srv = start_server("workers_app:app", "-w", "2")
    wait_children(srv.pid, lambda k: len(k) == 2)
    assert srv.stop(signal.SIGINT) == 0


def test_app_that_cannot_load_stops_the_master_with_4():
    started = time.monotonic()
    proc = run_bourbon("cli_broken:app", "-w", "2", "-b", "127.0.0.1:0", timeout=60)
    assert proc.returncode == 4, proc.stderr
    assert "failed to boot (exit code 4)" in proc.stderr
    # No crash loop: each worker boots once.
    assert proc.stderr.count("Cannot load application") <= 2
    assert time.monotonic() - started < 30


def test_hup_replaces_every_worker_without_failing_requests(start_server, tmp_path):
    # The settings are re-read on HUP: a config file changes the number of workers.
    conf = tmp_path / "bourbon.toml"
    conf.write_text("workers = 2\n")
    srv = start_server("workers_app:app", "-c", str(conf))
    old = wait_children(srv.pid, lambda k: len(k) == 2)

    failures: list[str] = []
    answered = 0
    stop_at = time.monotonic() + 20
    conf.write_text("workers = 3\n")
    os.kill(srv.pid, signal.SIGHUP)
    # Requests keep flowing while the workers are swapped; none may fail.
    while time.monotonic() < stop_at:
        try:
            get_json(srv.url + "/")
            answered += 1
        except OSError as e:  # URLError is an OSError
            failures.append(repr(e))
        kids = children(srv.pid)
        if len(kids) == 3 and not (kids & old) and answered >= 50:
            break
    assert not failures, failures[:3]
    new = wait_children(srv.pid, lambda k: len(k) == 3 and not (k & old))
    assert get_json(srv.url + "/")["pid"] in new
    srv.wait_for_log("Handling signal: hup; reloading")


def listen_backlog(port: int) -> int | None:
    """Connections waiting in the accept queue of the loopback listener on ``port`` (for a
    listening socket, /proc/net/tcp's rx_queue is that queue's length)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            return int(fields[4].split(":")[1], 16)
    return None


def test_a_full_worker_stops_accepting(start_server):
    """With every Python thread busy, the worker leaves new connections in the listeners'
    queue (where a sibling could take them) instead of accepting them and making them wait
    behind the busy threads; it takes them once a thread is free."""
    srv = start_server("slow_app:app", "-w", "1", "--threads", "2")
    host, port = srv.host_port
    slow = [srv.connect() for _ in range(2)]
    try:
        for s in slow:
            s.sendall(b"GET /?seconds=2 HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + TIMEOUT
        while srv.log.count("slow_app: sleeping 2.0 s") < 2:
            assert time.monotonic() < deadline, srv.log
            time.sleep(0.01)
        with srv.connect() as third:
            third.sendall(b"GET /?seconds=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            # The third connection stays queued in the kernel while both threads are busy.
            deadline = time.monotonic() + 1.0
            while listen_backlog(port) != 1:
                assert time.monotonic() < deadline, f"backlog {listen_backlog(port)}"
                time.sleep(0.01)
            assert "sleeping 0.0 s" not in srv.log
            # Once a slow request ends, it is accepted and answered.
            third.settimeout(TIMEOUT)
            data = b""
            while chunk := third.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 200"), data
            assert listen_backlog(port) == 0
    finally:
        for s in slow:
            s.close()


def test_a_worker_stopped_while_it_boots_exits_cleanly(start_server):
    """TERM reaching a worker that is still importing the application is kept and acted
    upon once it can serve: the worker stops gracefully and exits 0 instead of dying by the
    signal (which the master would report as a crash)."""
    srv = start_server("slow_boot_app:app", "-w", "1")
    srv.wait_for_log("slow_boot_app: importing")
    os.kill(srv.pid, signal.SIGTERM)
    assert srv.proc.wait(TIMEOUT) == 0, srv.log
    assert "killed by signal" not in srv.log, srv.log
    assert "finishing requests in flight" in srv.log, srv.log


def test_one_thread_worker_starts_its_python_thread_only_when_needed(start_server):
    # With --threads 1 requests run inline, and the worker stays a single-threaded process
    # (glibc and SQLite then skip atomic instructions); a body that must be streamed to the
    # application needs the Python thread, which starts then.
    srv = start_server("http_app:app", "--threads", "1", "--post-buffering", "1024")
    (worker,) = wait_children(srv.pid, lambda k: len(k) == 1)

    def threads() -> int:
        return len(os.listdir(f"/proc/{worker}/task"))

    for _ in range(5):
        with urllib.request.urlopen(srv.url + "/get", timeout=TIMEOUT) as resp:
            assert resp.status == 200
    assert threads() == 1
    body = b"x" * (64 * 1024)
    req = urllib.request.Request(srv.url + "/post", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        assert json.loads(resp.read())["body_len"] == len(body)
    assert threads() == 2
