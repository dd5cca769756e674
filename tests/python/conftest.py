"""Shared fixtures: start the installed ``bourbon`` command as a user would and talk to it
over real sockets.

Readiness comes from the "Listening at:" line bourbon prints, never from sleeping. Every server
is started in its own process group and stopped by that group, even when a test fails.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "apps"
EXAMPLE = ROOT / "examples" / "mysite"
CORPUS = ROOT / "tests" / "corpus" / "gunicorn-requests"
LISTEN_RE = re.compile(r"Listening at: (\S+) \(")


def manage_py(*args: str, env: dict[str, str] | None = None) -> None:
    """Run the example site's ``manage.py`` with ``args`` (by default in the environment of
    the tests without ``BOURBON_*``); it must succeed."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOURBON_")}
    proc = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def django_site() -> Path:
    """The example site as `make demo` prepares it: migrated, static files collected, and their
    pre-compressed variants written (all idempotent; the outputs are gitignored)."""
    manage_py("migrate", "--noinput")
    manage_py("collectstatic", "--noinput")
    proc = subprocess.run(
        [bourbon_exe(), "compress", "--quiet", str(EXAMPLE / "staticfiles")],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return EXAMPLE


def bourbon_exe() -> str:
    """The ``bourbon`` console script installed next to the running interpreter."""
    here = Path(sys.executable).parent / "bourbon"
    if here.exists():
        return str(here)
    found = shutil.which("bourbon")
    if not found:
        raise RuntimeError("bourbon is not installed in this environment (run make build)")
    return found


class Server:
    """A running ``bourbon`` process."""

    def __init__(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        ready_timeout: float,
        **popen: object,
    ):
        """Start ``argv`` (the program included) in its own session; extra keyword
        arguments (``preexec_fn``, ``pass_fds``) go to ``subprocess.Popen``."""
        self.args = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,  # type: ignore[arg-type]
        )
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self.addresses: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self._wait_ready(ready_timeout)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    m = LISTEN_RE.search(line)
                    if m and m.group(1) not in self.addresses:
                        self.addresses.append(m.group(1))
                if any("Using worker" in ln for ln in self._lines):
                    return
                if self.proc.poll() is not None:
                    raise RuntimeError(f"bourbon exited with {self.proc.returncode}:\n{self.log}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"bourbon did not become ready:\n{self.log}")
                # Bounded: the reader may see EOF before the exit is reapable, and then
                # nothing notifies again; poll() is retried rather than waiting it all out.
                self._cond.wait(min(left, 0.5))

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> str:
        """Wait until a log line matches ``pattern`` (a regex); return the line."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines:
                    if rx.search(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no log line matching {pattern!r}:\n{''.join(self._lines)}"
                    )
                self._cond.wait(min(left, 0.5))

    def wait_for_count(self, pattern: str, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` log lines match ``pattern`` (a regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for line in self._lines if rx.search(line)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"fewer than {count} log lines match {pattern!r}:\n{''.join(self._lines)}"
                    )
                self._cond.wait(min(left, 0.5))

    @property
    def url(self) -> str:
        return next(a for a in self.addresses if a.startswith("http://"))

    @property
    def host_port(self) -> tuple[str, int]:
        rest = self.url[len("http://") :]
        host, _, port = rest.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def connect(self, timeout: float = 10.0) -> socket.socket:
        host, port = self.host_port
        return socket.create_connection((host, port), timeout=timeout)

    def send_signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOURBON_")}
    env.pop("PORT", None)
    # One worker unless a test asks for more: the default (the CPUs available) would make
    # results depend on the machine.
    env["WEB_CONCURRENCY"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


@pytest.fixture
def start_server() -> Iterator:
    """``start_server(app, *args, cwd=APPS, env=None)`` starts bourbon on a free loopback port
    (unless ``-b`` is given) and returns a :class:`Server`; all are stopped at teardown."""
    servers: list[Server] = []

    def start(
        app: str | None,
        *args: str,
        cwd: Path = APPS,
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> Server:
        argv = list(args)
        if not any(a in ("-b", "--bind") or a.startswith("--bind=") for a in argv):
            argv += ["-b", "127.0.0.1:0"]
        if app is not None:
            argv.insert(0, app)
        srv = Server([bourbon_exe(), *argv], cwd, base_env(env), ready_timeout)
        servers.append(srv)
        return srv

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def launch() -> Iterator:
    """``launch(argv, cwd=APPS, env=None, **popen)``: start a full argv (the program included:
    ``python -m bourbon``, a shell that execs bourbon, ...) and wait for its readiness line;
    every process is stopped by its group at teardown."""
    procs: list[Server] = []

    def start(
        argv: list[str], cwd: Path = APPS, env: dict[str, str] | None = None, **popen: object
    ) -> Server:
        p = Server(list(argv), cwd, base_env(env), 30.0, **popen)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()


def run_bourbon(
    *args: str, cwd: Path = APPS, env: dict[str, str] | None = None, timeout: float = 60
):
    """Run bourbon to completion (for flags that exit); returns CompletedProcess."""
    return subprocess.run(
        [bourbon_exe(), *args],
        cwd=str(cwd),
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    try:
        return bool(sel.select(timeout))
    finally:
        sel.close()
