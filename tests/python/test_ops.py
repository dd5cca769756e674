"""Operations plumbing (issue 4): --umask, --user/--group, USR1 log reopening, sd_notify and
LISTEN_FDNAMES, --reuse-port, --daemon, process titles, and the USR2/WINCH binary upgrade.

Every server runs in its own process group and is killed by it; a daemon, which leaves that
group, is found again by a marker in its environment and killed by pid.
"""

from __future__ import annotations

import grp
import http.client
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import APPS, base_env, bourbon_exe, run_bourbon
from procs import alive, children, wait_until

TIMEOUT = 15.0


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


class ClosedWithoutResponse(OSError):
    """The server closed a unix connection without sending a byte."""


def unix_get(path: Path, target: str = "/") -> dict:
    """GET over a unix socket; returns the JSON body."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(str(path))
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data:
        raise ClosedWithoutResponse(f"{path}: closed without a response")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


def status_field(pid: int, name: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def pids_with_marker(marker: str) -> list[int]:
    """Processes whose environment holds ``OPS_TEST_MARK=marker`` (titles hide the argv)."""
    needle = f"OPS_TEST_MARK={marker}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if needle in (d / "environ").read_bytes().split(b"\0"):
                    found.append(int(d.name))
            except OSError:
                pass
    return found


class FileLogged:
    """A bourbon whose error log goes to a file: readiness and lines are read from the file.
    Started in its own process group, which ``stop`` (and ``kill``) signal."""

    def __init__(self, args: list[str], errlog: Path, cwd: Path = APPS):
        self.errlog = errlog
        self.proc = subprocess.Popen(
            [bourbon_exe(), *args, "--error-logfile", str(errlog)],
            cwd=str(cwd),
            env=base_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self.wait_for("Using worker")
        except BaseException:
            self.kill()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.errlog.read_text() if self.errlog.exists() else ""

    def wait_for(self, needle: str, count: int = 1) -> str:
        return wait_until(
            lambda: (t := self.text()).count(needle) >= count and t, what=f"{needle!r} in the log"
        )

    def url(self) -> str:
        line = next(ln for ln in self.text().splitlines() if "Listening at: http://" in ln)
        return line.split("Listening at: ")[1].split(" ")[0]

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(TIMEOUT)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(TIMEOUT)


# ---- 1. --umask ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "mode"),
    [([], 0o777), (["--umask", "0o077"], 0o700), (["-m", "007"], 0o770)],
)
def test_umask_sets_the_unix_socket_mode(tmp_path: Path, start_server, args, mode):
    sock = tmp_path / "s.sock"
    start_server("ops_app:app", "-b", f"unix:{sock}", *args)
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == mode
    # The application runs with the same mask.
    assert unix_get(sock)["umask"] == (0 if not args else mode ^ 0o777)


@pytest.mark.parametrize("umask", ["0", "0o077"])
def test_pid_and_log_files_have_safe_modes_whatever_the_umask(tmp_path: Path, umask):
    # The umask decides the unix socket's mode (gunicorn's semantics: nginx must reach it),
    # never the modes of the pid file (0644) and of log files (0640): with the default umask
    # 0 they used to be created world-writable. The pid file is relative and --chdir moves
    # the server away: it is written where it was asked and still removed at exit.
    sock = tmp_path / "s.sock"
    errlog = tmp_path / "error.log"
    access = tmp_path / "access.log"
    kept = tmp_path / "kept.log"
    kept.write_text("")
    kept.chmod(0o600)
    srv = FileLogged(
        ["ops_app:app", "--umask", umask, "--chdir", str(APPS), "--pid", "bourbon.pid"]
        + ["--access-logfile", str(access), "-b", f"unix:{sock}"],
        errlog,
        cwd=tmp_path,
    )
    try:
        pidfile = tmp_path / "bourbon.pid"
        assert pidfile.read_text().strip() == str(srv.pid)
        assert mode(pidfile) == 0o644
        assert mode(errlog) == 0o640
        assert mode(access) == 0o640
        assert mode(sock) == 0o777 & ~int(umask, 8)
        assert stat.S_ISSOCK(os.stat(sock).st_mode)
        # An existing log file keeps the mode it has (logrotate's `create`, an operator).
        access.rename(tmp_path / "access.log.1")
        kept.rename(access)
        os.kill(srv.pid, signal.SIGUSR1)
        srv.wait_for("usr1; log files reopened", count=2)
        unix_get(sock, "/after")
        wait_until(lambda: b"/after" in access.read_bytes(), what="a line in the kept file")
        assert mode(access) == 0o600
        assert srv.stop() == 0
        assert not pidfile.exists()
        assert not sock.exists()
    finally:
        srv.kill()


# ---- 2. --user / --group ---------------------------------------------------------------


def test_unknown_user_or_group_is_a_one_line_error_exit_2():
    r = run_bourbon("ops_app:app", "--user", "no-such-user-ops", "-b", "127.0.0.1:0")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: --user: no such user 'no-such-user-ops'"
    r = run_bourbon("ops_app:app", "-g", "no-such-group-ops", "-b", "127.0.0.1:0")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "error: --group: no such group 'no-such-group-ops'"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_and_group_drop_privileges_in_master_and_workers(start_server):
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup")
    # The unprivileged master removes the socket and pid files at exit: their directory must
    # be reachable and writable for it (pytest's tmp_path is under a 0700 directory).
    with tempfile.TemporaryDirectory(prefix="bourbon-ops-") as d:
        Path(d).chmod(0o777)
        check_privilege_drop(start_server, Path(d), nobody, nogroup)


def check_privilege_drop(start_server, tmp: Path, nobody, nogroup) -> None:
    sock = tmp / "s.sock"
    pidfile = tmp / "bourbon.pid"
    srv = start_server(
        "ops_app:app",
        "-w",
        "2",
        "--user",
        "nobody",
        "--group",
        "nogroup",
        "--pid",
        str(pidfile),
        "-b",
        f"unix:{sock}",
        "-b",
        "127.0.0.1:0",
    )
    workers = wait_until(lambda: (k := children(srv.pid)) and len(k) == 2 and k, what="workers")
    expected_groups = sorted(set(os.getgrouplist("nobody", nogroup.gr_gid)))
    for pid in [srv.pid, *workers]:
        assert status_field(pid, "Uid") == [str(nobody.pw_uid)] * 4
        assert status_field(pid, "Gid") == [str(nogroup.gr_gid)] * 4
        assert sorted(int(g) for g in status_field(pid, "Groups")) == expected_groups
    data = get_json(srv.url + "/")
    assert (data["uid"], data["euid"], data["gid"]) == (nobody.pw_uid,) * 2 + (nogroup.gr_gid,)
    assert data["groups"] == expected_groups
    # The socket file was given to the user before the switch; the pid file was written.
    st = os.stat(sock)
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nogroup.gr_gid)
    assert pidfile.read_text().strip() == str(srv.pid)
    assert srv.stop() == 0
    assert not sock.exists()
    assert not pidfile.exists()


def keepers(pgid: int) -> list[int]:
    """The pid file keepers in process group ``pgid``, found by their title."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                title = (d / "cmdline").read_bytes()
                if title.startswith(b"bourbon: keeper") and os.getpgid(int(d.name)) == pgid:
                    found.append(int(d.name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_pid_file_in_a_root_owned_directory_is_removed_at_exit(start_server):
    # Like /run: root's, writable by root only. The master runs as nobody once the file is
    # written, so a root keeper removes it when the master is gone.
    with tempfile.TemporaryDirectory(prefix="bourbon-run-") as d:
        run = Path(d)
        run.chmod(0o755)
        pidfile = run / "bourbon.pid"
        srv = start_server(
            "ops_app:app", "-w", "2", "--user", "nobody", "--pid", str(pidfile), "--umask", "0"
        )
        workers = wait_until(lambda: (k := children(srv.pid)) and len(k) == 2 and k, what="workers")
        st = os.stat(pidfile)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
        assert pidfile.read_text().strip() == str(srv.pid)
        # The application never runs as root; the master neither.
        nobody = pwd.getpwnam("nobody").pw_uid
        assert get_json(srv.url + "/")["euid"] == nobody
        for pid in [srv.pid, *workers]:
            assert status_field(pid, "Uid") == [str(nobody)] * 4
        # The keeper: root, not a child of the master, holding one descriptor (its pipe).
        (keeper,) = wait_until(lambda: keepers(srv.pid), what="the keeper")
        assert keeper not in children(srv.pid)
        assert status_field(keeper, "Uid") == ["0"] * 4
        fds = list(Path(f"/proc/{keeper}/fd").iterdir())
        assert len(fds) == 1 and os.readlink(fds[0]).startswith("pipe:"), fds
        # The stop signals the group gets leave the keeper alone; the master's exit does not.
        assert srv.stop() == 0
        wait_until(lambda: not pidfile.exists(), what="the pid file removed")
        wait_until(lambda: not alive(keeper), what="the keeper gone")


def test_a_worker_exiting_leaves_the_unix_socket_file(tmp_path: Path, start_server):
    sock = tmp_path / "s.sock"
    srv = start_server("ops_app:app", "-w", "2", "-b", f"unix:{sock}")
    before = wait_until(lambda: (k := children(srv.pid)) and len(k) == 2 and k, what="workers")
    os.kill(srv.pid, signal.SIGTTOU)
    wait_until(lambda: len(children(srv.pid)) == 1, what="one worker")
    wait_until(lambda: not any(alive(p) for p in before - children(srv.pid)), what="exit")
    assert sock.exists()
    assert unix_get(sock)["ppid"] == srv.pid
    assert srv.stop() == 0
    assert not sock.exists()


# ---- 7. USR1 ---------------------------------------------------------------------------


def test_usr1_reopens_the_access_log_in_every_worker(tmp_path: Path, start_server):
    log = tmp_path / "access.log"
    srv = start_server("ops_app:app", "-w", "2", "--access-logfile", str(log))
    workers = wait_until(lambda: (k := children(srv.pid)) and len(k) == 2 and k, what="workers")
    wait_until(lambda: srv.log.count("Booting worker") >= 2, what="worker boot")
    get_json(srv.url + "/before")
    wait_until(lambda: log.exists() and b"/before" in log.read_bytes(), what="first line")
    rotated = tmp_path / "access.log.1"
    log.rename(rotated)
    os.kill(srv.pid, signal.SIGUSR1)
    # The master and both workers say they reopened.
    wait_until(lambda: srv.log.count("usr1; log files reopened") >= 3, what="reopen lines")
    seen = set()
    for i in range(40):
        seen.add(get_json(srv.url + f"/after-{i}")["pid"])
    # Which worker takes a connection is the kernel's choice; every line must land in the new
    # file whichever did (both said they reopened, above).
    assert seen and seen <= workers
    text = wait_until(
        lambda: (t := log.read_bytes() if log.exists() else b"").count(b"/after-") == 40 and t,
        what="40 lines in the new file",
    )
    assert b"/before" not in text
    assert b"/after-" not in rotated.read_bytes()


def test_usr1_in_a_single_process_reopens_the_error_log(tmp_path: Path):
    errlog = tmp_path / "error.log"
    # The readiness lines go to the file, so wait on the file rather than the fixture's pipe.
    proc = subprocess.Popen(
        [bourbon_exe(), "ops_app:app", "--error-logfile", str(errlog), "-b", "127.0.0.1:0"],
        cwd=str(APPS),
        env=base_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: errlog.exists() and "Using worker" in errlog.read_text(), what="ready")
        errlog.rename(tmp_path / "error.log.1")
        proc.send_signal(signal.SIGUSR1)
        wait_until(
            lambda: errlog.exists() and "log files reopened" in errlog.read_text(),
            what="the line in the new file",
        )
        assert "log files reopened" not in (tmp_path / "error.log.1").read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
        assert "Shutting down" in errlog.read_text()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(TIMEOUT)


def test_usr1_moves_the_stack_dump_of_a_timed_out_worker_to_the_new_file(tmp_path: Path):
    # faulthandler writes a timed-out worker's stacks to the error log's descriptor from a
    # signal handler; after logrotate and USR1 they must land in the new file.
    errlog = tmp_path / "error.log"
    rotated = tmp_path / "error.log.1"
    srv = FileLogged(
        ["supervision_app:app", "-w", "1", "--timeout", "2", "-b", "127.0.0.1:0"], errlog
    )
    try:
        url = srv.url()
        (worker,) = wait_until(lambda: (k := children(srv.pid)) and len(k) == 1 and k, what="w")
        with urllib.request.urlopen(url + "/", timeout=TIMEOUT) as resp:
            assert int(resp.read()) == worker  # it serves: its USR1 handler is in place
        errlog.rename(rotated)
        os.kill(srv.pid, signal.SIGUSR1)
        # The master's line and the worker's, in the new file.
        wait_until(
            lambda: f"[{worker}] [INFO] Handling signal: usr1; log files reopened" in srv.text(),
            what="the worker's reopen line in the new file",
        )
        with pytest.raises(OSError):  # the worker is killed: no response
            urllib.request.urlopen(url + "/sleep", timeout=TIMEOUT)
        text = srv.wait_for("in sleep_forever")
        assert f"WORKER TIMEOUT (pid:{worker})" in text
        assert "most recent call first" in text
        old = rotated.read_text()
        assert "sleep_forever" not in old and "most recent call first" not in old
        assert srv.stop() == 0
    finally:
        srv.kill()


def test_usr1_while_a_worker_boots_reopens_its_logs_once_it_serves(tmp_path: Path):
    # The worker holds the files the master had when it forked it; a rotation while it still
    # imports the application (1.5 s here) must not leave it writing to the rotated file.
    errlog = tmp_path / "error.log"
    rotated = tmp_path / "error.log.1"
    srv = FileLogged(["slow_boot_app:app", "-w", "1", "-b", "127.0.0.1:0"], errlog)
    try:
        url = srv.url()
        (worker,) = wait_until(lambda: (k := children(srv.pid)) and len(k) == 1 and k, what="w")
        srv.wait_for(f"Booting worker with pid: {worker}")
        errlog.rename(rotated)
        signalled = time.monotonic()
        os.kill(srv.pid, signal.SIGUSR1)
        wait_until(
            lambda: f"[{worker}] [INFO] Handling signal: usr1; log files reopened" in srv.text(),
            what="the worker's reopen line in the new file",
        )
        # Acted upon once the import was over, not when the signal came.
        assert time.monotonic() - signalled > 0.5
        with urllib.request.urlopen(url + "/", timeout=TIMEOUT) as resp:
            assert resp.read() == b"booted\n"
        assert f"[{worker}] [INFO] Handling signal: usr1" not in rotated.read_text()
        assert srv.stop() == 0
    finally:
        srv.kill()


# ---- 5. systemd: sd_notify, LISTEN_FDNAMES ---------------------------------------------


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address if not address.startswith("@") else "\0" + address[1:])
        self.sock.settimeout(TIMEOUT)
        self.messages: list[dict[str, str]] = []

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        msg = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        self.messages.append(msg)
        return msg

    def wait_for(self, key: str) -> dict[str, str]:
        for _ in range(20):
            msg = self.next()
            if key in msg:
                return msg
        raise AssertionError(f"no {key} in {self.messages}")

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_ready_reloading_stopping_with_workers(tmp_path: Path, start_server):
    path = str(tmp_path / "notify.sock")
    notify = NotifySocket(path)
    try:
        srv = start_server("ops_app:app", "-w", "2", env={"NOTIFY_SOCKET": path})
        msg = notify.wait_for("READY")
        assert msg["READY"] == "1"
        assert msg["MAINPID"] == str(srv.pid)
        assert "STATUS" in msg
        # The application does not see the variable (nor could answer in our name).
        data = get_json(srv.url + "/?env=NOTIFY_SOCKET")
        assert data["os_environ"] == {"NOTIFY_SOCKET": None}
        os.kill(srv.pid, signal.SIGHUP)
        msg = notify.wait_for("RELOADING")
        assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0
        assert notify.wait_for("READY")["READY"] == "1"
        os.kill(srv.pid, signal.SIGTERM)
        assert notify.wait_for("STOPPING")["STOPPING"] == "1"
        assert srv.proc.wait(TIMEOUT) == 0
    finally:
        notify.close()


def test_sd_notify_abstract_socket_single_process(start_server):
    name = f"@bourbon-ops-{uuid.uuid4().hex}"
    notify = NotifySocket(name)
    try:
        srv = start_server("ops_app:app", env={"NOTIFY_SOCKET": name})
        msg = notify.wait_for("READY")
        assert msg["MAINPID"] == str(srv.pid)
        srv.proc.send_signal(signal.SIGTERM)
        assert notify.wait_for("STOPPING")["STOPPING"] == "1"
        assert srv.proc.wait(TIMEOUT) == 0
    finally:
        notify.close()


def test_listen_fdnames_are_logged(launch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port = sock.getsockname()[1]
        fd = sock.fileno()
        script = (
            f"exec 3<&{fd}; LISTEN_FDS=1 LISTEN_FDNAMES=web LISTEN_PID=$$ "
            f"exec {bourbon_exe()} ops_app:app -b 127.0.0.1:1"
        )
        srv = launch(["/bin/bash", "-c", script], pass_fds=(fd,))
        srv.wait_for_log(rf"systemd socket fd 3 is named 'web': http://127.0.0.1:{port}")
        data = get_json(f"http://127.0.0.1:{port}/?env=LISTEN_FDNAMES")
        assert data["os_environ"] == {"LISTEN_FDNAMES": None}


# ---- 6. --reuse-port -------------------------------------------------------------------


def test_reuse_port_lets_two_servers_share_a_port(start_server):
    first = start_server("ops_app:app", "--reuse-port")
    port = first.host_port[1]
    second = start_server("ops_app:app", "--reuse-port", "-b", f"127.0.0.1:{port}")
    assert second.host_port == first.host_port
    # Both answer on the one port: stop the first, the second still serves.
    assert first.stop() == 0
    assert get_json(f"http://127.0.0.1:{port}/")["ppid"] == second.pid
    # Without the option, the port is taken: exit 1.
    r = run_bourbon("ops_app:app", "-b", f"127.0.0.1:{port}")
    assert r.returncode == 1, r.stderr
    assert "cannot bind" in r.stderr


# ---- 3. --daemon -----------------------------------------------------------------------


def test_daemon_detaches_and_writes_its_pid(tmp_path: Path):
    marker = uuid.uuid4().hex
    sock = tmp_path / "d.sock"
    pidfile = tmp_path / "d.pid"
    errlog = tmp_path / "error.log"
    try:
        started = time.monotonic()
        r = subprocess.run(
            [bourbon_exe(), "ops_app:app", "-D", "--pid", str(pidfile)]
            + ["--error-logfile", str(errlog), "-b", f"unix:{sock}"],
            cwd=str(APPS),
            env=base_env({"OPS_TEST_MARK": marker}),
            capture_output=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 0, r.stderr
        assert time.monotonic() - started < TIMEOUT
        pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="pid"))
        wait_until(lambda: "Listening at" in errlog.read_text(), what="readiness")
        data = unix_get(sock)
        assert data["ppid"] == pid  # the daemon is the master of the worker that answered
        # Detached: its own session, not a child of anything of ours, no terminal.
        assert os.getsid(pid) == pid or os.getsid(pid) != os.getsid(0)
        assert pid not in children(os.getpid())
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid), what="daemon exit")
        assert not pidfile.exists()
        assert not sock.exists()
        assert "Shutting down" in errlog.read_text()
    finally:
        for pid in pids_with_marker(marker):
            kill_quietly(pid)


# ---- 4. process titles -----------------------------------------------------------------


def test_process_titles_for_master_and_workers(start_server):
    srv = start_server("ops_app:app", "-w", "2")
    workers = wait_until(lambda: (k := children(srv.pid)) and len(k) == 2 and k, what="workers")
    assert cmdline(srv.pid).split(b"\0")[0] == b"bourbon: master [ops_app:app]"
    assert Path(f"/proc/{srv.pid}/comm").read_text().strip() == "bourbon: master"

    def titled() -> bool:
        return all(cmdline(p).split(b"\0")[0] == b"bourbon: worker [ops_app:app]" for p in workers)

    wait_until(titled, what="worker titles")
    assert all(Path(f"/proc/{p}/comm").read_text().strip() == "bourbon: worker" for p in workers)


def test_proc_name_overrides_the_app_in_titles(start_server):
    srv = start_server("ops_app:app", "--proc-name", "mysite")
    assert cmdline(srv.pid).split(b"\0")[0] == b"bourbon: master [mysite]"
    # The rewritten area keeps its length and stays NUL-padded (the environment is untouched).
    assert cmdline(srv.pid).rstrip(b"\0") == b"bourbon: master [mysite]"
    assert get_json(srv.url + "/")["ppid"] == srv.pid


# ---- 8. USR2 + WINCH: the binary upgrade -----------------------------------------------


class Requests:
    """A client loop in a thread: bounded in count and time, counts failures.

    ``dropped`` counts connections closed without a byte of response, kept apart from the
    other failures (refused, reset mid-response, a timeout, a wrong status) because it is
    the one a graceful stop could cause: a worker that accepted a connection an instant
    before it was told to stop must still answer the request on it (the connection driver
    waits for a first request before honouring a stop). Both must stay empty.
    """

    def __init__(self, url: str, sock: Path):
        self.url = url
        self.sock = sock
        self.failures: list[str] = []
        self.dropped: list[str] = []
        self.answered = 0
        self.ppids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        for i in range(20_000):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
            try:
                data = get_json(self.url) if i % 2 else unix_get(self.sock)
                self.ppids.add(data["ppid"])
                self.answered += 1
            except (http.client.RemoteDisconnected, ClosedWithoutResponse) as e:
                self.dropped.append(repr(e))
            except (OSError, AssertionError, ValueError) as e:
                self.failures.append(repr(e))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)


@pytest.mark.timeout(90)
def test_usr2_winch_term_upgrade_without_failed_requests(tmp_path: Path, start_server):
    pidfile = tmp_path / "bourbon.pid"
    sock = tmp_path / "s.sock"
    srv = start_server(
        "ops_app:app", "-w", "2", "--pid", str(pidfile), "-b", "127.0.0.1:0", "-b", f"unix:{sock}"
    )
    old = srv.pid
    new = None
    client = None
    try:
        old_workers = wait_until(
            lambda: (k := children(old)) and len(k) == 2 and k, what="old workers"
        )
        client = Requests(srv.url + "/", sock)
        wait_until(lambda: client.answered >= 20, what="requests before")

        os.kill(old, signal.SIGUSR2)
        srv.wait_for_log(r"usr2; started a new master \(pid:\d+\)")
        oldbin = Path(f"{pidfile}.oldbin")
        wait_until(lambda: oldbin.exists(), what="pid file moved aside")
        assert oldbin.read_text().strip() == str(old)
        new = int(
            wait_until(
                lambda: pidfile.exists() and pidfile.read_text().strip(), what="new pid file"
            )
        )
        assert new != old
        srv.wait_for_log(rf"\[{new}\] \[INFO\] Arbiter booted: 2 workers")
        new_workers = wait_until(
            lambda: (k := children(new)) and len(k) == 2 and k, what="new workers"
        )
        # Both masters listen on the very same sockets.
        srv.wait_for_log(rf"Listening at: {srv.url} \({new}\)")
        srv.wait_for_log(rf"Listening at: unix:{sock} \({new}\)")

        os.kill(old, signal.SIGWINCH)
        wait_until(lambda: not any(alive(p) for p in old_workers), what="old workers gone")
        assert alive(old)  # the old master stays, for a roll-back with HUP
        n = client.answered
        wait_until(lambda: client.answered >= n + 20, what="requests after WINCH")

        os.kill(old, signal.SIGTERM)
        assert srv.proc.wait(TIMEOUT) == 0
        assert not oldbin.exists()
        n = client.answered
        wait_until(lambda: client.answered >= n + 20, what="requests after TERM")
        client.stop()
        assert not client.failures, client.failures[:3]
        assert not client.dropped, client.dropped
        assert new in client.ppids and old in client.ppids
        # The old master left the socket file and the pid file to the new one.
        assert sock.exists()
        assert pidfile.read_text().strip() == str(new)
        assert unix_get(sock)["ppid"] == new
        assert get_json(srv.url + "/")["pid"] in new_workers

        os.kill(new, signal.SIGTERM)
        wait_until(lambda: not alive(new), what="new master exit")
        assert not sock.exists()
        assert not pidfile.exists()
    finally:
        if client is not None:
            client.stop()
        try:
            os.killpg(old, signal.SIGKILL)  # the group holds both masters and all workers
        except ProcessLookupError:
            pass
        if new is not None:
            kill_quietly(new)


def test_usr2_then_term_with_one_worker(tmp_path: Path, start_server):
    pidfile = tmp_path / "bourbon.pid"
    sock = tmp_path / "s.sock"
    srv = start_server("ops_app:app", "--pid", str(pidfile), "-b", f"unix:{sock}")
    old = srv.pid
    new = None
    try:
        os.kill(old, signal.SIGUSR2)
        line = srv.wait_for_log(r"usr2; started a new master \(pid:\d+\)")
        new = int(line.split("(pid:")[1].split(")")[0])
        srv.wait_for_log(rf"Listening at: unix:{sock} \({new}\)")
        assert Path(f"{pidfile}.oldbin").read_text().strip() == str(old)
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() == str(new), what="pid")
        os.kill(old, signal.SIGTERM)
        assert srv.proc.wait(TIMEOUT) == 0
        assert sock.exists()
        assert unix_get(sock)["ppid"] == new
    finally:
        try:
            os.killpg(old, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if new is not None:
            kill_quietly(new)


def test_old_master_takes_its_pid_file_back_when_the_new_one_dies(tmp_path: Path, start_server):
    pidfile = tmp_path / "bourbon.pid"
    sock = tmp_path / "s.sock"
    srv = start_server("ops_app:app", "-w", "2", "--pid", str(pidfile), "-b", f"unix:{sock}")
    old = srv.pid
    new = None
    try:
        os.kill(old, signal.SIGUSR2)
        line = srv.wait_for_log(r"usr2; started a new master \(pid:\d+\)")
        new = int(line.split("(pid:")[1].split(")")[0])
        srv.wait_for_log(rf"\[{new}\] \[INFO\] Arbiter booted")
        # Roll back: stop the new master; the old one keeps serving and owns everything again.
        os.kill(new, signal.SIGTERM)
        srv.wait_for_log(rf"New master \(pid:{new}\) exited with code 0")
        assert pidfile.read_text().strip() == str(old)
        assert not Path(f"{pidfile}.oldbin").exists()
        assert sock.exists()
        assert unix_get(sock)["ppid"] == old
        assert srv.stop() == 0
        assert not sock.exists() and not pidfile.exists()
    finally:
        try:
            os.killpg(old, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if new is not None:
            kill_quietly(new)
