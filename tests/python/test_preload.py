"""``--preload``: the master imports the application once, before forking, and freezes the
collector's objects so the workers share that memory; without it each worker imports.

The probe app (``tests/apps/preload_probe.py``) appends the importing pid to a file at import
time and answers with its own pid, the import pid and ``gc.get_freeze_count()``.
"""

from __future__ import annotations

import json
import signal
import threading
import urllib.request
from pathlib import Path

from conftest import APPS, run_bourbon
from procs import wait_children

TIMEOUT = 15.0
PROBE = "preload_probe:app"


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def answers_from_every_worker(srv, workers: int) -> dict[int, dict]:
    """Answers keyed by worker pid, one per worker: concurrent slow requests, so that a
    worker busy with one leaves the next connection to another (bounded rounds)."""
    seen: dict[int, dict] = {}
    lock = threading.Lock()

    def one() -> None:
        data = get_json(srv.url + "/?sleep=0.3")
        with lock:
            seen[data["pid"]] = data

    for _ in range(10):
        threads = [threading.Thread(target=one) for _ in range(2 * workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        if len(seen) >= workers:
            return seen
    raise AssertionError(f"only workers {sorted(seen)} answered")


def import_log(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def test_preload_imports_once_in_the_master_and_freezes(start_server, tmp_path):
    log = tmp_path / "imports"
    srv = start_server(PROBE, "--preload", "-w", "2", env={"PRELOAD_PROBE_LOG": str(log)})
    kids = wait_children(srv.pid, lambda k: len(k) == 2)
    answers = answers_from_every_worker(srv, 2)
    assert set(answers) == kids
    for data in answers.values():
        assert data["import_pid"] == srv.pid, data
        assert data["ppid"] == srv.pid, data
        assert data["freeze_count"] > 0, data
        # The collection pause during the import was lifted again.
        assert data["gc_enabled"] is True, data
        assert data["gc_threshold"][0] > 0, data
        assert data["multiprocess"] is True, data
    # One import, by the master; none by the workers.
    assert import_log(log) == [srv.pid]


def test_without_preload_each_worker_imports(start_server, tmp_path):
    log = tmp_path / "imports"
    srv = start_server(PROBE, "-w", "2", env={"PRELOAD_PROBE_LOG": str(log)})
    kids = wait_children(srv.pid, lambda k: len(k) == 2)
    answers = answers_from_every_worker(srv, 2)
    assert set(answers) == kids
    for pid, data in answers.items():
        assert data["import_pid"] == pid, data
        assert data["freeze_count"] == 0, data
    assert sorted(import_log(log)) == sorted(kids)


def test_preload_keeps_the_applications_own_gc_choice(start_server):
    # The app disables collection at import; the pause around the import must not undo it.
    srv = start_server(PROBE, "--preload-app", env={"PRELOAD_PROBE_GC_DISABLE": "1"})
    data = get_json(srv.url + "/")
    assert data["import_pid"] == srv.pid
    assert data["gc_enabled"] is False
    assert data["freeze_count"] > 0


def test_preload_import_error_exits_4_before_any_worker():
    r = run_bourbon("preload_broken:app", "--preload", "-w", "2", "-b", "127.0.0.1:0", timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 4, out
    assert "Booting worker" not in out, out
    assert "RuntimeError: preload_broken refuses to import" in out  # the traceback
    assert "error: cannot load application preload_broken:app:" in out  # the summary line
    # The same module without --preload fails in a worker, after it booted.
    r = run_bourbon("preload_broken:app", "-w", "1", "-b", "127.0.0.1:0", timeout=30)
    assert r.returncode == 4
    assert "Booting worker" in r.stdout + r.stderr


VERSIONED = """
import os

IMPORT_PID = os.getpid()


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%s %%d" %% IMPORT_PID]
"""


def test_hup_with_preload_does_not_reload_the_code(start_server, tmp_path):
    (tmp_path / "versioned.py").write_text(VERSIONED % "v1")
    srv = start_server("versioned:app", "--preload", "--chdir", str(tmp_path), cwd=APPS)
    first = wait_children(srv.pid, lambda k: len(k) == 1)

    def body() -> str:
        with urllib.request.urlopen(srv.url + "/", timeout=TIMEOUT) as resp:
            return resp.read().decode()

    assert body() == f"v1 {srv.pid}"
    (tmp_path / "versioned.py").write_text(VERSIONED % "v2")
    srv.send_signal(signal.SIGHUP)
    srv.wait_for_log("its code is not reloaded")
    wait_children(srv.pid, lambda k: len(k) == 1 and not (k & first))
    # A new worker, the old code: it was forked from the master, which holds the module.
    assert body() == f"v1 {srv.pid}"
