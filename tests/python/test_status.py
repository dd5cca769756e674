"""``bourbon status`` and ``bourbon top``: the master's control socket, read over a real
unix socket while real workers serve real requests (docs/status.md)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import base_env, bourbon_exe, run_bourbon
from procs import wait_until

pytestmark = pytest.mark.timeout(120)


def snapshot(path: Path, timeout: float = 5.0) -> dict:
    """Read one snapshot from the control socket (the protocol: connect, read to EOF)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def wait_snapshot(path: Path, check, timeout: float = 20.0) -> dict:
    """Poll the control socket (``procs.wait_until``) until ``check(snap)`` holds."""
    last: list[dict] = []

    def matched() -> dict | None:
        try:
            snap = snapshot(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return None
        last[:] = [snap]
        return snap if check(snap) else None

    try:
        return wait_until(matched, timeout=timeout, what="a status snapshot")
    except AssertionError as e:
        raise AssertionError(f"{e}; last: {json.dumps(last, indent=1)}") from None


def states(snap: dict) -> list[str]:
    return sorted(w["state"] for w in snap["workers"])


def status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_bourbon("status", *args, env=env, timeout=30)


def test_two_workers_one_busy_in_a_slow_request(start_server, tmp_path):
    sock = tmp_path / "ctl.sock"
    srv = start_server(
        "slow_app:app",
        "-w",
        "2",
        "--threads",
        "2",
        "--graceful-timeout",
        "3",
        "--control-socket",
        str(sock),
    )
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    wait_snapshot(sock, lambda s: states(s) == ["idle", "idle"])

    # One slow request, known to be inside the application once it logged.
    c = srv.connect()
    c.sendall(b"GET /?seconds=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    srv.wait_for_log("slow_app: sleeping 30.0 s")
    try:
        res = status("--control-socket", str(sock))
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        busy = [ln for ln in lines if " busy " in ln]
        idle = [ln for ln in lines if " idle " in ln]
        assert len(busy) == 1 and len(idle) == 1, res.stdout
        assert busy[0].endswith("GET /?seconds=30 HTTP/1.1"), busy[0]
        assert " 1/2 " in busy[0] and " 0/2 " in idle[0], res.stdout

        res = status("--json", "--control-socket", str(sock))
        assert res.returncode == 0, res.stderr
        snap = json.loads(res.stdout)
        assert snap["schema"] == 1 and snap["server"] == "bourbon"
        assert snap["master"]["pid"] == srv.pid
        assert snap["master"]["workers_target"] == 2
        by_state = {w["state"]: w for w in snap["workers"]}
        assert set(by_state) == {"busy", "idle"}
        busy_w, idle_w = by_state["busy"], by_state["idle"]
        assert [c["request"] for c in busy_w["current"]] == ["GET /?seconds=30 HTTP/1.1"]
        assert 0 <= busy_w["current"][0]["age_s"] < 30
        assert busy_w["threads"] == {"busy": 1, "total": 2}
        assert idle_w["current"] == [] and idle_w["threads"] == {"busy": 0, "total": 2}
        for w in snap["workers"]:
            assert w["interface"] == "wsgi"
            assert w["rss_bytes"] > 1024 * 1024
            assert w["age_s"] >= 0 and w["requests"] == 0
            assert w["pid"] != srv.pid
        # The age grows while the request runs.
        first = busy_w["current"][0]["age_s"]
        later = wait_snapshot(
            sock,
            lambda s: any(c["age_s"] > first + 0.2 for w in s["workers"] for c in w["current"]),
        )
        assert later
        # A stop drains: the master still answers, and says so.
        srv.send_signal(signal.SIGTERM)
        srv.wait_for_log("Handling signal: term")
        snap = wait_snapshot(sock, lambda s: s["master"]["stopping"])
        assert {w["state"] for w in snap["workers"]} == {"draining"}
        assert srv.proc.wait(15) == 0
    finally:
        c.close()
    srv.stop()
    assert not sock.exists(), "the control socket is removed at exit"


def test_a_client_that_never_reads_does_not_stall_the_master(start_server, tmp_path):
    sock = tmp_path / "ctl.sock"
    srv = start_server("slow_app:app", "-w", "1", "--control-socket", str(sock))
    silent = []
    try:
        # More clients than the master serves at once, none of them reading.
        for _ in range(40):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(str(sock))
            silent.append(s)
        # The master still serves HTTP (through its worker) and signals: TTIN forks a worker.
        with urllib.request.urlopen(srv.url + "/?seconds=0", timeout=10) as r:
            assert r.status == 200
        srv.send_signal(signal.SIGTTIN)
        srv.wait_for_log("Handling signal: ttin; 2 workers")
        snap = wait_snapshot(sock, lambda s: len(s["workers"]) == 2)
        assert snap["master"]["workers_target"] == 2
    finally:
        for s in silent:
            s.close()


def test_status_survives_hup_and_a_recycle(start_server, tmp_path):
    sock = tmp_path / "ctl.sock"
    srv = start_server(
        "slow_app:app", "-w", "2", "--max-requests", "1", "--control-socket", str(sock)
    )
    snap = wait_snapshot(sock, lambda s: states(s) == ["idle", "idle"])
    first_pids = {w["pid"] for w in snap["workers"]}
    inode = os.stat(sock).st_ino

    os.kill(srv.pid, signal.SIGHUP)  # the master only, as an operator does
    srv.wait_for_log("Handling signal: hup")
    snap = wait_snapshot(
        sock,
        lambda s: (
            len(s["workers"]) == 2
            and not {w["pid"] for w in s["workers"]} & first_pids
            and states(s) == ["idle", "idle"]
        ),
    )
    assert os.stat(sock).st_ino == inode, "HUP keeps the same control socket"
    assert min(w["id"] for w in snap["workers"]) > 2
    res = status("--control-socket", str(sock))
    assert res.returncode == 0, res.stderr
    hup_snap = snap
    hup_pids = {w["pid"] for w in snap["workers"]}

    # --max-requests 1: the worker that served is replaced, and status shows its successor.
    with urllib.request.urlopen(srv.url + "/?seconds=0", timeout=10) as r:
        assert r.status == 200
    srv.wait_for_log("Autorestarting worker")
    snap = wait_snapshot(
        sock,
        lambda s: (
            len(s["workers"]) == 2
            and len({w["pid"] for w in s["workers"]} - hup_pids) == 1
            and states(s) == ["idle", "idle"]
        ),
    )
    assert max(w["id"] for w in snap["workers"]) > max(w["id"] for w in hup_snap["workers"])
    res = status("--json", "--control-socket", str(sock))
    assert res.returncode == 0, res.stderr
    assert {w["pid"] for w in json.loads(res.stdout)["workers"]} == {
        w["pid"] for w in snap["workers"]
    }


def test_default_socket_found_through_the_pid_file(start_server, tmp_path):
    run_dir = tmp_path / "xdg"
    run_dir.mkdir(mode=0o700)
    pid_file = tmp_path / "app.pid"
    env = {"XDG_RUNTIME_DIR": str(run_dir)}
    srv = start_server("slow_app:app", "-w", "1", "--pid", str(pid_file), env=env)
    sock = run_dir / "bourbon" / f"{srv.pid}.sock"
    wait_snapshot(sock, lambda s: states(s) == ["idle"])
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    res = status("--json", "--pid", str(pid_file), env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["master"]["pid"] == srv.pid
    # The server's own variable finds it too (a container's environment).
    res = status("--json", env={**env, "BOURBON_PID": str(pid_file)})
    assert res.returncode == 0, res.stderr
    srv.stop()
    assert not sock.exists()


def test_asgi_workers_show_their_requests(start_server, tmp_path):
    sock = tmp_path / "ctl.sock"
    srv = start_server("asgi_app:app", "-w", "1", "--control-socket", str(sock))
    wait_snapshot(sock, lambda s: states(s) == ["serving"])
    for _ in range(3):
        with urllib.request.urlopen(srv.url + "/hello", timeout=10) as r:
            assert r.status == 200
    snap = wait_snapshot(sock, lambda s: s["workers"][0]["requests"] == 3)
    w = snap["workers"][0]
    assert w["interface"] == "asgi" and w["threads"] is None
    assert 0 <= w["heartbeat_age_s"] < 5
    res = status("--control-socket", str(sock))
    assert res.returncode == 0 and " serving " in res.stdout and " asgi " in res.stdout


def test_no_server(tmp_path):
    res = status("--control-socket", str(tmp_path / "nothing.sock"))
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert res.stdout == "" and "no server" in res.stderr
    # A socket file whose master died: nobody listens.
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()
    res = status("--json", "--control-socket", str(dead))
    assert res.returncode == 3 and "no server" in res.stderr
    # A pid file naming a process that is gone.
    pid_file = tmp_path / "gone.pid"
    pid_file.write_text("999999999\n")
    res = status("--pid", str(pid_file))
    assert res.returncode == 3 and "not running" in res.stderr
    res = run_bourbon("top", "--once", "--pid", str(tmp_path / "missing.pid"))
    assert res.returncode == 3 and "no server" in res.stderr
    res = status("--bogus")
    assert res.returncode == 2 and "--bogus" in res.stderr
    res = run_bourbon("top", "--interval", "0")
    assert res.returncode == 2 and "--interval" in res.stderr


def test_top_prints_one_view_when_not_a_terminal(start_server, tmp_path):
    sock = tmp_path / "ctl.sock"
    srv = start_server("slow_app:app", "-w", "2", "--control-socket", str(sock))
    snap = wait_snapshot(sock, lambda s: states(s) == ["idle", "idle"])
    for args in (["--once"], []):
        # stdout is a pipe here: one view, no escape codes, and it exits.
        res = run_bourbon("top", *args, "--control-socket", str(sock), timeout=30)
        assert res.returncode == 0, res.stderr
        assert "\x1b" not in res.stdout
        assert f"master {srv.pid}" in res.stdout
        for w in snap["workers"]:
            assert any(ln.startswith(f"{w['pid']} ") for ln in res.stdout.splitlines())


def test_status_is_not_an_app_named_status(tmp_path):
    # `bourbon status:app` serves a module named status; only the bare word is the command.
    (tmp_path / "status.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n"
    )
    res = subprocess.run(
        [bourbon_exe(), "status:app", "--check-config"],
        cwd=str(tmp_path),
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    assert "configuration and application OK" in res.stdout
    # The bare word is the command, even beside a module named status.
    res = subprocess.run(
        [bourbon_exe(), "status", "--control-socket", str(tmp_path / "none.sock")],
        cwd=str(tmp_path),
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 3 and res.stdout == "", (res.stdout, res.stderr)


def test_usr2_new_master_takes_a_fixed_socket_and_a_roll_back_gives_it_back(start_server, tmp_path):
    sock = tmp_path / "ctl.sock"
    pid_file = tmp_path / "app.pid"
    srv = start_server("slow_app:app", "--pid", str(pid_file), "--control-socket", str(sock))
    old = srv.pid
    wait_snapshot(sock, lambda s: s["master"]["pid"] == old and states(s) == ["idle"])
    os.kill(old, signal.SIGUSR2)
    line = srv.wait_for_log(r"usr2; started a new master \(pid:\d+\)")
    new = int(line.split("(pid:")[1].split(")")[0])
    try:
        wait_snapshot(sock, lambda s: s["master"]["pid"] == new and states(s) == ["idle"])
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        res = status("--json", "--control-socket", str(sock))
        assert res.returncode == 0 and json.loads(res.stdout)["master"]["pid"] == new
        # Roll-back: the new master stops and removes its socket; the old one makes its
        # own again.
        os.kill(new, signal.SIGTERM)
        srv.wait_for_log(rf"New master \(pid:{new}\) exited")
        wait_snapshot(sock, lambda s: s["master"]["pid"] == old)
    finally:
        try:
            os.kill(new, signal.SIGKILL)
        except ProcessLookupError:
            pass
    srv.stop()
    assert not sock.exists()


def read_pty_until(fd: int, done, timeout: float = 15.0) -> bytes:
    """Read from the pty master ``fd`` until ``done(data)`` holds or it closes."""
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        data += chunk
    return data


def test_top_in_a_terminal_refreshes_and_quits_on_q(start_server, tmp_path):
    sock = tmp_path / "ctl.sock"
    srv = start_server("slow_app:app", "-w", "1", "--control-socket", str(sock))
    wait_snapshot(sock, lambda s: states(s) == ["idle"])
    # A terminal of its own: stdin and stdout are the pty's slave side.
    fd, slave = pty.openpty()
    proc = subprocess.Popen(
        [bourbon_exe(), "top", "--interval", "0.2", "--control-socket", str(sock)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=base_env(),
        start_new_session=True,
    )
    os.close(slave)
    try:
        # Two frames: each starts by homing the cursor.
        out = read_pty_until(fd, lambda d: d.count(b"\x1b[H") >= 2 and b" idle " in d)
        assert out.startswith(b"\x1b[?1049h"), out[:200]
        assert out.count(b"\x1b[H") >= 2, out[-400:]
        assert f"master {srv.pid}".encode() in out
        os.write(fd, b"q")
        out = read_pty_until(fd, lambda d: b"\x1b[?1049l" in d)
        assert out.endswith(b"\x1b[?25h\x1b[?1049l"), out[-200:]
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(fd)


def test_asgi_websocket_sessions_are_counted(start_server, tmp_path):
    from websockets.sync.client import connect

    sock = tmp_path / "ctl.sock"
    srv = start_server("asgi_ws:app", "-w", "1", "--control-socket", str(sock))
    wait_snapshot(sock, lambda s: states(s) == ["serving"])
    host, port = srv.host_port
    with connect(f"ws://{host}:{port}/", open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        # Open: the worker serves it, and the session is not counted yet.
        snap = snapshot(sock)
        assert snap["workers"][0]["state"] == "serving"
        assert snap["workers"][0]["requests"] == 0
    # Closed: one session finished.
    wait_snapshot(sock, lambda s: s["workers"][0]["requests"] == 1)


def test_help_names_the_commands():
    res = run_bourbon("--help")
    assert res.returncode == 0 and "bourbon status [--json]" in res.stdout
    for cmd in ("status", "top"):
        res = run_bourbon(cmd, "--help")
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"usage: bourbon {cmd}")
        assert "3 no server" in res.stdout
