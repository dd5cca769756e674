"""Worker supervision by the master: the request timeout with its stack dump, recycling
(max-requests, lifetime, memory), the default number of workers, the graceful timeout, and
the master that every run has. Real processes, real signals, bounded waits."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import run_bourbon
from procs import children, wait_children
from rawhttp import Reader

APP = "supervision_app:app"
TIMEOUT = 15.0


def get_pid(srv, path: str = "/") -> int:
    with urllib.request.urlopen(srv.url + path, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        return int(resp.read())


def stuck_request(srv, path: str) -> bytes:
    """Send a request that never finishes; return what came back before the connection
    closed (nothing, when the worker was killed)."""
    sep = "&" if "?" in path else "?"
    with srv.connect(timeout=TIMEOUT) as s:
        s.sendall(f"GET {path}{sep}from=test HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data


@pytest.mark.parametrize(
    ("path", "function", "threads"),
    [
        ("/spin", "spin_forever", "1"),  # pure Python, called on the connection thread
        ("/sleep", "sleep_forever", "1"),  # in C with the GIL released
        ("/spin", "spin_forever", "3"),  # on a pool thread; the event loop stays alive
    ],
)
def test_timeout_dumps_stacks_kills_and_replaces_the_worker(start_server, path, function, threads):
    srv = start_server(APP, "-w", "1", "--threads", threads, "--timeout", "2")
    (victim,) = wait_children(srv.pid, lambda k: len(k) == 1)
    assert get_pid(srv) == victim
    started = time.monotonic()
    answer = stuck_request(srv, path)
    elapsed = time.monotonic() - started
    assert not answer.startswith(b"HTTP/1.1 200"), answer
    assert 1.9 < elapsed < 10, elapsed
    line = srv.wait_for_log(rf"WORKER TIMEOUT \(pid:{victim}\)")
    assert "[CRITICAL]" in line
    assert f'"GET {path}?from=test HTTP/1.1" running for' in line
    # faulthandler's dump of every thread, naming the function the app is stuck in.
    srv.wait_for_log(rf'File ".*supervision_app\.py", line \d+ in {function}')
    assert "most recent call first" in srv.log
    new = get_pid(srv)
    assert new != victim
    assert new in children(srv.pid)
    wait_children(srv.pid, lambda k: victim not in k)
    # Our own kill is not reported as an unexpected death.
    assert f"Worker (pid:{victim}) was killed by signal" not in srv.log


def test_timeout_zero_disables_the_check(start_server):
    srv = start_server(APP, "-w", "1", "--timeout", "0")
    assert get_pid(srv, "/slow?t=1.5") in children(srv.pid)
    assert "WORKER TIMEOUT" not in srv.log


def test_max_requests_recycles_workers_without_failures(start_server):
    srv = start_server(APP, "-w", "2", "--max-requests", "5", "--max-requests-jitter", "0")
    first = wait_children(srv.pid, lambda k: len(k) == 2)
    seen = set()
    # Each request takes 50 ms in the app, so the 30 span the master's checks.
    for _ in range(30):
        seen.add(get_pid(srv, "/slow?t=0.05"))
    assert len(seen) > 2, seen
    assert seen - first
    srv.wait_for_log(r"Autorestarting worker after current request\. \(pid:\d+: \d+ requests")
    wait_children(srv.pid, lambda k: len(k) == 2)


@pytest.mark.parametrize("threads", ["1", "4"])
def test_max_requests_under_concurrent_load_loses_nothing(start_server, threads):
    srv = start_server(APP, "-w", "2", "--threads", threads, "--max-requests", "5")
    wait_children(srv.pid, lambda k: len(k) == 2)
    failures: list[str] = []
    pids: set[int] = set()
    lock = threading.Lock()
    enough = threading.Event()

    def client() -> None:
        for _ in range(300):
            if enough.is_set():
                return
            try:
                pid = get_pid(srv, "/slow?t=0.02")
                with lock:
                    pids.add(pid)
            except OSError as e:  # URLError is an OSError
                with lock:
                    failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    # Load continues until the workers were recycled several times (bounded).
    deadline = time.monotonic() + TIMEOUT
    while srv.log.count("Autorestarting worker") < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    enough.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not failures, failures[:3]
    assert srv.log.count("Autorestarting worker after current request.") >= 4
    assert len(pids) >= 4, pids


def test_max_worker_lifetime_replaces_the_worker(start_server):
    srv = start_server(APP, "-w", "1", "--max-worker-lifetime", "2")
    (first,) = wait_children(srv.pid, lambda k: len(k) == 1)
    deadline = time.monotonic() + TIMEOUT
    answered = []
    # Requests keep succeeding while the worker is swapped.
    while time.monotonic() < deadline:
        answered.append(get_pid(srv, "/slow?t=0.05"))
        if answered[-1] != first:
            break
    assert answered[0] == first
    assert answered[-1] != first, "the worker was never replaced"
    assert "max-worker-lifetime 2 s" in srv.log


def test_max_worker_memory_replaces_a_grown_worker(start_server):
    srv = start_server(APP, "-w", "1", "--max-worker-memory", "100")
    (first,) = wait_children(srv.pid, lambda k: len(k) == 1)
    assert get_pid(srv) == first
    assert get_pid(srv, "/grow?mib=120") == first
    srv.wait_for_log(rf"Autorestarting worker .*\(pid:{first}: \d+ MiB resident")
    new = wait_children(srv.pid, lambda k: len(k) == 1 and first not in k)
    assert get_pid(srv) in new


def test_web_concurrency_sets_the_number_of_workers(start_server):
    srv = start_server(APP, env={"WEB_CONCURRENCY": "3"})
    kids = wait_children(srv.pid, lambda k: len(k) == 3)
    assert get_pid(srv) in kids


def _cpus_available() -> int:
    """What bourbon should find: the affinity mask capped by the cgroup v2 quota."""
    cpus = len(os.sched_getaffinity(0))
    own = ""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            own = line[3:].strip("/")
    here = Path("/sys/fs/cgroup") / own
    for d in [here, *here.parents]:
        if not str(d).startswith("/sys/fs/cgroup"):
            break
        try:
            quota, period = (d / "cpu.max").read_text().split()
        except (FileNotFoundError, ValueError):
            continue
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cpus)


def test_workers_default_to_the_cpus_available():
    proc = run_bourbon("--print-config", env={"WEB_CONCURRENCY": ""})
    assert proc.returncode == 0, proc.stderr
    assert f"\nworkers = {_cpus_available()}\n" in proc.stdout
    proc = run_bourbon("--print-config", env={"WEB_CONCURRENCY": "5"})
    assert "\nworkers = 5\n" in proc.stdout


def test_graceful_timeout_bounds_a_stop_with_a_slow_request(start_server):
    srv = start_server(APP, "-w", "1", "--graceful-timeout", "1")
    (worker,) = wait_children(srv.pid, lambda k: len(k) == 1)
    with srv.connect() as s:
        s.sendall(b"GET /slow?t=20&say=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        srv.wait_for_log(r"slow request started")
        started = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        assert srv.proc.wait(10) == 0
        elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert f"Worker (pid:{worker}) did not stop in time; killing it" in srv.log
    assert "Shutting down: Master" in srv.log


def test_one_worker_still_has_a_master(start_server, tmp_path):
    pidfile = tmp_path / "bourbon.pid"
    srv = start_server(APP, "-w", "1", "--pid", str(pidfile))
    (worker,) = wait_children(srv.pid, lambda k: len(k) == 1)
    assert worker != srv.pid
    assert get_pid(srv) == worker
    assert pidfile.read_text().strip() == str(srv.pid)
    assert f"Listening at: {srv.url} ({srv.pid})" in srv.log
    srv.wait_for_log(rf"\[{worker}\] \[INFO\] Booting worker with pid: {worker}")
    # A dead single worker is replaced like any other.
    os.kill(worker, signal.SIGKILL)
    new = wait_children(srv.pid, lambda k: len(k) == 1 and worker not in k)
    assert get_pid(srv) in new


def test_stuck_request_in_a_retiring_worker_is_still_timed_out(start_server):
    # Recycling asks the worker to finish its requests; one that never finishes is still
    # subject to --timeout (shorter than --graceful-timeout here).
    srv = start_server(APP, "-w", "1", "--threads", "2", "--max-requests", "1", "-t", "2")
    (first,) = wait_children(srv.pid, lambda k: len(k) == 1)
    with srv.connect() as s:
        s.sendall(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
        assert get_pid(srv) in children(srv.pid)
        srv.wait_for_log(rf"Autorestarting worker after current request\. \(pid:{first}:")
        srv.wait_for_log(rf'WORKER TIMEOUT \(pid:{first}\): request "GET /sleep HTTP/1.1"')
        s.settimeout(TIMEOUT)
        try:
            assert not s.recv(100).startswith(b"HTTP/1.1 200")
        except ConnectionResetError:
            pass


@pytest.mark.parametrize("code", [3, 4])
def test_exit_3_or_4_after_boot_is_a_crash_and_the_worker_is_replaced(start_server, code):
    # gunicorn's boot codes mean "stop the server" only while a worker boots: from an app
    # that already serves (os._exit(4), a C extension's exit(3)) they are a crash.
    srv = start_server(APP, "-w", "1")
    (victim,) = wait_children(srv.pid, lambda k: len(k) == 1)
    assert get_pid(srv) == victim
    assert stuck_request(srv, f"/exit?code={code}") == b""
    line = srv.wait_for_log(rf"Worker \(pid:{victim}\) exited with code {code} after it booted")
    assert "[ERROR]" in line
    new = wait_children(srv.pid, lambda k: len(k) == 1 and victim not in k)
    assert get_pid(srv) in new
    assert srv.proc.poll() is None
    assert "failed to boot" not in srv.log
    assert srv.stop() == 0


def test_exit_3_while_booting_stops_the_master_with_3():
    proc = run_bourbon("exit_on_import:app", "-w", "2", "-b", "127.0.0.1:0", timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "failed to boot (exit code 3); stopping" in proc.stderr


def test_an_inline_call_shorter_than_the_timeout_is_never_killed(start_server):
    # With --threads 1 the application runs on the event loop's thread, whose heartbeat
    # cannot be stamped during the call. Two requests pipelined on one connection run back
    # to back there (1.0 s, then 1.7 s); since the loop last beat before the first, it is
    # silent for more than 2.7 s, but each call is shorter than --timeout 2 and neither may
    # be killed for it. The loop was alive when each call started and ended.
    srv = start_server(APP, "-w", "1", "--threads", "1", "--timeout", "2")
    (worker,) = wait_children(srv.pid, lambda k: len(k) == 1)
    with srv.connect(timeout=TIMEOUT) as s:
        s.sendall(
            b"GET /slow?t=1.0 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /slow?t=1.7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        reader = Reader(s)
        for _ in range(2):
            resp = reader.response()
            assert resp.status == 200
            assert int(resp.body) == worker
    assert "WORKER TIMEOUT" not in srv.log
    assert get_pid(srv) == worker
    # A call well past the timeout is still killed, by its own age.
    started = time.monotonic()
    assert not stuck_request(srv, "/slow?t=30").startswith(b"HTTP/1.1 200")
    elapsed = time.monotonic() - started
    line = srv.wait_for_log(rf"WORKER TIMEOUT \(pid:{worker}\)")
    assert '"GET /slow?t=30&from=test HTTP/1.1" running for 2.' in line, line
    assert 2.0 <= elapsed < 10, elapsed
