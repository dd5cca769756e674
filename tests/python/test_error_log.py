"""The error log (issue 14, point 2): ``wsgi.errors`` and Python ``logging`` records reach it,
``--capture-output``, ``--log-config``, ``--log-format json``, and SIGUSR1 reopening every log
file in the master and every worker after a logrotate-style rename.

Each server writes its error log to a file, and readiness and lines are read from that file
(every wait bounded in time, no sleeps). Servers run in their own process group and are
killed by it whatever happens.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import APPS, base_env, bourbon_exe, run_bourbon
from procs import children, wait_until

TIMEOUT = 15.0
WSGI = "logging_app:app"
ASGI = "logging_asgi:app"


class Logged:
    """bourbon with ``--error-logfile FILE`` (and whatever ``args`` add)."""

    def __init__(self, args: list[str], errlog: Path, env: dict[str, str] | None = None):
        self.errlog = errlog
        # The socket is bound here and handed over (-b fd://N), so the address is known
        # whatever --log-level lets into the log; requests wait in its backlog until a
        # worker serves.
        sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"http://127.0.0.1:{sock.getsockname()[1]}"
        fd = sock.fileno()
        try:
            self.proc = subprocess.Popen(
                [bourbon_exe(), *args, "-b", f"fd://{fd}", "--error-logfile", str(errlog)],
                cwd=str(APPS),
                env=base_env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=(fd,),
            )
        finally:
            sock.close()
        if not any(a == "--log-level" for a in args):
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
        return self.address

    def get(self, target: str, status: int = 200) -> str:
        try:
            with urllib.request.urlopen(self.url() + target, timeout=TIMEOUT) as resp:
                assert resp.status == status
                return resp.read().decode()
        except urllib.error.HTTPError as e:
            assert e.code == status, e
            return ""

    def stop(self) -> int:
        os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(TIMEOUT)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(TIMEOUT)


@pytest.fixture
def logged():
    """``logged(args, errlog, env=None)`` starts a :class:`Logged`; all are killed at teardown."""
    started: list[Logged] = []

    def start(args: list[str], errlog: Path, env: dict[str, str] | None = None) -> Logged:
        srv = Logged(args, errlog, env)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.kill()


def token() -> str:
    return uuid.uuid4().hex[:12]


# ---- wsgi.errors and logging records ----------------------------------------------------


def test_wsgi_errors_reach_the_error_log_file(tmp_path: Path, logged):
    srv = logged([WSGI], tmp_path / "error.log")
    t = token()
    srv.get(f"/errors?t={t}")
    text = srv.wait_for(f"errors-second {t}")
    assert f"errors-line {t}\n" in text
    assert f"errors-first {t}\nerrors-second {t}\n" in text


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_logging_records_reach_the_error_log_at_the_log_level(tmp_path: Path, logged, app):
    srv = logged([app], tmp_path / "error.log")
    t = token()
    worker = int(srv.get(f"/log?t={t}"))
    text = srv.wait_for(f"ValueError: logged-boom {t}")
    # gunicorn's shape, the worker's pid, the logger's name; at the default level (info)
    # debug records stay out.
    assert f"] [{worker}] [INFO] app.log: info-record {t}\n" in text
    assert f"] [{worker}] [WARNING] app.log: warning-record {t}\n" in text
    assert f"] [{worker}] [ERROR] app.log: exception-record {t}\nTraceback (most recent" in text
    assert f"debug-record {t}" not in text


@pytest.mark.parametrize("level", ["debug", "warning"])
def test_log_level_filters_the_applications_records(tmp_path: Path, logged, level):
    srv = logged([WSGI, "--log-level", level], tmp_path / "error.log")
    t = token()
    srv.get(f"/log?t={t}")
    text = srv.wait_for(f"warning-record {t}")
    assert (f"debug-record {t}" in text) == (level == "debug")
    assert (f"info-record {t}" in text) == (level == "debug")


def test_django_logging_configured_at_import_is_kept(tmp_path: Path, logged):
    django_log = tmp_path / "django.log"
    srv = logged(
        ["django_logging_app:application"],
        tmp_path / "error.log",
        env={"DJANGO_LOG_FILE": str(django_log)},
    )
    t = token()
    srv.get(f"/?t={t}")
    wait_until(
        lambda: django_log.exists() and f"django-record {t}" in django_log.read_text(),
        what="the record in Django's own file",
    )
    assert f"DJANGO-FORMAT INFO site.views django-record {t}" in django_log.read_text()
    assert f"django-record {t}" not in srv.text()


def test_django_without_logging_sends_its_request_errors_to_the_error_log(tmp_path: Path, logged):
    # Django's default LOGGING gives only its own loggers handlers (a console one for DEBUG,
    # mail_admins): its "Internal Server Error" propagates to the root, bourbon's.
    srv = logged(["django_logging_app:application"], tmp_path / "error.log")
    t = token()
    srv.get(f"/boom?t={t}", status=500)
    text = srv.wait_for(f"ValueError: django-boom {t}")
    assert "[ERROR] django.request: Internal Server Error: /boom\nTraceback" in text
    assert f"django-record {t}" not in text
    srv.get(f"/?t={t}")
    assert f"[INFO] site.views: django-record {t}\n" in srv.wait_for(f"django-record {t}")


# ---- --capture-output -------------------------------------------------------------------


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_capture_output_sends_prints_fd_writes_and_subprocesses_to_the_error_log(
    tmp_path: Path, logged, app
):
    srv = logged([app, "--capture-output", "--preload"], tmp_path / "error.log")
    # The master imported the application (--preload): its print is captured too.
    srv.wait_for(f"imported in {srv.pid}\n")
    t = token()
    srv.get(f"/print?t={t}")
    srv.wait_for(f"child-stderr {t}")
    for what in ("print-stdout", "print-stderr", "fd1-write", "fd2-write", "child-stdout"):
        assert f"{what} {t}\n" in srv.wait_for(f"{what} {t}"), what


def test_without_capture_output_the_applications_stdout_is_not_in_the_error_log(
    tmp_path: Path, logged
):
    srv = logged([WSGI], tmp_path / "error.log")
    t = token()
    srv.get(f"/print?t={t}")
    srv.get(f"/errors?t={t}")
    text = srv.wait_for(f"errors-second {t}")
    assert f"print-stdout {t}" not in text and f"fd1-write {t}" not in text


def test_check_config_keeps_its_verdict_on_the_terminal(tmp_path: Path):
    errlog = tmp_path / "error.log"
    r = run_bourbon(
        WSGI, "--capture-output", "--error-logfile", str(errlog), "--check-config", timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "configuration and application OK" in r.stdout
    assert "configuration and application OK" not in (errlog.read_text() if errlog.exists() else "")


# ---- --log-config -----------------------------------------------------------------------


def dict_config(app_log: Path) -> dict:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "CFG %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(app_log),
                "formatter": "plain",
            },
            "bourbon": {"class": "bourbon.ErrorLogHandler"},
        },
        "loggers": {"app": {"handlers": ["file", "bourbon"], "level": "DEBUG"}},
    }


def toml_config(app_log: Path) -> str:
    return f"""version = 1
[formatters.plain]
format = "CFG %(levelname)s %(name)s %(message)s"
[handlers.file]
class = "logging.FileHandler"
filename = "{app_log}"
formatter = "plain"
[handlers.bourbon]
class = "bourbon.ErrorLogHandler"
[loggers.app]
handlers = ["file", "bourbon"]
level = "DEBUG"
"""


def ini_config(app_log: Path) -> str:
    return f"""[loggers]
keys = root, app
[handlers]
keys = file, bourbon
[formatters]
keys = plain
[logger_root]
handlers =
[logger_app]
qualname = app
handlers = file, bourbon
level = DEBUG
propagate = 0
[handler_file]
class = FileHandler
args = ({str(app_log)!r},)
formatter = plain
[handler_bourbon]
class = bourbon.ErrorLogHandler
args = ()
[formatter_plain]
format = CFG %(levelname)s %(name)s %(message)s
"""


@pytest.mark.parametrize(
    "flag,name",
    [
        ("--log-config", "logging.json"),
        ("--log-config", "logging.toml"),
        ("--log-config", "logging.ini"),
        ("--log-config-json", "logging.json"),  # gunicorn's spelling
    ],
)
@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_log_config_configures_python_logging(tmp_path: Path, logged, app, flag, name):
    app_log = tmp_path / "app.log"
    conf = tmp_path / name
    if name.endswith(".json"):
        conf.write_text(json.dumps(dict_config(app_log)))
    elif name.endswith(".toml"):
        conf.write_text(toml_config(app_log))
    else:
        conf.write_text(ini_config(app_log))
    srv = logged([app, flag, str(conf)], tmp_path / "error.log")
    t = token()
    worker = int(srv.get(f"/log?t={t}"))
    wait_until(
        lambda: app_log.exists() and f"logged-boom {t}" in app_log.read_text(),
        what="the records in the configured file",
    )
    # The configuration's level (DEBUG) and format, in the configured file...
    text = app_log.read_text()
    assert f"CFG DEBUG app.log debug-record {t}\n" in text
    assert f"CFG INFO app.log info-record {t}\n" in text
    # ... and through bourbon.ErrorLogHandler in the error log, at bourbon's --log-level.
    err = srv.wait_for(f"exception-record {t}")
    assert f"] [{worker}] [INFO] app.log: info-record {t}\n" in err
    assert f"debug-record {t}" not in err
    # The configured logger does not propagate twice into the root's handler.
    assert err.count(f"info-record {t}") == 1


def test_gunicorn_config_file_names_capture_output_and_logconfig_json(tmp_path: Path, logged):
    app_log = tmp_path / "app.log"
    conf = tmp_path / "logging.json"
    conf.write_text(json.dumps(dict_config(app_log)))
    gconf = tmp_path / "gunicorn.conf.py"
    gconf.write_text(f"capture_output = True\nlogconfig_json = {str(conf)!r}\n")
    srv = logged([WSGI, "-c", str(gconf)], tmp_path / "error.log")
    t = token()
    srv.get(f"/print?t={t}")
    srv.get(f"/log?t={t}")
    srv.wait_for(f"child-stderr {t}")
    wait_until(
        lambda: app_log.exists() and f"CFG INFO app.log info-record {t}" in app_log.read_text(),
        what="the record in the configured file",
    )


@pytest.mark.parametrize(
    "name,content,says",
    [
        ("missing.json", None, "cannot read it"),
        ("bad.json", "{not json", "JSONDecodeError"),
        ("bad.toml", "version = ", "TOMLDecodeError"),
        ("list.json", "[1, 2]", "must hold one object"),
        (
            "handler.json",
            json.dumps({"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}),
            "Unable to configure handler 'h'",
        ),
        ("empty.ini", "[loggers]\nkeys = root\n", "needs the sections [handlers], [formatters]"),
    ],
)
def test_a_bad_log_config_is_one_line_and_exit_2(tmp_path: Path, name, content, says):
    conf = tmp_path / name
    if content is not None:
        conf.write_text(content)
    r = run_bourbon(WSGI, "-b", "127.0.0.1:0", "--log-config", str(conf), timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if "--log-config" in ln]
    assert len(lines) == 1, r.stderr
    assert f"--log-config {conf}: " in lines[0] and says in lines[0], lines[0]
    assert "fix the file" in lines[0]
    assert "Booting worker" not in r.stderr


def test_a_log_config_with_an_unknown_extension_is_refused_by_the_settings(tmp_path: Path):
    r = run_bourbon(WSGI, "--log-config", str(tmp_path / "logging.yaml"))
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "--log-config" in line and ".json or .toml" in line


# ---- --log-format json ------------------------------------------------------------------


def json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as a JSON object (a line that is not one fails the test)."""
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}\nin:\n{text}") from None
    return out


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_log_format_json_is_one_object_per_line(tmp_path: Path, logged, app):
    errlog = tmp_path / "error.log"
    srv = logged([app, "--log-format", "json", "-w", "2"], errlog)
    wait_until(lambda: len(children(srv.pid)) == 2, what="two workers")
    srv.wait_for("Booting worker", count=2)
    t = token()
    worker = int(srv.get(f"/log?t={t}"))
    srv.get(f"/raise?t={t}", status=500)
    if app == WSGI:
        srv.get(f"/errors?t={t}")
        srv.wait_for(f"errors-second {t}")
    srv.wait_for(f"app-boom {t}")
    assert srv.stop() == 0
    records = json_lines(errlog.read_text())
    for r in records:
        assert set(r) >= {"time", "level", "pid", "message"}, r
        assert r["time"].endswith("Z") and "T" in r["time"], r
    by_message = {r["message"]: r for r in records}
    # The server's own lines, from the master and the workers.
    boots = [r for r in records if r["message"].startswith("Booting worker with pid: ")]
    assert len(boots) == 2 and all(r["message"].endswith(f" {r['pid']}") for r in boots)
    assert any(r["message"].startswith("Listening at: ") and r["pid"] == srv.pid for r in records)
    stops = [r for r in records if r["message"].endswith("finishing requests in flight")]
    assert {r["pid"] for r in stops} == children_pids(boots)
    assert any(r["message"] == "Shutting down: Master" for r in records)
    # The application's records, with their logger; the traceback is one string.
    info = by_message[f"info-record {t}"]
    assert (info["level"], info["logger"], info["pid"]) == ("INFO", "app.log", worker)
    exc = by_message[f"exception-record {t}"]
    assert exc["level"] == "ERROR"
    assert exc["traceback"].startswith("Traceback (most recent call last):\n")
    assert exc["traceback"].endswith(f"ValueError: logged-boom {t}")
    # An exception out of the application: a headline with the whole traceback.
    (boom,) = [r for r in records if f"app-boom {t}" in r.get("traceback", "")]
    assert boom["level"] == "ERROR" and "logger" not in boom
    assert boom["traceback"].endswith(f"RuntimeError: app-boom {t}\nsecond line")
    if app == WSGI:
        # wsgi.errors: each write's complete lines are one record.
        assert by_message[f"errors-line {t}"]["logger"] == "wsgi.errors"
        assert f"errors-first {t}\nerrors-second {t}" in by_message


def test_log_format_json_from_a_websocket(tmp_path: Path, logged):
    from websockets.sync.client import connect

    errlog = tmp_path / "error.log"
    srv = logged([ASGI, "--log-format", "json"], errlog)
    t = token()
    with connect(srv.url().replace("http://", "ws://") + f"/log?t={t}", open_timeout=TIMEOUT) as ws:
        worker = int(ws.recv(timeout=TIMEOUT))
    srv.wait_for(f"ws-boom {t}")
    records = json_lines(errlog.read_text())
    by_message = {r["message"]: r for r in records}
    info = by_message[f"info-record {t}"]
    assert (info["level"], info["logger"], info["pid"]) == ("INFO", "app.log", worker)
    (boom,) = [r for r in records if f"ws-boom {t}" in r.get("traceback", "")]
    assert boom["message"] == "Exception in ASGI application" and boom["pid"] == worker
    assert boom["traceback"].endswith(f"RuntimeError: ws-boom {t}")


def children_pids(boots: list[dict]) -> set[int]:
    return {int(r["message"].rsplit(" ", 1)[1]) for r in boots}


def test_log_format_json_on_stderr(start_server):
    # Without --error-logfile the objects go to stderr (the fixture reads it).
    srv = start_server("hello_app:app", "--log-format", "json")
    assert srv.stop() == 0
    records = json_lines(srv.log)
    assert any(r["message"] == "Shutting down: Master" for r in records), records


def test_a_bad_log_format_is_refused():
    r = run_bourbon("--log-format", "yaml", WSGI)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "--log-format" in line and "text, json" in line


# ---- SIGUSR1 after logrotate ------------------------------------------------------------


@pytest.mark.parametrize("app", [WSGI, ASGI])
def test_usr1_reopens_every_log_file_in_the_master_and_every_worker(tmp_path: Path, logged, app):
    errlog, access = tmp_path / "error.log", tmp_path / "access.log"
    srv = logged([app, "-w", "2", "--capture-output", "--access-logfile", str(access)], errlog)
    workers = wait_until(lambda: (k := children(srv.pid)) and len(k) == 2 and k, what="workers")
    srv.wait_for("Booting worker", count=2)
    before = token()
    srv.get(f"/print?t={before}")
    srv.wait_for(f"child-stderr {before}")
    # logrotate: move the files away, then tell the master.
    errlog.rename(tmp_path / "error.log.1")
    access.rename(tmp_path / "access.log.1")
    os.kill(srv.pid, signal.SIGUSR1)
    for pid in (srv.pid, *workers):
        srv.wait_for(f"[{pid}] [INFO] Handling signal: usr1; log files reopened")
    # Requests until both workers have served one (bounded: the kernel picks the worker).
    after = token()
    served: set[int] = set()
    for i in range(200):
        served.add(int(srv.get(f"/log?t={after}-{i}")))
        srv.get(f"/print?t={after}-{i}")
        if served == workers:
            break
    assert served == workers
    text = srv.wait_for(f"child-stderr {after}-{i}")
    for pid in workers:
        # Each worker's logging records, and its captured output, are in the new file.
        assert f"] [{pid}] [INFO] app.log: info-record {after}" in text
    assert f"print-stdout {after}" in text and f"fd2-write {after}" in text
    wait_until(
        lambda: access.exists() and access.read_text().count(f"/log?t={after}-") == i + 1,
        what="the access lines in the new file",
    )
    old = (tmp_path / "error.log.1").read_text()
    assert after not in old and "log files reopened" not in old
    assert after not in (tmp_path / "access.log.1").read_text()
    # The master's own lines go to the new file too.
    assert srv.stop() == 0
    assert "Shutting down: Master" in errlog.read_text()
