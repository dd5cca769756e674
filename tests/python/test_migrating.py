"""Moving from gunicorn or uWSGI (issue 11, point 7): the real ``bourbon`` started with a
gunicorn.conf.py (settings and server hooks, checked over real requests and real signals),
with GUNICORN_CMD_ARGS, with a uwsgi.ini, with uWSGI flags, and the one-line refusals.

Hooks write marker lines to a file named by $MARKS; every wait polls that file or the log
with a deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import textwrap
import urllib.request
from pathlib import Path

from conftest import APPS, bourbon_exe, run_bourbon
from procs import alive, wait_children, wait_until

TIMEOUT = 15.0

HOOKS = """
import os

MARKS = os.environ["MARKS"]


def _mark(*parts):
    with open(MARKS, "a") as f:
        f.write(" ".join(str(p) for p in parts) + "\\n")


def on_starting(server):
    _mark("on_starting", server.pid, server.cfg.workers, server.cfg.accesslog)


def nworkers_changed(server, new, old):
    _mark("nworkers_changed", new, old)


def when_ready(server):
    _mark("when_ready", server.pid)
    server.log.info("when_ready says hello from %s", "the hook")


def pre_fork(server, worker):
    _mark("pre_fork", worker.age, worker.pid)


def post_fork(server, worker):
    _mark("post_fork", worker.age, worker.pid, os.getpid(), worker.ppid)


def post_worker_init(worker):
    _mark("post_worker_init", worker.pid)


def pre_request(worker, req):
    _mark("pre_request", worker.pid, req.method, req.path)


def post_request(worker, req, environ, resp):
    _mark("post_request", worker.pid, req.path, resp.status_code)


def worker_int(worker):
    _mark("worker_int", worker.pid)


def worker_exit(server, worker):
    _mark("worker_exit", worker.pid)


def child_exit(server, worker):
    _mark("child_exit", worker.pid)


def on_reload(server):
    _mark("on_reload", server.num_workers)


def on_exit(server):
    _mark("on_exit", server.pid)
"""

ENV_APP = """
import os


def app(environ, start_response):
    body = os.environ.get("GREETING", "unset").encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def marks(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines()]


def wait_marks(path: Path, predicate, what: str) -> list[list[str]]:
    return wait_until(lambda: (m := marks(path)) and predicate(m) and m, TIMEOUT, what)


def names(ms: list[list[str]]) -> list[str]:
    return [m[0] for m in ms]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        return resp.status, resp.read()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_gunicorn_conf_py_settings_and_hooks(start_server, tmp_path):
    """Settings from the executed file, and every hook at its moment: start, requests,
    TTIN, HUP and a fast stop (SIGINT)."""
    marks_file = tmp_path / "marks"
    conf = write(
        tmp_path / "gunicorn.conf.py",
        HOOKS
        + """
workers = len(["computed", "in Python"])
raw_env = ["GREETING=from-gunicorn-conf"]
accesslog = "-"
proc_name = "migrated"
keepalive = 1
not_a_setting = "ignored, as gunicorn ignores it"
""",
    )
    write(tmp_path / "env_app.py", ENV_APP)
    srv = start_server("env_app:app", "-c", str(conf), cwd=tmp_path, env={"MARKS": str(marks_file)})
    master = srv.pid
    ms = wait_marks(marks_file, lambda m: names(m).count("post_worker_init") == 2, "2 workers")
    order = names(ms)
    # Master hooks in gunicorn's order, before any worker.
    assert order[:3] == ["nworkers_changed", "on_starting", "when_ready"], ms
    assert ms[0][1:] == ["2", "None"]
    assert ms[1][1:] == [str(master), "2", "-"]
    assert ms[2][1:] == [str(master)]
    pre = [m for m in ms if m[0] == "pre_fork"]
    assert [m[1:] for m in pre] == [["1", "[booting]"], ["2", "[booting]"]]
    workers = wait_children(master, lambda k: len(k) == 2, "two workers")
    for m in (m for m in ms if m[0] == "post_fork"):
        # pid set in the worker, and it is the worker's own; ppid is the master.
        assert m[2] == m[3] and int(m[2]) in workers and m[4] == str(master), m
    assert {int(m[1]) for m in ms if m[0] == "post_worker_init"} == workers
    assert "when_ready says hello from the hook" in srv.wait_for_log("when_ready says hello")

    # A request: raw_env reached the application; pre/post_request around it.
    assert get(srv.url + "/path?q=1") == (200, b"from-gunicorn-conf")
    ms = wait_marks(marks_file, lambda m: "post_request" in names(m), "post_request")
    pre_req = next(m for m in ms if m[0] == "pre_request")
    post_req = next(m for m in ms if m[0] == "post_request")
    assert pre_req[2:] == ["GET", "/path"] and post_req[2:] == ["/path", "200"]
    assert int(pre_req[1]) in workers

    # TTIN: one more worker, announced.
    os.kill(master, signal.SIGTTIN)
    wait_marks(marks_file, lambda m: ["nworkers_changed", "3", "2"] in m, "nworkers_changed 3")
    wait_children(master, lambda k: len(k) == 3, "three workers")

    # HUP: on_reload with the new settings, then a new set of workers; the old ones exit
    # (worker_exit in them, child_exit in the master).
    before = len(marks(marks_file))
    os.kill(master, signal.SIGHUP)
    ms = wait_marks(
        marks_file,
        lambda m: (
            names(m[before:]).count("child_exit") >= 3
            and names(m[before:]).count("post_worker_init") >= 2
        ),
        "reload",
    )
    new = names(ms[before:])
    assert new.index("on_reload") < new.index("pre_fork"), new
    # The file was executed again: workers = 2 again after the reload.
    assert ["nworkers_changed", "2", "3"] in ms[before:]
    exited = {m[1] for m in ms[before:] if m[0] == "worker_exit"}
    reaped = {m[1] for m in ms[before:] if m[0] == "child_exit"}
    assert {str(w) for w in workers} <= exited and exited <= reaped, (exited, reaped)

    # SIGINT (to the master only): a fast stop; worker_int and worker_exit in each worker,
    # child_exit for each, on_exit last.
    survivors = wait_children(master, lambda k: len(k) == 2, "two workers after reload")
    before = len(marks(marks_file))
    os.kill(master, signal.SIGINT)
    assert srv.proc.wait(TIMEOUT) == 0
    ms = marks(marks_file)[before:]
    assert {m[1] for m in ms if m[0] == "worker_int"} == {str(p) for p in survivors}, ms
    assert {m[1] for m in ms if m[0] == "child_exit"} == {str(p) for p in survivors}, ms
    assert ms[-1] == ["on_exit", str(master)], ms


def test_hooks_that_raise(tmp_path):
    """on_starting or when_ready raising stops the start (exit 1, as gunicorn); post_fork
    raising fails the worker's boot (exit 3, which stops the master); tracebacks are
    logged."""
    conf = write(
        tmp_path / "g1.py",
        """
        def on_starting(server):
            raise RuntimeError("no start today")
        """,
    )
    r = run_bourbon("-c", str(conf), "hello_app:app", "-b", "127.0.0.1:0")
    assert r.returncode == 1, r.stderr
    assert "Exception in on_starting hook" in r.stderr
    assert "RuntimeError: no start today" in r.stderr
    assert "Listening at" not in r.stderr

    conf = write(
        tmp_path / "g1b.py",
        """
        def when_ready(server):
            raise RuntimeError("not ready")


        def pre_fork(server, worker):
            raise AssertionError("no worker may be forked")
        """,
    )
    r = run_bourbon("-c", str(conf), "hello_app:app", "-b", "127.0.0.1:0")
    assert r.returncode == 1, r.stderr
    assert "Exception in when_ready hook" in r.stderr
    assert "Listening at" in r.stderr and "Booting worker" not in r.stderr
    assert "no worker may be forked" not in r.stderr

    conf = write(
        tmp_path / "g2.py",
        """
        def post_fork(server, worker):
            raise ValueError("bad fork")
        """,
    )
    r = run_bourbon("-c", str(conf), "hello_app:app", "-b", "127.0.0.1:0", "-w", "1")
    assert r.returncode == 3, r.stderr
    assert "Exception in post_fork hook" in r.stderr
    assert "ValueError: bad fork" in r.stderr


def test_worker_abort_on_timeout(start_server, tmp_path):
    """A worker stuck in Python past --timeout: its stacks are written, then worker_abort
    runs in it before the master kills it."""
    marks_file = tmp_path / "marks"
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """
        import os

        timeout = 1


        def worker_abort(worker):
            with open(os.environ["MARKS"], "a") as f:
                f.write(f"worker_abort {worker.pid} {os.getpid()}\\n")
        """,
    )
    write(
        tmp_path / "spin_app.py",
        """
        def app(environ, start_response):
            if environ["PATH_INFO"] == "/spin":
                while True:
                    pass
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        """,
    )
    srv = start_server(
        "spin_app:app", "-c", str(conf), cwd=tmp_path, env={"MARKS": str(marks_file)}
    )
    (worker,) = wait_children(srv.pid, lambda k: len(k) == 1, "one worker")
    s = srv.connect()
    try:
        s.sendall(b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n")
        ms = wait_marks(marks_file, lambda m: "worker_abort" in names(m), "worker_abort")
    finally:
        s.close()
    assert ms[0] == ["worker_abort", str(worker), str(worker)]
    srv.wait_for_log(rf"WORKER TIMEOUT \(pid:{worker}\)")
    # A replacement serves.
    wait_children(srv.pid, lambda k: len(k) == 1 and worker not in k, "a replacement")
    assert get(srv.url + "/") == (200, b"ok")


def test_gunicorn_cmd_args(start_server, tmp_path):
    """GUNICORN_CMD_ARGS counts after the config file and before the command line, and may
    name the config file."""
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """
        workers = 3
        threads = 3
        backlog = 33
        """,
    )
    env = {"GUNICORN_CMD_ARGS": f"-c {conf} --workers=2 --threads 2"}
    r = run_bourbon("--print-config", "--threads", "4", env=env)
    assert r.returncode == 0, r.stderr
    assert "\nworkers = 2\n" in r.stdout
    assert "\nthreads = 4\n" in r.stdout
    assert "\nbacklog = 33\n" in r.stdout
    # And a real start with it: two workers.
    srv = start_server("hello_app:app", env=env)
    wait_children(srv.pid, lambda k: len(k) == 2, "two workers from GUNICORN_CMD_ARGS")
    assert get(srv.url + "/") == (200, b"Hello, world!")


def unix_get(path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(str(path))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


def test_uwsgi_ini(launch, tmp_path):
    """A uwsgi.ini as a uWSGI user keeps it: [uwsgi] section, %d and $(VAR) placeholders,
    wsgi-file + callable, repeated env keys, processes, a unix http-socket with
    chmod-socket; flags bourbon already obeys are accepted."""
    site = tmp_path / "site"
    site.mkdir()
    write(site / "wsgi_mod.py", ENV_APP)
    ini = write(
        tmp_path / "uwsgi.ini",
        """
        [uwsgi]
        chdir = %d
        http-socket = %dapp.sock
        chmod-socket = 660
        wsgi-file = %dsite/wsgi_mod.py
        callable = app
        processes = 2
        master = true
        vacuum = true
        die-on-term = true
        enable-threads = true
        need-app = true
        env = GREETING=$(TEST_GREETING)
        env = OTHER=2
        """,
    )
    sock = tmp_path / "app.sock"
    srv = launch([bourbon_exe(), "--ini", str(ini)], cwd=APPS, env={"TEST_GREETING": "hi-uwsgi"})
    assert unix_get(sock) == b"hi-uwsgi"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    wait_children(srv.pid, lambda k: len(k) == 2, "two processes")
    assert srv.stop() == 0
    assert not sock.exists()


def test_uwsgi_flags_on_the_command_line(launch, tmp_path):
    """uWSGI's flags on bourbon's command line."""
    srv = launch(
        [
            bourbon_exe(),
            "--http",
            "127.0.0.1:0",
            "--module",
            "hello_app",
            "--callable",
            "app",
            "--processes",
            "2",
            "--master",
            "--enable-threads",
            "--need-app",
            "--die-on-term",
            "--harakiri",
            "30",
            "--max-requests",
            "1000",
        ]
    )
    assert get(srv.url + "/") == (200, b"Hello, world!")
    wait_children(srv.pid, lambda k: len(k) == 2, "two processes")


def test_words_with_no_meaning_here_exit_2_in_one_line(tmp_path):
    """One line on stderr naming the word and the fix, exit 2."""
    conf = write(tmp_path / "gunicorn.conf.py", 'worker_class = "gevent"\n')
    for args, want in [
        (["--socket", "/tmp/x.sock"], "--socket: the uwsgi protocol is not served yet"),
        (["-k", "gevent"], "-k gevent: bourbon has one worker type (WSGI on threads"),
        (["--static-map2", "/static=/srv"], "--static-map2: bourbon maps a prefix"),
        (["--certfile", "c.pem"], "--certfile: bourbon does not terminate TLS"),
        (["-c", str(conf)], "gunicorn.conf.py: worker_class gevent: bourbon has one worker"),
        (["--proceses", "2"], "unknown option --proceses (did you mean --processes?)"),
    ]:
        r = run_bourbon(*args, "hello_app:app")
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and want in lines[0], (args, r.stderr)


def test_config_file_that_raises(tmp_path):
    conf = write(tmp_path / "gunicorn.conf.py", "workers = 1 / 0\n")
    r = run_bourbon("-c", str(conf), "hello_app:app")
    assert r.returncode == 2, r.stderr
    assert "ZeroDivisionError" in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {conf}: cannot read the config file: "), last
    assert "division by zero" in last


def test_warnings_are_logged_and_the_server_serves(start_server, tmp_path):
    """A misspelt BOURBON_* variable and a gunicorn setting with no effect: one warning line
    each, and the server serves."""
    conf = write(tmp_path / "gunicorn.conf.py", "enable_backlog_metric = True\nspew = False\n")
    srv = start_server("hello_app:app", "-c", str(conf), env={"BOURBON_WROKERS": "3"})
    srv.wait_for_log(r"BOURBON_WROKERS is not a bourbon setting .*did you mean BOURBON_WORKERS\?")
    srv.wait_for_log(r"enable_backlog_metric: has no effect in bourbon")
    assert "spew" not in srv.log
    assert get(srv.url + "/") == (200, b"Hello, world!")


def test_python_module_config_from_the_current_directory(tmp_path):
    """``-c python:MODULE`` imports a module found from the directory bourbon runs in."""
    write(tmp_path / "gconf.py", "workers = 5\nkeepalive = 7\n")
    r = run_bourbon("-c", "python:gconf", "--print-config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "\nworkers = 5\n" in r.stdout and "\nkeep_alive = 7\n" in r.stdout


def test_pre_exec_on_usr2(start_server, tmp_path):
    """pre_exec runs in the master on USR2, before the new master starts."""
    marks_file = tmp_path / "marks"
    conf = write(
        tmp_path / "gunicorn.conf.py",
        """
        import os


        def pre_exec(server):
            with open(os.environ["MARKS"], "a") as f:
                f.write(f"pre_exec {server.pid} {os.getpid()}\\n")
        """,
    )
    srv = start_server("hello_app:app", "-c", str(conf), env={"MARKS": str(marks_file)})
    old = srv.pid
    new = None
    try:
        os.kill(old, signal.SIGUSR2)
        line = srv.wait_for_log(r"usr2; started a new master \(pid:\d+\)")
        new = int(line.split("(pid:")[1].split(")")[0])
        assert marks(marks_file)[0] == ["pre_exec", str(old), str(old)]
        srv.wait_for_log(rf"\[{new}\] \[INFO\] Arbiter booted")
        os.kill(new, signal.SIGTERM)
        wait_until(lambda: not alive(new), TIMEOUT, "the new master stopped")
    finally:
        if new is not None and alive(new):
            os.kill(new, signal.SIGKILL)


def test_gunicorn_conf_py_in_the_directory_is_not_read_unless_named(tmp_path):
    """gunicorn reads ./gunicorn.conf.py by default; bourbon says it does not."""
    write(tmp_path / "gunicorn.conf.py", "workers = 7\n")
    r = run_bourbon("--check-config", "--pythonpath", str(APPS), "hello_app:app", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "./gunicorn.conf.py is not read unless named: pass -c gunicorn.conf.py" in r.stderr
