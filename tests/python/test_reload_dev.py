"""``--reload`` (development): the master watches the project's Python files and reloads the
workers when one changes, as on SIGHUP.

Every test copies a tiny app into ``tmp_path`` and serves it with ``--chdir tmp_path``, then
edits files there and polls (bounded) for the effect.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import run_bourbon

DEADLINE = 10.0

APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%s"]
"""


def write_app(directory: Path, version: str) -> None:
    (directory / "app.py").write_text(APP % version)


def get(url: str, timeout: float = 5.0) -> str | None:
    """The body, or None while no worker answers (one may be booting)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_body(srv, expected: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = get(srv.url + "/")
        if last == expected:
            return
        time.sleep(0.05)
    raise AssertionError(f"GET never returned {expected!r} (last: {last!r}):\n{srv.log}")


def reload_lines(srv) -> list[str]:
    return re.findall(r"Worker reloading: (\S+) modified", srv.log)


def boots(srv) -> int:
    return srv.log.count("Booting worker")


def wait_boots(srv, n: int) -> None:
    end = time.monotonic() + DEADLINE
    while boots(srv) < n:
        if time.monotonic() > end:
            raise AssertionError(f"fewer than {n} workers booted:\n{srv.log}")
        time.sleep(0.05)


def start(start_server, directory: Path, *args: str):
    return start_server("app:app", "--reload", "-w", "1", "--chdir", str(directory), *args)


def test_a_changed_file_is_served_and_ignored_directories_are_not_watched(start_server, tmp_path):
    write_app(tmp_path, "v1")
    for d in ("__pycache__", ".venv/lib", "node_modules/pkg"):
        (tmp_path / d).mkdir(parents=True)
    srv = start(start_server, tmp_path)
    assert get(srv.url + "/") == "v1"

    write_app(tmp_path, "v2")
    wait_body(srv, "v2")
    srv.wait_for_log(r"Worker reloading: \S*app\.py modified")
    wait_boots(srv, 2)

    # Changes the reloader must not see: ignored directories, a file that is not Python.
    (tmp_path / "__pycache__" / "cached.py").write_text("x = 1\n")
    (tmp_path / ".venv" / "lib" / "site.py").write_text("x = 1\n")
    (tmp_path / "node_modules" / "pkg" / "build.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    # Well past the 0.2 s debounce: had any of them counted, its reload would show here.
    with pytest.raises(AssertionError):
        srv.wait_for_log(r"Worker reloading: .*(cached|site|build|notes)", timeout=1.0)

    # A sentinel change to a watched file proves the watcher is still listening.
    (tmp_path / "sentinel.py").write_text("x = 1\n")
    srv.wait_for_log(r"Worker reloading: \S*sentinel\.py modified")
    wait_boots(srv, 3)
    assert [Path(p).name for p in reload_lines(srv)] == ["app.py", "sentinel.py"]
    assert boots(srv) == 3
    assert get(srv.url + "/") == "v2"


def test_new_directories_and_extra_files_are_watched(start_server, tmp_path):
    write_app(tmp_path, "v1")
    (tmp_path / "templates").mkdir()
    page = tmp_path / "templates" / "page.html"
    page.write_text("<p>one</p>")
    srv = start(
        start_server,
        tmp_path,
        "--reload-extra-file",
        "templates/page.html",
        "--log-level",
        "debug",
    )
    assert get(srv.url + "/") == "v1"

    page.write_text("<p>two</p>")
    srv.wait_for_log(r"Worker reloading: \S*templates/page\.html modified")
    wait_boots(srv, 2)

    # A package created after the start is watched as soon as it appears.
    (tmp_path / "pkg").mkdir()
    srv.wait_for_log(r"reload: watching new directory \S*pkg")
    (tmp_path / "pkg" / "views.py").write_text("x = 1\n")
    srv.wait_for_log(r"Worker reloading: \S*pkg/views\.py modified")
    wait_boots(srv, 3)


def test_a_broken_edit_waits_for_the_fix(start_server, tmp_path):
    write_app(tmp_path, "v1")
    srv = start(start_server, tmp_path)
    assert get(srv.url + "/") == "v1"

    (tmp_path / "app.py").write_text("def app(:\n")
    srv.wait_for_log(r"waiting for a file change to try again")
    assert srv.proc.poll() is None  # without --reload this would stop the server (exit 4)

    write_app(tmp_path, "v3")
    wait_body(srv, "v3")


def test_reload_with_preload_is_refused(tmp_path):
    write_app(tmp_path, "v1")
    r = run_bourbon("app:app", "--reload", "--preload", "--chdir", str(tmp_path), timeout=30)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "--reload cannot be combined with --preload" in lines[0]
    assert "Booting worker" not in r.stdout + r.stderr


def test_a_large_tree_is_watched_up_to_the_limit(start_server, tmp_path):
    write_app(tmp_path, "v1")
    # 101 × 100 directories (plus the root): beyond the 10000 watched at most.
    for i in range(101):
        for j in range(100):
            (tmp_path / f"d{i:03}" / f"e{j:03}").mkdir(parents=True)
    srv = start(start_server, tmp_path)
    line = srv.wait_for_log(r"reload: watching \d+ directories")
    assert int(re.search(r"watching (\d+) directories", line).group(1)) <= 10000
    # Either bourbon's cap or the system's inotify limit stopped the walk, and said so.
    srv.wait_for_log(r"only the first 10000 directories are watched|max_user_watches")
    # The top of the tree is watched first, so the project's own files still are.
    assert get(srv.url + "/") == "v1"
    write_app(tmp_path, "v2")
    wait_body(srv, "v2")
