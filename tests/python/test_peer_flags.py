"""Daphne's and Uvicorn's flags on the real ``bourbon`` (issue 13): what they become shown
by ``--print-config``, accepted by ``--check-config`` with their warnings, refused in one
line with exit 2, and a server started with them listening where they say.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import bourbon_exe, run_bourbon

TIMEOUT = 15.0


def toml_loads(text: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # CPython 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def print_config(*args: str) -> dict:
    r = run_bourbon(*args, "--print-config", timeout=30)
    assert r.returncode == 0, r.stderr
    return toml_loads(r.stdout)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory under /tmp (AF_UNIX paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="bbpeer", dir="/tmp")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def get(family: int, address: object) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(address)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def test_uvicorn_command_line_print_config():
    cfg = print_config(
        "main:app",
        "--host",
        "0.0.0.0",
        "--port",
        "8123",
        "--workers",
        "3",
        "--timeout-keep-alive",
        "5",
        "--ws-max-size",
        "1048576",
        "--ws-ping-interval",
        "10",
        "--lifespan",
        "on",
        "--loop",
        "asyncio",
        "--http",
        "h11",
        "--factory",
    )
    assert cfg["bind"] == ["0.0.0.0:8123"]
    assert cfg["app"] == "main:app()"
    assert (cfg["workers"], cfg["keep_alive"]) == (3, 5)
    assert (cfg["ws_max_size"], cfg["ws_ping_interval"], cfg["lifespan"]) == (1048576, 10, "on")
    # --port alone is uvicorn's 127.0.0.1.
    assert print_config("--port", "8124")["bind"] == ["127.0.0.1:8124"]


def test_daphne_command_line_print_config():
    cfg = print_config(
        "-b",
        "0.0.0.0",
        "--port",
        "8125",
        "--unix-socket",
        "/tmp/daphne.sock",
        "--ping-interval",
        "15",
        "--ping-timeout",
        "25",
        "--websocket_timeout",
        "3600",
        "--access-log",
        "-",
        "--root-path",
        "/app",
        "mysite.asgi:application",
    )
    assert cfg["bind"] == ["0.0.0.0:8125", "unix:/tmp/daphne.sock"]
    assert (cfg["ws_ping_interval"], cfg["ws_ping_timeout"]) == (15, 25)
    assert cfg["ws_max_lifetime"] == 3600
    assert (cfg["access_logfile"], cfg["root_path"]) == ("-", "/app")
    # Daphne's -1 (never) is 0 here; a bare --bind HOST still means port 8000.
    assert print_config("--websocket_timeout", "-1")["ws_max_lifetime"] == 0
    assert print_config("--bind", "0.0.0.0")["bind"] == ["0.0.0.0:8000"]


@pytest.mark.parametrize(
    "worker_class",
    ["uvicorn.workers.UvicornWorker", "uvicorn_worker.UvicornWorker", "asgi"],
)
def test_asgi_worker_class_is_interface_asgi(worker_class):
    assert print_config("-k", worker_class)["interface"] == "asgi"
    assert print_config("-k", "sync")["interface"] == "auto"


def test_check_config_accepts_peer_flags_and_warns():
    """--check-config loads the application with the peers' flags; the ones bourbon cannot
    honour are named on stderr, and the check passes."""
    r = run_bourbon(
        "hello_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--no-proxy-headers",
        "--loop",
        "uvloop",
        "--no-access-log",
        "--check-config",
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "--no-proxy-headers: has no effect in bourbon: give --forwarded-allow-ips" in r.stderr
    assert "--loop" not in r.stderr, "bourbon's own setting (loop)"
    assert "--no-access-log" not in r.stderr


REFUSALS = [
    (
        ["-b", "0.0.0.0", "-p", "8001"],
        "-p 8001: -p is the pid file (gunicorn's); for Daphne's port give --port 8001",
    ),
    (
        ["-u", "/tmp/d.sock"],
        "-u /tmp/d.sock: -u is the user to run as (gunicorn's); "
        "for Daphne's unix socket give --unix-socket /tmp/d.sock",
    ),
    (
        ["--uds", "/tmp/u.sock", "--port", "8000"],
        "--uds: uvicorn listens only there and ignores --port",
    ),
    (["--port", "70000"], "--port: '70000' is not a port number (0-65535)"),
    (
        ["--bind", "127.0.0.1:7000", "--port", "9000"],
        "--port 9000: every --bind address has its port already",
    ),
    (["--env-file", ".env"], "--env-file: give each variable as -e KEY=VALUE"),
    (
        ["-k", "myproject.workers.MyUvicornWorker"],
        "-k myproject.workers.MyUvicornWorker: bourbon has one worker type",
    ),
    (["--ssl-certfile", "c.pem"], "--ssl-certfile: bourbon does not terminate TLS"),
]


@pytest.mark.parametrize(("args", "want"), REFUSALS)
def test_peer_refusals_exit_2_in_one_line(args, want):
    r = run_bourbon(*args, "hello_app:app", "--check-config", timeout=30)
    assert r.returncode == 2, (args, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {want}"), r.stderr


def test_daphne_bind_port_and_unix_socket_serve(launch, short_tmp):
    """daphne -b HOST --port N --unix-socket PATH: bourbon listens on both and serves."""
    sock = short_tmp / "d.sock"
    srv = launch(
        [
            bourbon_exe(),
            "hello_app:app",
            "-b",
            "127.0.0.1",
            "--port",
            "0",
            "--unix-socket",
            str(sock),
        ]
    )
    assert srv.url.startswith("http://127.0.0.1:")
    assert any(a == f"unix:{sock}" for a in srv.addresses), srv.addresses
    assert get(socket.AF_INET, srv.host_port) == b"Hello, world!"
    assert get(socket.AF_UNIX, str(sock)) == b"Hello, world!"


def test_uvicorn_uds_serves(launch, short_tmp):
    sock = short_tmp / "u.sock"
    srv = launch([bourbon_exe(), "hello_app:app", "--uds", str(sock)])
    srv.wait_for_log(r"Listening at: unix:")
    assert get(socket.AF_UNIX, str(sock)) == b"Hello, world!"
    # Only there: no TCP listener was opened beside it.
    assert not any(a.startswith("http://") for a in srv.addresses), srv.addresses
