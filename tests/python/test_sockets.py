"""Inherited sockets (`fd://N`, systemd socket activation) and the `--pid` file."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

from conftest import bourbon_exe

TIMEOUT = 15.0


def listening_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def hello(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=TIMEOUT) as resp:
        return resp.read()


def test_bind_fd_serves_on_an_inherited_socket(launch):
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        fd = sock.fileno()
        srv = launch([bourbon_exe(), "hello_app:app", "-b", f"fd://{fd}"], pass_fds=(fd,))
        assert f"http://127.0.0.1:{port}" in srv.addresses
        assert hello(port) == b"Hello, world!"


def test_systemd_socket_activation(launch):
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        fd = sock.fileno()
        # LISTEN_PID must be the server's own pid: bash sets it to $$ and execs bourbon,
        # which keeps the pid; the socket is moved to fd 3 as systemd does. -b is ignored.
        script = (
            f"exec 3<&{fd}; LISTEN_FDS=1 LISTEN_PID=$$ "
            f"exec {bourbon_exe()} cli_app:application -b 127.0.0.1:1"
        )
        srv = launch(["/bin/bash", "-c", script], pass_fds=(fd,))
        assert f"http://127.0.0.1:{port}" in srv.addresses
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/?env=LISTEN_FDS,LISTEN_PID", timeout=TIMEOUT
        ) as resp:
            data = json.loads(resp.read())
        # The variables are consumed: the application does not see them.
        assert data["os_environ"] == {"LISTEN_FDS": None, "LISTEN_PID": None}


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
