"""End-to-end tests of bourbon's command line and settings (issue "CLI and settings").

Every test starts the installed ``bourbon`` (or ``python -m bourbon``) as a user would and
checks what it does: the app it serves, the sockets it listens on, the exit codes and the
messages it prints. Readiness always comes from the "Listening at:" / "Using worker" log lines.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import rawhttp
from conftest import APPS, EXAMPLE, ROOT, base_env, bourbon_exe, run_bourbon

SOCK_TIMEOUT = 10.0


# --------------------------------------------------------------------------------------------
# helpers


def toml_loads(text: str) -> dict:
    """Parse TOML with the stdlib (3.11+) or tomli (3.10), whichever this Python has."""
    try:
        import tomllib
    except ModuleNotFoundError:  # CPython 3.10
        import tomli as tomllib
    return tomllib.loads(text)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory under /tmp (AF_UNIX paths are limited to ~107 bytes)."""
    d = tempfile.mkdtemp(prefix="bbcli", dir="/tmp")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def http_get(sock: socket.socket, path: str = "/") -> rawhttp.Response:
    with sock:
        sock.settimeout(SOCK_TIMEOUT)
        return rawhttp.request(sock, rawhttp.get(path, extra="Connection: close\r\n"))


def get_json(sock: socket.socket, path: str = "/") -> dict:
    resp = http_get(sock, path)
    assert resp.status == 200, resp
    return json.loads(resp.body)


def unix_connect(path: str | Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(SOCK_TIMEOUT)
    s.connect(str(path))
    return s


def tcp_connect(url: str) -> socket.socket:
    assert url.startswith("http://"), url
    host, _, port = url[len("http://") :].rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=SOCK_TIMEOUT)


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


def assert_usage_error(proc: subprocess.CompletedProcess, *must_contain: str) -> str:
    """Exit code 2 and exactly one non-empty stderr line containing every given string."""
    lines = stderr_lines(proc)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    for text in must_contain:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def print_config(*args: str, env: dict[str, str] | None = None, cwd: Path = APPS) -> dict:
    proc = run_bourbon(*args, "--print-config", env=env, cwd=cwd, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return toml_loads(proc.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def write_module(directory: Path, name: str, tag: str, extra: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(
        f"{extra}\n"
        "import os\n\n\n"
        "def app(environ, start_response):\n"
        f"    body = ({tag!r} + ' ' + os.getcwd()).encode()\n"
        "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
        "    return [body]\n"
    )


# --------------------------------------------------------------------------------------------
# 1. APP forms


@pytest.mark.parametrize(
    ("spec", "tag"),
    [
        ("cli_app:app", "app"),
        ("cli_app", "application"),
        ("cli_app:application", "application"),
        ("cli_app:make_app()", "factory"),
    ],
)
def test_app_forms(start_server, spec, tag):
    srv = start_server(spec)
    assert get_json(srv.connect())["tag"] == tag


def test_python_dash_m_bourbon(launch):
    srv = launch([sys.executable, "-m", "bourbon", "cli_app:app", "-b", "127.0.0.1:0"])
    data = get_json(srv.connect())
    assert data["tag"] == "app"
    # Served by the worker the master forked.
    ppid = Path(f"/proc/{data['pid']}/stat").read_text().rsplit(") ", 1)[1].split()[1]
    assert ppid == str(srv.pid)
    assert srv.stop() == 0


def test_python_dash_m_bourbon_factory_and_version(launch):
    srv = launch([sys.executable, "-m", "bourbon", "cli_app:make_app()", "-b", "127.0.0.1:0"])
    assert get_json(srv.connect())["tag"] == "factory"
    proc = subprocess.run(
        [sys.executable, "-m", "bourbon", "--version"],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    assert importlib.metadata.version("bourbon") in proc.stdout


# --------------------------------------------------------------------------------------------
# 2. --chdir, --pythonpath, -e, --root-path


def test_chdir(start_server, tmp_path):
    site, other = tmp_path / "site", tmp_path / "other"
    write_module(site, "cli_chdir_mod", "from-chdir")
    other.mkdir()
    # Not importable from where bourbon starts...
    proc = run_bourbon("cli_chdir_mod:app", "--check-config", cwd=other, timeout=30)
    assert proc.returncode == 4, proc.stderr
    # ...but it is once bourbon changes into its directory.
    srv = start_server("cli_chdir_mod:app", "--chdir", str(site), cwd=other)
    resp = http_get(srv.connect())
    assert resp.status == 200
    assert resp.body.decode() == f"from-chdir {site}"


def test_pythonpath_two_dirs(start_server, tmp_path):
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    other.mkdir()
    b.mkdir()
    (b / "cli_pp_helper.py").write_text("TAG = 'helper-from-b'\n")
    a.mkdir()
    (a / "cli_pp_app.py").write_text(
        "from cli_pp_helper import TAG\n\n\n"
        "def app(environ, start_response):\n"
        "    body = TAG.encode()\n"
        "    start_response('200 OK', [('Content-Length', str(len(body)))])\n"
        "    return [body]\n"
    )
    proc = run_bourbon("cli_pp_app:app", "--check-config", cwd=other, timeout=30)
    assert proc.returncode == 4, proc.stderr
    proc = run_bourbon(
        "cli_pp_app:app", "--pythonpath", str(a), "--check-config", cwd=other, timeout=30
    )
    assert proc.returncode == 4, "helper in B must not be importable without B on the path"
    srv = start_server("cli_pp_app:app", "--pythonpath", f"{a},{b}", cwd=other)
    resp = http_get(srv.connect())
    assert (resp.status, resp.body) == (200, b"helper-from-b")


def test_env_option_sets_os_environ_not_wsgi_environ(start_server):
    srv = start_server("cli_app:app", "-e", "CLI_TEST_ONE=first value", "--env", "CLI_TEST_TWO=a=b")
    data = get_json(srv.connect(), "/?env=CLI_TEST_ONE,CLI_TEST_TWO")
    assert data["os_environ"] == {"CLI_TEST_ONE": "first value", "CLI_TEST_TWO": "a=b"}
    assert "CLI_TEST_ONE" not in data["environ_keys"]
    assert "CLI_TEST_TWO" not in data["environ_keys"]
    assert not [k for k in data["environ_keys"] if k.startswith("CLI_TEST")]


def test_root_path(start_server):
    srv = start_server("cli_app:app", "--root-path", "/prefix")
    data = get_json(srv.connect(), "/prefix/some/page?x=1")
    assert data["script_name"] == "/prefix"
    assert data["path_info"] == "/some/page"
    data = get_json(srv.connect(), "/prefix")
    assert data["script_name"] == "/prefix"
    assert data["path_info"] == ""


def test_no_root_path_gives_empty_script_name(start_server):
    srv = start_server("cli_app:app")
    data = get_json(srv.connect(), "/prefix/some/page")
    assert data["script_name"] == ""
    assert data["path_info"] == "/prefix/some/page"


# --------------------------------------------------------------------------------------------
# 3. -b


def test_bind_host_port(start_server):
    port = free_port()
    srv = start_server("cli_app:app", "-b", f"127.0.0.1:{port}")
    assert srv.addresses == [f"http://127.0.0.1:{port}"]
    assert get_json(tcp_connect(srv.url))["tag"] == "app"


def test_bind_ipv6(start_server):
    if not ipv6_available():
        pytest.skip("IPv6 loopback is not available on this machine")
    srv = start_server("cli_app:app", "-b", "[::1]:0")
    assert len(srv.addresses) == 1
    assert re.fullmatch(r"http://\[::1\]:\d+", srv.addresses[0]), srv.addresses
    assert srv.addresses[0] != "http://[::1]:0"
    sock = tcp_connect(srv.addresses[0])
    assert sock.family == socket.AF_INET6
    assert get_json(sock)["tag"] == "app"


def test_bind_unix_socket_removed_at_exit(start_server, short_tmp):
    path = short_tmp / "b.sock"
    srv = start_server("cli_app:app", "-b", f"unix:{path}")
    assert srv.addresses == [f"unix:{path}"]
    assert path.is_socket()
    assert get_json(unix_connect(path))["tag"] == "app"
    assert srv.stop() == 0
    assert not path.exists(), "the unix socket file must be removed at exit"


def test_bind_unix_stale_socket_file(start_server, short_tmp):
    path = short_tmp / "stale.sock"
    # A socket file left behind by a server that died: bound, never unlinked, nobody listening.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    assert path.is_socket()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        with pytest.raises(ConnectionRefusedError):
            probe.connect(str(path))
    srv = start_server("cli_app:app", "-b", f"unix:{path}")
    assert get_json(unix_connect(path))["tag"] == "app"
    assert srv.stop() == 0
    assert not path.exists()


def test_bind_repeated(start_server, short_tmp):
    path = short_tmp / "multi.sock"
    srv = start_server(
        "cli_app:app", "-b", "127.0.0.1:0", "--bind", "127.0.0.1:0", "-b", f"unix:{path}"
    )
    tcp = [a for a in srv.addresses if a.startswith("http://")]
    assert len(tcp) == 2 and tcp[0] != tcp[1], srv.addresses
    assert f"unix:{path}" in srv.addresses
    assert len(srv.addresses) == 3
    for url in tcp:
        assert get_json(tcp_connect(url))["tag"] == "app"
    assert get_json(unix_connect(path))["tag"] == "app"


def test_default_bind_in_config():
    assert print_config()["bind"] == ["127.0.0.1:8000"]


def test_port_env_changes_default_bind():
    assert print_config(env={"PORT": "5555"})["bind"] == ["0.0.0.0:5555"]
    # Any source that sets bind wins over PORT.
    assert print_config("-b", "127.0.0.1:7001", env={"PORT": "5555"})["bind"] == ["127.0.0.1:7001"]
    assert print_config(env={"PORT": "5555", "BOURBON_BIND": "127.0.0.1:7002"})["bind"] == [
        "127.0.0.1:7002"
    ]


def test_port_env_server_listens_on_all_interfaces(launch):
    port = free_port()
    srv = launch([bourbon_exe(), "cli_app:app"], env={"PORT": str(port)})
    assert srv.addresses == [f"http://0.0.0.0:{port}"]
    sock = socket.create_connection(("127.0.0.1", port), timeout=SOCK_TIMEOUT)
    assert get_json(sock)["tag"] == "app"


# --------------------------------------------------------------------------------------------
# 4. --version, --help, --print-config, --check-config


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version(flag):
    proc = run_bourbon(flag, timeout=30)
    assert proc.returncode == 0, proc.stderr
    version = importlib.metadata.version("bourbon")
    assert re.search(rf"\bbourbon {re.escape(version)}\b", proc.stdout), proc.stdout


def _settings_flags() -> dict[str, list[str]]:
    """Setting name -> its command-line flags, from docs/settings.md."""
    text = (ROOT / "docs" / "settings.md").read_text()
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"^### `(\w+)`\n(.*?)(?=^### |\Z)", text, re.M | re.S):
        row = re.search(r"^\| Command line \| (.*) \|$", m.group(2), re.M)
        if row:
            out[m.group(1)] = re.findall(r"`(--[\w-]+)", row.group(1))
    return out


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_setting(flag):
    proc = run_bourbon(flag, timeout=30)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for f in [
        "--bind",
        "--workers",
        "--threads",
        "--keep-alive",
        "--limit-request-line",
        "--header-timeout",
        "--root-path",
        "--check-config",
        "--print-config",
        "--config",
        "--chdir",
        "--pythonpath",
        "--env",
        "--limit-request-body",
    ]:
        assert re.search(rf"(^|[\s,]){re.escape(f)}\b", out, re.M), f"{f} missing from --help"
    settings = _settings_flags()
    assert len(settings) >= 20, settings
    for name, flags in settings.items():
        if flags:
            assert any(f in out for f in flags), f"setting {name} ({flags}) missing from --help"
    assert "APP" in out


def test_print_config_round_trip(tmp_path):
    args = [
        "cli_app:make_app()",
        "--threads",
        "3",
        "-b",
        "127.0.0.1:9000",
        "-b",
        "[::1]:9001",
        "-b",
        "unix:/tmp/cli-test.sock",
        "-e",
        "A=x y",
        "-e",
        'B="quoted"',
        "--root-path",
        "/p",
        "--limit-request-body",
        "10M",
        "--keep-alive",
        "0.5",
        "--access-logformat",
        "%(h)s 'x' \"y\"",
        "--pythonpath",
        "/a,/b",
    ]
    first = run_bourbon(*args, "--print-config", timeout=30)
    assert first.returncode == 0, first.stderr
    data = toml_loads(first.stdout)
    assert data["app"] == "cli_app:make_app()"
    assert data["threads"] == 3
    assert data["bind"] == ["127.0.0.1:9000", "[::1]:9001", "unix:/tmp/cli-test.sock"]
    assert data["env"] == ["A=x y", 'B="quoted"']
    assert data["root_path"] == "/p"
    assert data["limit_request_body"] == 10 * 1024 * 1024
    assert data["keep_alive"] == 0.5
    assert data["access_logformat"] == "%(h)s 'x' \"y\""
    assert data["pythonpath"] == ["/a", "/b"]
    cfg = tmp_path / "bourbon.toml"
    cfg.write_text(first.stdout)
    second = run_bourbon("-c", str(cfg), "--print-config", timeout=30)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    # The defaults round-trip as well.
    plain = run_bourbon("--print-config", timeout=30)
    cfg.write_text(plain.stdout)
    again = run_bourbon("--config", str(cfg), "--print-config", timeout=30)
    assert again.returncode == 0, again.stderr
    assert again.stdout == plain.stdout


def test_check_config_good_app():
    proc = run_bourbon("cli_app:app", "--check-config", "-b", "127.0.0.1:0", timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "Listening at" not in proc.stdout + proc.stderr


def test_check_config_bad_app():
    proc = run_bourbon("cli_no_such_module:app", "--check-config", timeout=30)
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "cli_no_such_module" in proc.stdout + proc.stderr


def test_check_config_bad_setting():
    proc = run_bourbon("cli_app:app", "--check-config", "--threads", "0", timeout=30)
    assert_usage_error(proc, "--threads")


# --------------------------------------------------------------------------------------------
# 5. precedence


def test_precedence_print_config(tmp_path):
    cfg = tmp_path / "bourbon.toml"
    cfg.write_text('threads = 2\nroot-path = "/file"\nkeep_alive = 7\n')
    env = {"BOURBON_THREADS": "3", "BOURBON_ROOT_PATH": "/env"}
    assert print_config()["threads"] == 1
    assert print_config("-c", str(cfg))["threads"] == 2
    assert print_config("-c", str(cfg))["root_path"] == "/file"
    d = print_config("-c", str(cfg), env=env)
    assert (d["threads"], d["root_path"], d["keep_alive"]) == (3, "/env", 7)
    d = print_config("-c", str(cfg), "--threads", "4", env=env)
    assert (d["threads"], d["root_path"], d["keep_alive"]) == (4, "/env", 7)
    d = print_config("-c", str(cfg), "--root-path", "/cli", env=env)
    assert (d["threads"], d["root_path"]) == (3, "/cli")
    # BOURBON_CONFIG names the file too.
    assert print_config(env={"BOURBON_CONFIG": str(cfg)})["threads"] == 2


def test_precedence_list_settings_replace(tmp_path):
    cfg = tmp_path / "bourbon.toml"
    cfg.write_text('bind = ["127.0.0.1:1001", "127.0.0.1:1002"]\n')
    assert print_config("-c", str(cfg))["bind"] == ["127.0.0.1:1001", "127.0.0.1:1002"]
    env = {"BOURBON_BIND": "127.0.0.1:2001,127.0.0.1:2002"}
    assert print_config("-c", str(cfg), env=env)["bind"] == ["127.0.0.1:2001", "127.0.0.1:2002"]
    assert print_config("-c", str(cfg), "-b", "127.0.0.1:3001", env=env)["bind"] == [
        "127.0.0.1:3001"
    ]


def test_precedence_running_server(start_server, tmp_path):
    cfg = tmp_path / "bourbon.toml"
    cfg.write_text('root_path = "/from-file"\nthreads = 2\n')
    srv = start_server("cli_app:app", "-c", str(cfg), env={"BOURBON_ROOT_PATH": "/from-env"})
    data = get_json(srv.connect(), "/from-env/x")
    assert (data["script_name"], data["path_info"]) == ("/from-env", "/x")
    srv2 = start_server(
        "cli_app:app",
        "-c",
        str(cfg),
        "--root-path",
        "/from-cli",
        env={"BOURBON_ROOT_PATH": "/from-env"},
    )
    data = get_json(srv2.connect(), "/from-cli/y")
    assert (data["script_name"], data["path_info"]) == ("/from-cli", "/y")
    srv3 = start_server("cli_app:app", "-c", str(cfg))
    data = get_json(srv3.connect(), "/from-file/z")
    assert (data["script_name"], data["path_info"]) == ("/from-file", "/z")


def test_env_bind_used_by_running_server(launch):
    srv = launch([bourbon_exe(), "cli_app:app"], env={"BOURBON_BIND": "127.0.0.1:0"})
    assert len(srv.addresses) == 1 and srv.addresses[0].startswith("http://127.0.0.1:")
    assert get_json(tcp_connect(srv.url))["tag"] == "app"


# --------------------------------------------------------------------------------------------
# 6. usage errors


def test_unknown_flag():
    proc = run_bourbon("cli_app:app", "--frobnicate", timeout=30)
    assert_usage_error(proc, "--frobnicate")


def test_unknown_flag_near_miss_suggests():
    proc = run_bourbon("cli_app:app", "--wokers", "3", timeout=30)
    assert_usage_error(proc, "--wokers", "--workers")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--workers", "abc"], ["--workers"]),
        (["--threads", "0"], ["--threads"]),
        (["-b", "nonsense:port"], ["-b", "--bind"]),
        (["--bind", "nonsense:port"], ["--bind"]),
        (["--keep-alive", "-1"], ["--keep-alive"]),
        (["--limit-request-line", "9000"], ["--limit-request-line"]),
        (["--root-path", "no-slash"], ["--root-path"]),
        (["--log-level", "loud"], ["--log-level"]),
        (["--write-coalesce", "2"], ["--write-coalesce"]),
    ],
)
def test_bad_value(args, names):
    proc = run_bourbon("cli_app:app", *args, timeout=30)
    line = assert_usage_error(proc)
    assert any(n in line for n in names), (names, line)
    assert args[1] in line, line


def test_bad_env_value():
    proc = run_bourbon("cli_app:app", env={"BOURBON_THREADS": "x"}, timeout=30)
    assert_usage_error(proc, "BOURBON_THREADS")


def test_unknown_key_in_config_file(tmp_path):
    cfg = tmp_path / "bourbon.toml"
    cfg.write_text("threads = 2\nthreadz = 3\n")
    proc = run_bourbon("cli_app:app", "-c", str(cfg), timeout=30)
    assert_usage_error(proc, str(cfg), "threadz")


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.toml"
    proc = run_bourbon("cli_app:app", "-c", str(missing), timeout=30)
    assert_usage_error(proc, str(missing))


def test_missing_app():
    proc = run_bourbon(timeout=30)
    assert_usage_error(proc)
    proc = run_bourbon("-b", "127.0.0.1:0", "--threads", "2", timeout=30)
    assert_usage_error(proc)


# --------------------------------------------------------------------------------------------
# 7. app import failures


@pytest.mark.parametrize(
    ("spec", "expected", "traceback_file"),
    [
        (
            "cli_no_such_module:app",
            "ModuleNotFoundError: No module named 'cli_no_such_module'",
            None,
        ),
        (
            "cli_imports_missing:application",
            "ModuleNotFoundError: No module named 'cli_definitely_missing_dependency'",
            "cli_imports_missing.py",
        ),
        ("cli_broken", "RuntimeError: boom at import", "cli_broken.py"),
        ("cli_broken:application", "RuntimeError: boom at import", "cli_broken.py"),
        ("cli_app:missing_attribute", "AttributeError", None),
        ("cli_app:not_callable", "not callable", None),
        ("cli_app:failing_factory()", "ValueError: factory exploded", "cli_app.py"),
    ],
)
def test_app_import_failure(spec, expected, traceback_file):
    proc = run_bourbon(spec, "-b", "127.0.0.1:0", timeout=30)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, (proc.returncode, out)
    assert expected in out, out
    if traceback_file:
        assert "Traceback (most recent call last):" in out, out
        assert re.search(rf'File "[^"]*{re.escape(traceback_file)}", line \d+', out), out
    # A one-line summary naming the app and the error.
    exc_name = expected.split(":")[0] if ":" in expected else expected
    summary = [ln for ln in out.splitlines() if spec in ln and exc_name in ln]
    assert summary, f"no summary line naming {spec!r}:\n{out}"
    # As gunicorn: the master announces the sockets, the worker fails to load the app, and
    # the master stops with the worker's code rather than restarting it.
    assert "failed to boot (exit code 4)" in out


# --------------------------------------------------------------------------------------------
# 7b. an ASGI application is recognised: served as ASGI by default, named and refused with
# --interface wsgi

ASGI_MODULES = {
    # ASGI 3: a coroutine function (scope, receive, send)
    "function": ("async def app(scope, receive, send):\n    pass\n", "app"),
    # ASGI 3: an object whose __call__ is a coroutine function (Starlette, Django's handler)
    "instance": (
        "class App:\n"
        "    async def __call__(self, scope, receive, send):\n"
        "        pass\n\n\n"
        "app = App()\n",
        "app",
    ),
    # ... made by a factory, as FastAPI projects often do
    "factory": (
        "class App:\n"
        "    async def __call__(self, scope, receive, send):\n"
        "        pass\n\n\n"
        "def create_app():\n"
        "    return App()\n",
        "create_app()",
    ),
    # ASGI 2: a class called with the scope, whose instances are awaited with (receive, send)
    "asgi2-class": (
        "class app:\n"
        "    def __init__(self, scope):\n"
        "        self.scope = scope\n\n"
        "    async def __call__(self, receive, send):\n"
        "        pass\n",
        "app",
    ),
}


def asgi_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if "ASGI application" in ln]


def assert_one_asgi_line(proc: subprocess.CompletedProcess, spec: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, (proc.returncode, out)
    lines = asgi_lines(out)
    assert len(lines) == 1, f"expected one line naming the ASGI application:\n{out}"
    assert f"{spec} is an ASGI application" in lines[0], lines[0]
    assert "WSGI" in lines[0], lines[0]
    assert "Traceback" not in out, out
    assert "configuration and application OK" not in out, out
    return lines[0]


@pytest.mark.parametrize("kind", list(ASGI_MODULES))
@pytest.mark.parametrize("mode", ["workers", "check-config", "preload"])
def test_asgi_app_is_named_and_refused(tmp_path, kind, mode):
    source, attr = ASGI_MODULES[kind]
    (tmp_path / "asgi_probe.py").write_text(source)
    spec = f"asgi_probe:{attr}"
    extra = ["--interface", "wsgi"] + {
        "workers": ["-w", "3"],
        "check-config": ["--check-config"],
        "preload": ["--preload", "-w", "3"],
    }[mode]
    proc = run_bourbon(
        spec, "--chdir", str(tmp_path), "-b", "127.0.0.1:0", *extra, cwd=tmp_path, timeout=60
    )
    assert_one_asgi_line(proc, spec)
    if mode == "preload":
        # The master found it before forking anything.
        assert "Booting worker" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("kind", list(ASGI_MODULES))
def test_asgi_app_is_detected_by_default(tmp_path, kind):
    source, attr = ASGI_MODULES[kind]
    (tmp_path / "asgi_probe.py").write_text(source)
    proc = run_bourbon(
        f"asgi_probe:{attr}", "--chdir", str(tmp_path), "--check-config", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "configuration and application OK" in proc.stdout


def test_django_asgi_module_is_named_with_its_wsgi_sibling():
    # Four workers import it and each finds an ASGI application; the line is written once.
    spec = "mysite.asgi:application"
    proc = run_bourbon(
        spec, "--interface", "wsgi", "-b", "127.0.0.1:0", "-w", "4", cwd=EXAMPLE, timeout=120
    )
    line = assert_one_asgi_line(proc, spec)
    assert "mysite.wsgi:application" in line, line
    assert (proc.stdout + proc.stderr).count("Booting worker") == 4


WSGI_MODULES = {
    # a callable object with an ordinary __call__ (Flask, Django's WSGIHandler)
    "instance": (
        "class App:\n"
        "    def __call__(self, environ, start_response):\n"
        "        start_response('200 OK', [('Content-Length', '2')])\n"
        "        return [b'ok']\n\n\n"
        "app = App()\n"
    ),
    # a generator function: its call returns an iterable (PEP 3333 allows it)
    "generator": (
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    yield b'ok'\n"
    ),
    # a class whose instances are the response iterables (PEP 3333's class example)
    "class": (
        "class app:\n"
        "    def __init__(self, environ, start_response):\n"
        "        start_response('200 OK', [('Content-Length', '2')])\n\n"
        "    def __iter__(self):\n"
        "        yield b'ok'\n"
    ),
    # an object that also has coroutine methods, but not as __call__
    "async-helpers": (
        "class App:\n"
        "    async def lifespan(self):\n"
        "        pass\n\n"
        "    def __call__(self, environ, start_response):\n"
        "        start_response('200 OK', [('Content-Length', '2')])\n"
        "        return [b'ok']\n\n\n"
        "app = App()\n"
    ),
}


@pytest.mark.parametrize("kind", list(WSGI_MODULES))
def test_wsgi_apps_are_not_taken_for_asgi(start_server, tmp_path, kind):
    (tmp_path / "wsgi_probe.py").write_text(WSGI_MODULES[kind])
    srv = start_server("wsgi_probe:app", "--chdir", str(tmp_path), cwd=tmp_path)
    resp = http_get(srv.connect())
    assert (resp.status, resp.body) == (200, b"ok")
    assert not asgi_lines(srv.log), srv.log


# --------------------------------------------------------------------------------------------
# 8. --limit-request-body


def _post(srv, size: int) -> rawhttp.Response:
    body = b"x" * size
    head = (
        f"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with srv.connect() as sock:
        sock.settimeout(SOCK_TIMEOUT)
        return rawhttp.request(sock, head + body, "POST")


def test_limit_request_body(start_server):
    srv = start_server("cli_app:app", "--limit-request-body", "100")
    assert _post(srv, 100).status == 200
    assert _post(srv, 101).status == 413
    assert _post(srv, 5000).status == 413


def test_limit_request_body_suffix(start_server):
    srv = start_server("cli_app:app", "--limit-request-body", "1K")
    assert _post(srv, 1024).status == 200
    assert _post(srv, 1025).status == 413


def test_limit_request_body_default_unlimited(start_server):
    srv = start_server("cli_app:app")
    assert _post(srv, 3 * 1024 * 1024).status == 200


# --------------------------------------------------------------------------------------------
# 9. open-files limit


def _nofile_limits(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


def test_nofile_soft_limit_raised_to_hard(launch):
    if not Path("/proc/self/limits").exists():
        pytest.skip("needs /proc/<pid>/limits")
    _, hard_now = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = 4096 if hard_now == resource.RLIM_INFINITY or hard_now >= 4096 else hard_now
    soft = min(512, hard - 1)
    argv = [bourbon_exe(), "cli_app:app", "-b", "127.0.0.1:0"]
    if shutil.which("prlimit"):
        srv = launch(["prlimit", f"--nofile={soft}:{hard}", *argv])
    else:
        srv = launch(
            argv,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
        )
    assert _nofile_limits(srv.pid) == (hard, hard)
    assert get_json(srv.connect())["tag"] == "app"


# --------------------------------------------------------------------------------------------
# 10. signals


def test_sigterm_stops_cleanly(start_server):
    srv = start_server("cli_app:app")
    assert get_json(srv.connect())["tag"] == "app"
    assert srv.stop(signal.SIGTERM) == 0
    assert "Shutting down" in srv.log


def test_sigint_stops_cleanly(start_server):
    srv = start_server("cli_app:app")
    assert get_json(srv.connect())["tag"] == "app"
    assert srv.stop(signal.SIGINT) == 0
    assert "Shutting down" in srv.log
    assert "Traceback" not in srv.log
    assert "KeyboardInterrupt" not in srv.log


def test_sigint_to_server_pid_only(start_server):
    """``kill -INT <pid>`` (not the whole group) stops it too."""
    srv = start_server("cli_app:app")
    assert get_json(srv.connect())["tag"] == "app"
    os.kill(srv.pid, signal.SIGINT)
    assert srv.proc.wait(15) == 0


def test_sigterm_stops_python_dash_m(launch):
    srv = launch([sys.executable, "-m", "bourbon", "cli_app:app", "-b", "127.0.0.1:0"])
    assert get_json(srv.connect())["tag"] == "app"
    assert srv.stop(signal.SIGTERM) == 0
    assert "Shutting down" in srv.log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_right_after_ready(start_server, sig):
    """Once bourbon has said it is ready, a stop signal must be handled: exit 0, not death
    by the signal's default action (or, for SIGINT, a hang)."""
    for _ in range(3):
        srv = start_server("cli_app:app")
        code = srv.stop(sig, timeout=5)
        assert code == 0, f"exit {code} for {sig.name} sent right after readiness:\n{srv.log}"
        assert "Shutting down" in srv.log
