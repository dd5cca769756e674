"""Inherited sockets (`fd://N`, systemd socket activation) and the `--pid` file."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import APPS, base_env, bourbon_exe

TIMEOUT = 15.0


def listening_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def launch(argv: list[str], pass_fds: tuple[int, ...], env: dict[str, str] | None = None):
    """Start a command in its own process group; return (proc, log lines so far) once it
    prints "Using worker" (bounded), or raise with its output."""
    proc = subprocess.Popen(
        argv,
        cwd=str(APPS),
        env=base_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=pass_fds,
        start_new_session=True,
    )
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while b"Using worker" not in out:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise AssertionError(f"not ready: {out.decode(errors='replace')}")
            if sel.select(left):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"exited: {out.decode(errors='replace')}")
                out += chunk
    finally:
        sel.close()
    return proc, out.decode(errors="replace")


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def hello(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=TIMEOUT) as resp:
        return resp.read()


def test_bind_fd_serves_on_an_inherited_socket():
    sock = listening_socket()
    port = sock.getsockname()[1]
    fd = sock.fileno()
    proc, log = launch([bourbon_exe(), "hello_app:app", "-b", f"fd://{fd}"], (fd,))
    try:
        assert f"http://127.0.0.1:{port}" in log
        assert hello(port) == b"Hello, world!"
    finally:
        stop(proc)
        sock.close()


def test_systemd_socket_activation(tmp_path: Path):
    sock = listening_socket()
    port = sock.getsockname()[1]
    fd = sock.fileno()
    # LISTEN_PID must be the server's own pid: bash sets it to $$ and execs bourbon,
    # which keeps the pid; the socket is moved to fd 3 as systemd does. -b is ignored.
    script = (
        f"exec 3<&{fd}; LISTEN_FDS=1 LISTEN_PID=$$ "
        f"exec {bourbon_exe()} cli_app:application -b 127.0.0.1:1"
    )
    proc, log = launch(["/bin/bash", "-c", script], (fd,))
    try:
        assert f"Listening at: http://127.0.0.1:{port}" in log
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/?env=LISTEN_FDS,LISTEN_PID", timeout=TIMEOUT
        ) as resp:
            data = json.loads(resp.read())
        # The variables are consumed: the application does not see them.
        assert data["os_environ"] == {"LISTEN_FDS": None, "LISTEN_PID": None}
    finally:
        stop(proc)
        sock.close()


def test_pid_file_written_and_removed(tmp_path: Path, start_server):
    pidfile = tmp_path / "bourbon.pid"
    srv = start_server("hello_app:app", "--pid", str(pidfile))
    assert pidfile.read_text().strip() == str(srv.pid)
    assert srv.stop() == 0
    assert not pidfile.exists()


def test_pid_file_holds_the_master_with_workers(tmp_path: Path, start_server):
    pidfile = tmp_path / "bourbon.pid"
    srv = start_server("hello_app:app", "-w", "2", "--pid", str(pidfile))
    assert pidfile.read_text().strip() == str(srv.pid)
    assert srv.stop() == 0
    assert not pidfile.exists()
