"""The deployment recipes in docs/deploy/ run for real.

Each configuration block a page marks with ``<!-- tested: NAME -->`` is extracted and run
with only its paths and ports replaced: the nginx server block and the Apache virtual hosts in
front of the example Django site on a Unix socket (the distribution's ``nginx`` and
``apache2``; for nginx also its WebSocket additions, with the example site's chat), the
systemd units through ``systemd-socket-activate`` (which hands over a listening socket as
systemd does), and the Dockerfile's ``CMD`` on loopback, including the SIGTERM drain that
``docker stop`` and Kubernetes rely on. A replacement whose original text
is missing from the page fails the test, so the pages cannot drift from what is tested.

nginx, apache2 and systemd-socket-activate are installed by ``.ci/run``; without them the
tests that need them are skipped with a message naming the missing program.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from conftest import (
    APPS,
    EXAMPLE,
    ROOT,
    Server,
    base_env,
    bourbon_exe,
    run_bourbon,
)
from procs import children, wait_until
from websockets.sync.client import connect as ws_connect

DOCS = ROOT / "docs" / "deploy"
TIMEOUT = 15.0
# What the pages use, and what the tests put in their place.
DOC_SOCKET = "/run/mysite/bourbon.sock"
DOC_SITE = "/srv/mysite"
DOC_STATIC = "/srv/mysite/staticfiles/"
SERVER_NAME = "example.com"
# How long bourbon's master waits for draining workers before killing them: the default
# --graceful-timeout (30 s) plus the master's half second (EXIT_MARGIN), rounded up.
MASTER_GRACEFUL_STOP = 31


# ---------------------------------------------------------------------------------------------
# Helpers: doc blocks, programs, ports, processes


def doc_block(page: str, name: str) -> str:
    """The fenced block that follows ``<!-- tested: NAME -->`` in ``docs/deploy/PAGE``."""
    text = (DOCS / page).read_text()
    m = re.search(rf"<!-- tested: {re.escape(name)} -->\s*```\w+\n(.*?)\n```", text, re.S)
    assert m, f"docs/deploy/{page} has no block marked 'tested: {name}'"
    return m.group(1)


def substitute(text: str, replacements: dict[str, str]) -> str:
    """Replace each key by its value; a key missing from ``text`` means the doc changed."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the documented block:\n{text}"
        text = text.replace(old, new)
    return text


def shell_words(command: str) -> list[str]:
    """Split a documented command line (backslash-newline continuations allowed)."""
    return shlex.split(command.replace("\\\n", " "))


def require_program(name: str, *candidates: str) -> str:
    for path in (shutil.which(name), *candidates):
        if path and os.access(path, os.X_OK):
            return path
    pytest.skip(f"{name} is not installed (.ci/run installs it with apt-get)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a Unix socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="bb-deploy-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Program:
    """A process (not bourbon's readiness protocol) in its own session, output to a file."""

    def __init__(self, argv: list[str], log: Path, cwd: Path = ROOT, env=None):
        self.log_path = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=str(cwd),
                env=env if env is not None else base_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int:
        """Signal the whole group, wait (bounded), then SIGKILL the group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Workers left behind in the group (if the leader died first) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.returncode


def wait_connectable(address, proc: subprocess.Popen, what: str, log, timeout=TIMEOUT):
    """Poll (bounded) until ``address`` (a port or a Unix path) accepts a connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if isinstance(address, int):
                socket.create_connection(("127.0.0.1", address), timeout=1).close()
            else:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(str(address))
            return
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n{log()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never accepted on {address}:\n{log()}")
        time.sleep(0.05)


def read_http_response(sock: socket.socket, timeout: float = TIMEOUT) -> tuple[int, bytes, bytes]:
    """Read one HTTP/1.1 response from a socket that the server closes or frames with
    Content-Length; returns (status, head, body)."""
    sock.settimeout(timeout)
    resp = http.client.HTTPResponse(sock)
    try:
        resp.begin()
        body = resp.read()
        head = "".join(f"{k}: {v}\r\n" for k, v in resp.getheaders()).encode()
        return resp.status, head, body
    finally:
        resp.close()  # releases the socket's makefile reference even when begin() raises


# ---------------------------------------------------------------------------------------------
# nginx in front of bourbon (docs/deploy/nginx.md)


def nginx_main_config(site: str, tmp: Path, nginx: str) -> str:
    """A minimal nginx.conf of the test's own around the documented site block."""
    version = subprocess.run([nginx, "-V"], capture_output=True, text=True, timeout=10).stderr
    temp_paths = [f"client_body_temp_path {tmp}/client_body;", f"proxy_temp_path {tmp}/proxy;"]
    for module in ("fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in version:
            temp_paths.append(f"{module}_temp_path {tmp}/{module};")
    mime = Path("/etc/nginx/mime.types")
    types = f"include {mime};" if mime.exists() else "types { text/css css; text/html html; }"
    # As root, nginx's workers would switch to "nobody", who cannot read the test's files.
    user = "user root;" if os.geteuid() == 0 else ""
    return "\n".join(
        [
            "daemon off;",
            "master_process on;",
            "worker_processes 1;",
            user,
            f"pid {tmp}/nginx.pid;",
            f"error_log {tmp}/error.log info;",
            "events { worker_connections 256; }",
            "http {",
            types,
            "default_type application/octet-stream;",
            f"access_log {tmp}/access.log;",
            *temp_paths,
            site,
            "}",
            "",
        ]
    )


def documented_bourbon(
    page: str,
    sock: Path,
    site_dir: Path,
    block: str = "bourbon-command",
    replacements: dict[str, str] | None = None,
) -> Server:
    """The ``BLOCK`` command of ``docs/deploy/PAGE`` on ``sock`` for ``site_dir``, with an
    access log added to see what reaches bourbon (and ``replacements`` made in it)."""
    command = shell_words(substitute(doc_block(page, block), replacements or {}))
    assert command[0] == "bourbon", command
    command = [
        a.replace(f"unix:{DOC_SOCKET}", f"unix:{sock}").replace(DOC_SITE, str(site_dir))
        for a in command[1:]
    ]
    assert f"unix:{sock}" in command and str(site_dir) in command, command
    return Server([bourbon_exe(), *command, "--access-logfile", "-"], ROOT, base_env(), 60.0)


class ProxyStack:
    """A proxy in front of bourbon on a Unix socket; subclasses start the proxy."""

    port: int
    tmp: Path
    proxy: Program
    bourbon: Server | None

    def proxy_log(self) -> str:
        """The proxy's output and the tail of its error log."""
        logs = [self.proxy.log]
        err = self.tmp / "error.log"
        if err.exists():
            logs.append(err.read_text(errors="replace")[-4000:])
        return "\n".join(logs)

    def close(self) -> None:
        if self.bourbon is not None:
            self.bourbon.stop()
        self.proxy.stop(signal.SIGTERM)

    def request(self, method: str, path: str, body=None, headers=None, host=SERVER_NAME):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
            resp = conn.getresponse()
            return resp, resp.read()
        finally:
            conn.close()


def without_static_location(site: str) -> str:
    """The documented server block less its ``location /static/ { ... }``: the page's second
    arrangement, in which bourbon serves the static files."""
    out, n = re.subn(r"\n[ \t]*location /static/ \{[^}]*\}\n", "\n", site)
    assert n == 1, f"expected one location /static/ block in:\n{site}"
    return out


def with_websockets(site: str) -> str:
    """The documented server block with the page's WebSocket additions: the ``map`` before it
    (the http context) and the ``location /ws/`` next to ``location /``."""
    marker = "\n    location / {\n"
    assert site.count(marker) == 1, f"expected one 'location / {{' in:\n{site}"
    location = textwrap.indent(doc_block("nginx.md", "nginx-websocket-location"), "    ")
    site = site.replace(marker, f"\n{location}\n{marker}")
    return f"{doc_block('nginx.md', 'nginx-websocket-map')}\n\n{site}"


class Stack(ProxyStack):
    """nginx (documented site block) → bourbon (documented command) → the example site.

    With ``bourbon_serves_static``, the page's second arrangement: the site block without its
    ``location /static/`` and the ``bourbon-command-static`` command. With ``websockets``, the
    page's WebSocket section: its additions to the site block and the ``bourbon-command-asgi``
    command, with one worker (the example chat's in-memory channel layer is per process)."""

    def __init__(
        self,
        tmp: Path,
        site_dir: Path,
        bourbon_serves_static: bool = False,
        websockets: bool = False,
    ):
        self.tmp = tmp
        nginx = require_program("nginx", "/usr/sbin/nginx")
        self.sock = tmp / "bourbon.sock"
        self.static = tmp / "static"
        shutil.copytree(site_dir / "staticfiles", self.static)
        # Only nginx can serve this file: it is not in the site's STATIC_ROOT.
        (self.static / "nginx-only.txt").write_text("served by nginx\n")
        self.port = free_port()
        site = substitute(
            doc_block("nginx.md", "nginx-site"),
            {
                f"unix:{DOC_SOCKET}": f"unix:{self.sock}",
                "listen 80 default_server;": f"listen 127.0.0.1:{self.port} default_server;",
                "listen 80;": f"listen 127.0.0.1:{self.port};",
                DOC_STATIC: f"{self.static}/",
            },
        )
        if bourbon_serves_static:
            site = without_static_location(site)
        block = "bourbon-command-static" if bourbon_serves_static else "bourbon-command"
        replacements = {}
        if websockets:
            site = with_websockets(site)
            block = "bourbon-command-asgi"
            replacements = {"--workers 3": "--workers 1"}
        conf = tmp / "nginx.conf"
        conf.write_text(nginx_main_config(site, tmp, nginx))
        argv = [nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
        self.bourbon: Server | None = None
        self.proxy = Program(argv, tmp / "nginx.out")
        try:
            wait_connectable(self.port, self.proxy.proc, "nginx", self.proxy_log)
            self.bourbon = documented_bourbon("nginx.md", self.sock, site_dir, block, replacements)
        except BaseException:
            self.close()
            raise


@pytest.fixture(scope="module")
def stack(django_site) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="bb-nginx-", dir="/tmp") as tmp:
        s = Stack(Path(tmp), django_site)
        try:
            yield s
        finally:
            s.close()


def test_nginx_django_page(stack):
    resp, body = stack.request("GET", "/")
    assert resp.status == 200, body[:500]
    assert resp.getheader("Content-Type", "").startswith("text/html")
    assert b"<h1>Latest polls</h1>" in body


def test_nginx_serves_static_files_from_the_alias(stack):
    _, page = stack.request("GET", "/")
    m = re.search(rb'href="(/static/polls/style\.[0-9a-f]+\.css)"', page)
    assert m, page[:1000]
    url = m.group(1).decode()
    resp, body = stack.request("GET", url)
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/css")
    assert body == (stack.static / url[len("/static/") :]).read_bytes()
    assert "immutable" in resp.getheader("Cache-Control", "")
    resp, body = stack.request("GET", "/static/nginx-only.txt")
    assert (resp.status, body) == (200, b"served by nginx\n")
    # A request that does reach bourbon, so its access log is known to be up to date.
    resp, _ = stack.request("GET", "/plain?static-check")
    assert resp.status == 200
    stack.bourbon.wait_for_log(r"GET /plain\?static-check ")
    assert "/static/" not in stack.bourbon.log


@pytest.fixture(scope="module")
def static_stack(django_site) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="bb-nginx-", dir="/tmp") as tmp:
        s = Stack(Path(tmp), django_site, bourbon_serves_static=True)
        try:
            yield s
        finally:
            s.close()


def test_nginx_passes_static_files_to_bourbon(static_stack, django_site):
    """The page's second arrangement: nginx proxies /static/ too, and bourbon's
    ``--static django`` answers it. bourbon's exact Cache-Control and ETag forms tell its
    answers from nginx's (max-age=31536000) and WhiteNoise's (which orders the directives
    differently), both of which are still configured."""
    stack = static_stack
    _, page = stack.request("GET", "/")
    m = re.search(rb'href="(/static/polls/style\.[0-9a-f]+\.css)"', page)
    assert m, page[:1000]
    url = m.group(1).decode()
    resp, body = stack.request("GET", url)
    assert resp.status == 200
    assert body == (django_site / "staticfiles" / url[len("/static/") :]).read_bytes()
    assert resp.getheader("Cache-Control") == "public, max-age=315360000, immutable"
    assert re.fullmatch(r'"[0-9a-f]+\.[0-9a-f]+-[0-9a-f]+"', resp.getheader("ETag", ""))
    resp, _ = stack.request("GET", "/static/polls/style.css")
    assert resp.status == 200
    assert resp.getheader("Cache-Control") == "public, max-age=60"
    # The alias is gone: the file only nginx's copy of the directory has is not served.
    resp, _ = stack.request("GET", "/static/nginx-only.txt")
    assert resp.status == 404
    stack.bourbon.wait_for_log(rf'"GET {re.escape(url)} HTTP/1\.1" 200 ')


@pytest.fixture(scope="module")
def ws_stack(django_site) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="bb-nginx-", dir="/tmp") as tmp:
        s = Stack(Path(tmp), django_site, websockets=True)
        try:
            yield s
        finally:
            s.close()


def test_nginx_proxies_websockets_to_bourbon(ws_stack):
    """The page's WebSocket section: the example chat through nginx, two clients in a room;
    the pages keep working through the same server block."""

    def chat():
        # The socket goes to nginx's port; the URL gives the Host nginx's server_name wants.
        sock = socket.create_connection(("127.0.0.1", ws_stack.port), timeout=TIMEOUT)
        return ws_connect(
            f"ws://{SERVER_NAME}/ws/chat/deploy/",
            sock=sock,
            origin=f"http://{SERVER_NAME}",
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )

    with chat() as ann, chat() as bob:
        ann.send(json.dumps({"message": "through nginx", "name": "ann"}))
        for ws in (ann, bob):
            got = json.loads(ws.recv(timeout=TIMEOUT))
            assert (got["type"], got["user"], got["message"]) == (
                "message",
                "ann",
                "through nginx",
            ), ws_stack.proxy_log()
        resp, body = ws_stack.request("GET", "/plain")
        assert (resp.status, body) == (200, b"Hello from Django\n")
    # nginx logs each tunnelled connection when it ends: two handshakes answered with 101.
    access = ws_stack.tmp / "access.log"
    wait_until(
        lambda: access.read_text().count('"GET /ws/chat/deploy/ HTTP/1.1" 101 ') == 2,
        what="two 101 lines in nginx's access log",
    )


def test_nginx_csrf_form_post(stack):
    check_csrf_form_post(stack)


def check_csrf_form_post(stack: ProxyStack) -> None:
    """The example site's vote form through the proxy: a CSRF-protected POST body."""
    cookies: dict[str, str] = {}

    def call(method, path, body=None, headers=None):
        hdrs = dict(headers or {})
        if cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        resp, data = stack.request(method, path, body=body, headers=hdrs)
        for raw in resp.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(raw)
            cookies.update({k: m.value for k, m in jar.items()})
        return resp, data

    _, index = call("GET", "/")
    qid = re.search(rb'href="/(\d+)/"', index).group(1).decode()
    resp, detail = call("GET", f"/{qid}/")
    assert resp.status == 200
    assert "csrftoken" in cookies
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', detail).group(1).decode()
    choice = re.search(rb'name="choice" value="(\d+)"', detail).group(1).decode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp, _ = call(
        "POST",
        f"/{qid}/vote/",
        body=urlencode({"csrfmiddlewaretoken": token, "choice": choice}),
        headers=form,
    )
    assert resp.status == 302
    # nginx's proxy_redirect off, Apache without ProxyPassReverse: Django's Location
    # arrives as Django wrote it.
    assert urlsplit(resp.getheader("Location", "")).path == f"/{qid}/results/"
    # The same post without the token is refused by Django's CSRF check.
    cookies.clear()
    resp, _ = call("POST", f"/{qid}/vote/", body=urlencode({"choice": choice}), headers=form)
    assert resp.status == 403


def test_nginx_forwards_host_and_client_address(stack):
    resp, body = stack.request(
        "GET",
        "/echo-meta?x=1",
        headers={"X-Forwarded-For": "203.0.113.7", "Connection": "keep-alive"},
        host="www.example.com:8443",
    )
    assert resp.status == 200, body[:500]
    meta = json.loads(body)
    assert meta["HTTP_HOST"] == "www.example.com:8443"
    assert meta["SERVER_NAME"] == "www.example.com"
    assert meta["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 127.0.0.1"
    assert meta["HTTP_X_FORWARDED_PROTO"] == "http"
    assert meta["QUERY_STRING"] == "x=1"
    # nginx on the unix socket is trusted: the client is the rightmost address in
    # X-Forwarded-For that is not a trusted proxy (127.0.0.1, this test's own address, is;
    # docs/proxies.md).
    assert meta["REMOTE_ADDR"] == "203.0.113.7"
    assert meta["wsgi.url_scheme"] == "http"
    # nginx clears Connection for upstream keep-alive.
    assert "HTTP_CONNECTION" not in meta


def test_nginx_closes_connections_for_unknown_hosts(stack):
    with pytest.raises(http.client.RemoteDisconnected):
        stack.request("GET", "/plain", host="attacker.invalid")


def test_nginx_large_upload_and_body_limit(stack):
    data = os.urandom(5 * 1024 * 1024 + 3)
    resp, out = stack.request(
        "POST", "/upload/raw", body=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert resp.status == 200, out[:500]
    assert json.loads(out) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    # Above client_max_body_size (20m): nginx answers 413 from the Content-Length alone.
    with socket.create_connection(("127.0.0.1", stack.port), timeout=TIMEOUT) as s:
        s.sendall(
            b"POST /upload/raw HTTP/1.1\r\nHost: example.com\r\n"
            b"Content-Type: application/octet-stream\r\n"
            + f"Content-Length: {25 * 1024 * 1024}\r\n\r\n".encode()
        )
        status, _, _ = read_http_response(s)
    assert status == 413


def test_nginx_404_from_django(stack):
    resp, body = stack.request("GET", "/no/such/page")
    assert resp.status == 404
    assert b"Not Found" in body


def test_nginx_streams_events_unbuffered(stack):
    # /events sets X-Accel-Buffering: no, so nginx passes each event on as it comes.
    check_events_arrive_as_sent(stack)


def check_events_arrive_as_sent(stack: ProxyStack) -> None:
    """/events (five events 0.2 s apart) through the proxy: each arrives when it is sent."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=TIMEOUT) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /events HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        buf, seen = b"", {}
        while len(seen) < 5 and time.monotonic() - t0 < TIMEOUT:
            data = s.recv(65536)
            if not data:
                break
            buf += data
            for i in range(5):
                if i not in seen and f"data: {i}\n\n".encode() in buf:
                    seen[i] = time.monotonic() - t0
    assert sorted(seen) == [0, 1, 2, 3, 4], buf
    assert seen[0] < 0.6 and seen[4] - seen[0] >= 0.6, seen


def test_nginx_200_sequential_requests(stack):
    statuses = []
    for i in range(200):
        resp, body = stack.request("GET", f"/plain?n={i}")
        statuses.append(resp.status)
        assert body == b"Hello from Django\n"
    assert statuses == [200] * 200
    assert "Traceback" not in stack.bourbon.log


def test_bourbon_stops_promptly_with_nginx_keepalive_connections(django_site):
    with tempfile.TemporaryDirectory(prefix="bb-nginx-", dir="/tmp") as tmp:
        s = Stack(Path(tmp), django_site)
        try:
            for i in range(20):
                assert s.request("GET", f"/plain?warm={i}")[0].status == 200
            # nginx now holds idle keep-alive connections to bourbon; a graceful stop must
            # close them rather than wait for --keep-alive (75 s) to expire.
            started = time.monotonic()
            assert s.bourbon.stop(signal.SIGTERM, timeout=20) == 0, s.bourbon.log
            assert time.monotonic() - started < 10
            # The socket is bourbon's own (-b unix:): removed at exit.
            assert not s.sock.exists()
            # nginx stays up and answers 502 until bourbon is back.
            assert s.request("GET", "/plain")[0].status == 502
        finally:
            s.close()


def unix_get(path: Path, target: str = "/") -> int:
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(TIMEOUT)
        c.connect(str(path))
        c.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        return read_http_response(c)[0]


def test_unix_socket_survives_a_retired_worker(start_server, short_dir):
    sock = short_dir / "app.sock"
    srv = start_server("hello_app:app", "-w", "2", "-b", f"unix:{sock}")
    deadline = time.monotonic() + TIMEOUT
    while len(children(srv.pid)) != 2:
        assert time.monotonic() < deadline, srv.log
        time.sleep(0.02)
    assert unix_get(sock) == 200
    os.kill(srv.pid, signal.SIGTTOU)
    srv.wait_for_log(r"Handling signal: term; finishing requests in flight")
    while len(children(srv.pid)) != 1:
        assert time.monotonic() < deadline, srv.log
        time.sleep(0.02)
    assert sock.is_socket(), f"{sock} is gone:\n{srv.log}"
    assert unix_get(sock) == 200


@pytest.mark.timeout(60)
def test_nginx_reload_of_bourbon_keeps_serving(django_site):
    """``systemctl reload`` (HUP) of the documented command behind the documented nginx:
    sequential requests through nginx keep getting 200 while the workers are replaced."""
    with tempfile.TemporaryDirectory(prefix="bb-nginx-", dir="/tmp") as tmp:
        s = Stack(Path(tmp), django_site)
        try:
            master = s.bourbon.pid
            old = children(master)
            assert s.request("GET", "/plain")[0].status == 200
            os.kill(master, signal.SIGHUP)
            statuses: list[int] = []
            deadline = time.monotonic() + 30
            after_swap = 0
            while after_swap < 50:
                assert time.monotonic() < deadline, (statuses[-20:], s.bourbon.log)
                statuses.append(s.request("GET", f"/plain?n={len(statuses)}")[0].status)
                kids = children(master)
                if len(kids) == 3 and not (kids & old):
                    after_swap += 1
            failed = [i for i, st in enumerate(statuses) if st != 200]
            assert not failed, (
                f"{len(failed)} of {len(statuses)} requests failed, first at #{failed[0]}: "
                f"{sorted(set(statuses))}\n{s.proxy_log()[-1500:]}"
            )
            # The old workers are gone. nginx may still be reusing a connection it opened
            # before they left; a new one needs the socket path.
            assert s.sock.is_socket(), f"{s.sock} is gone:\n{s.bourbon.log}"
            assert unix_get(s.sock, "/plain") == 200
        finally:
            s.close()


# ---------------------------------------------------------------------------------------------
# Apache in front of bourbon (docs/deploy/apache.md)

APACHE_MODULES = Path("/usr/lib/apache2/modules")
# What the documented site needs (mod_unixd and mod_log_config are built into Debian's apache2).
APACHE_LOAD = [
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("alias_module", "mod_alias.so"),
    ("mime_module", "mod_mime.so"),
    ("headers_module", "mod_headers.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
]


def apache_main_config(site: str, tmp: Path, port: int) -> str:
    """A main configuration of the test's own (in place of Debian's apache2.conf) around the
    documented virtual hosts: everything Apache writes goes to ``tmp``."""
    mime = Path("/etc/mime.types")
    types = f'TypesConfig "{mime}"' if mime.exists() else "AddType text/css .css"
    # As root, Apache's children must switch to another user (it refuses to serve as root).
    user = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        user = [f"User {nobody.pw_name}", f"Group #{nobody.pw_gid}"]
    return "\n".join(
        [
            f'ServerRoot "{tmp}"',
            "ServerName localhost",
            f"Listen 127.0.0.1:{port}",
            f'PidFile "{tmp}/apache2.pid"',
            f'DefaultRuntimeDir "{tmp}"',
            f"Mutex file:{tmp} default",
            f'ErrorLog "{tmp}/error.log"',
            "LogLevel info",
            *(f"LoadModule {name} {APACHE_MODULES / so}" for name, so in APACHE_LOAD),
            *user,
            "StartServers 1",
            "ServerLimit 1",
            "ThreadLimit 16",
            "ThreadsPerChild 16",
            "MaxRequestWorkers 16",
            "MinSpareThreads 1",
            "MaxSpareThreads 16",
            types,
            # Stands in for Debian's default page: apache2.conf grants /var/www/, and the
            # compiled-in DocumentRoot is /var/www/html.
            f'DocumentRoot "{tmp}/www"',
            f'<Directory "{tmp}/www/">',
            "    Require all granted",
            "</Directory>",
            f'CustomLog "{tmp}/access.log" "%{{Host}}i \\"%r\\" %>s"',
            # As Debian's apache2.conf: no directory is served unless a block allows it.
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            site,
            "",
        ]
    )


class ApacheStack(ProxyStack):
    """Apache (documented virtual hosts) → bourbon (documented command) → the example site."""

    def __init__(self, tmp: Path, site_dir: Path):
        self.tmp = tmp
        self.site_dir = site_dir
        apache = require_program("apache2", "/usr/sbin/apache2")
        if not APACHE_MODULES.is_dir():
            pytest.skip(f"apache2 is installed without {APACHE_MODULES}")
        self.sock = tmp / "bourbon.sock"
        self.static = tmp / "static"
        shutil.copytree(site_dir / "staticfiles", self.static)
        # Only Apache can serve this file: it is not in the site's STATIC_ROOT.
        (self.static / "apache-only.txt").write_text("served by apache\n")
        (tmp / "www").mkdir()
        (tmp / "www" / "index.html").write_text("default page\n")
        if os.geteuid() == 0:
            # Apache's children run as nobody: let them into the directory.
            tmp.chmod(0o755)
        self.port = free_port()
        site = substitute(
            doc_block("apache.md", "apache-site"),
            {
                "<VirtualHost *:80>": f"<VirtualHost 127.0.0.1:{self.port}>",
                f"unix:{DOC_SOCKET}|": f"unix:{self.sock}|",
                f'"{DOC_STATIC}"': f'"{self.static}/"',
            },
        )
        conf = tmp / "apache2.conf"
        conf.write_text(apache_main_config(site, tmp, self.port))
        self.bourbon: Server | None = None
        self.proxy = Program([apache, "-f", str(conf), "-DFOREGROUND"], tmp / "apache.out")
        try:
            wait_connectable(self.port, self.proxy.proc, "apache2", self.proxy_log)
            self.start_bourbon()
        except BaseException:
            self.close()
            raise

    def start_bourbon(self) -> None:
        # With bourbon's default --umask 0 the socket is writable by Apache's user too.
        self.bourbon = documented_bourbon("apache.md", self.sock, self.site_dir)


@pytest.fixture(scope="module")
def apache(django_site) -> Iterator[ApacheStack]:
    with tempfile.TemporaryDirectory(prefix="bb-apache-", dir="/tmp") as tmp:
        s = ApacheStack(Path(tmp), django_site)
        try:
            yield s
        finally:
            s.close()


def test_apache_and_nginx_recipes_run_the_same_bourbon():
    assert doc_block("apache.md", "bourbon-command") == doc_block("nginx.md", "bourbon-command")


def test_nginx_static_command_is_the_plain_one_plus_static_django():
    plain = shell_words(doc_block("nginx.md", "bourbon-command"))
    assert shell_words(doc_block("nginx.md", "bourbon-command-static")) == [
        *plain,
        "--static",
        "django",
    ]


def test_apache_django_page(apache):
    resp, body = apache.request("GET", "/")
    assert resp.status == 200, (body[:500], apache.proxy_log())
    assert resp.getheader("Content-Type", "").startswith("text/html")
    assert b"<h1>Latest polls</h1>" in body


def test_apache_serves_static_files_from_the_alias(apache):
    _, page = apache.request("GET", "/")
    m = re.search(rb'href="(/static/polls/style\.[0-9a-f]+\.css)"', page)
    assert m, page[:1000]
    url = m.group(1).decode()
    resp, body = apache.request("GET", url)
    assert resp.status == 200, apache.proxy_log()
    assert resp.getheader("Content-Type", "").startswith("text/css")
    assert body == (apache.static / url[len("/static/") :]).read_bytes()
    assert "immutable" in resp.getheader("Cache-Control", "")
    resp, body = apache.request("GET", "/static/apache-only.txt")
    assert (resp.status, body) == (200, b"served by apache\n")
    # A request that does reach bourbon, so its access log is known to be up to date.
    resp, _ = apache.request("GET", "/plain?static-check")
    assert resp.status == 200
    apache.bourbon.wait_for_log(r"GET /plain\?static-check ")
    assert "/static/" not in apache.bourbon.log


def test_apache_forwards_host_and_client_address(apache):
    resp, body = apache.request(
        "GET",
        "/echo-meta?x=1",
        # A client's own X-Forwarded-Proto must not reach the application.
        headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        host="www.example.com:8443",
    )
    assert resp.status == 200, body[:500]
    meta = json.loads(body)
    # ProxyPreserveHost On: the client's Host, not the "localhost" of the ProxyPass URL.
    assert meta["HTTP_HOST"] == "www.example.com:8443"
    assert meta["SERVER_NAME"] == "www.example.com"
    assert meta["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 127.0.0.1"
    assert meta["HTTP_X_FORWARDED_PROTO"] == "http"
    assert meta["HTTP_X_FORWARDED_HOST"] == "www.example.com:8443"
    assert meta["QUERY_STRING"] == "x=1"
    # Apache on the unix socket is trusted: the rightmost untrusted X-Forwarded-For address
    # (docs/proxies.md).
    assert meta["REMOTE_ADDR"] == "203.0.113.7"
    assert meta["wsgi.url_scheme"] == "http"


def test_apache_refuses_unknown_hosts(apache):
    resp, _ = apache.request("GET", "/plain?unknown-host", host="attacker.invalid")
    assert resp.status == 403
    # Not even the server's default page.
    resp, _ = apache.request("GET", "/", host="attacker.invalid")
    assert resp.status == 403
    resp, _ = apache.request("GET", "/plain?known-host")
    assert resp.status == 200
    apache.bourbon.wait_for_log(r"GET /plain\?known-host ")
    assert "unknown-host" not in apache.bourbon.log


def test_apache_csrf_form_post(apache):
    check_csrf_form_post(apache)


def test_apache_large_upload_and_body_limit(apache):
    data = os.urandom(5 * 1024 * 1024 + 3)
    resp, out = apache.request(
        "POST", "/upload/raw", body=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert resp.status == 200, out[:500]
    assert json.loads(out) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    # Above the documented 20 MiB: Apache answers 413 from the Content-Length alone.
    with socket.create_connection(("127.0.0.1", apache.port), timeout=TIMEOUT) as s:
        s.sendall(
            b"POST /upload/raw HTTP/1.1\r\nHost: example.com\r\n"
            b"Content-Type: application/octet-stream\r\n"
            + f"Content-Length: {25 * 1024 * 1024}\r\n\r\n".encode()
        )
        status, _, _ = read_http_response(s)
    assert status == 413


def test_apache_streams_events(apache):
    check_events_arrive_as_sent(apache)


def test_apache_200_sequential_requests(apache):
    for i in range(100):
        resp, body = apache.request("GET", f"/plain?n={i}")
        assert (resp.status, body) == (200, b"Hello from Django\n"), apache.proxy_log()
    assert "Traceback" not in apache.bourbon.log


@pytest.mark.timeout(90)
def test_apache_reaches_bourbon_again_as_soon_as_it_is_back(django_site):
    """While bourbon is down Apache answers 503; the next request after bourbon is back
    reaches it (a plain ProxyPass backend is not put on hold after a failure)."""
    with tempfile.TemporaryDirectory(prefix="bb-apache-", dir="/tmp") as tmp:
        s = ApacheStack(Path(tmp), django_site)
        try:
            assert s.request("GET", "/plain")[0].status == 200
            assert s.bourbon.stop(signal.SIGTERM, timeout=20) == 0, s.bourbon.log
            assert not s.sock.exists()
            assert s.request("GET", "/plain")[0].status == 503
            s.start_bourbon()
            resp, body = s.request("GET", "/plain?back")
            assert (resp.status, body) == (200, b"Hello from Django\n"), s.proxy_log()
        finally:
            s.close()


# ---------------------------------------------------------------------------------------------
# systemd (docs/deploy/systemd.md)


def unit_values(unit: str, key: str) -> list[str]:
    """Every value of ``key`` in a unit file (continuation lines joined)."""
    joined = unit.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{key}=(.*)$", joined, re.M)]


def socket_activate(
    activator: str, listen: str, argv: list[str], log: Path, cwd: Path, env=None
) -> Program:
    return Program(
        [activator, "-l", listen, "-E", "PYTHONUNBUFFERED=1", *argv], log, cwd=cwd, env=env
    )


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_socket_activation(transport, workers, short_dir):
    activator = require_program("systemd-socket-activate", "/usr/bin/systemd-socket-activate")
    if transport == "unix":
        address: int | Path = short_dir / "app.sock"
        listen = str(address)
    else:
        address = free_port()
        listen = f"127.0.0.1:{address}"
    # No -b: the socket comes from the activator.
    argv = [bourbon_exe(), "cli_app:application", "-w", workers]
    act = socket_activate(activator, listen, argv, short_dir / "out.log", APPS)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not re.search(r"Listening on .* as 3", act.log):
            assert act.proc.poll() is None, act.log
            assert time.monotonic() < deadline, act.log
            time.sleep(0.05)
        # Connect before bourbon exists: the activator only execs bourbon once a
        # connection is waiting, and the connection sits in the socket's queue meanwhile.
        if transport == "unix":
            client = socket.socket(socket.AF_UNIX)
            client.settimeout(TIMEOUT)
            client.connect(str(address))
        else:
            client = socket.create_connection(("127.0.0.1", address), timeout=TIMEOUT)
        with client:
            assert "Starting bourbon" not in act.log
            client.sendall(
                b"GET /?env=LISTEN_FDS,LISTEN_PID,LISTEN_FDNAMES HTTP/1.1\r\n"
                b"Host: localhost\r\nConnection: close\r\n\r\n"
            )
            status, _, body = read_http_response(client)
        assert status == 200, act.log
        data = json.loads(body)
        # The variables are consumed by bourbon: the application does not see them.
        assert data["os_environ"] == {
            "LISTEN_FDS": None,
            "LISTEN_PID": None,
            "LISTEN_FDNAMES": None,
        }
        # The activator exec'd bourbon in its own pid: the master, whose worker answered.
        assert data["pid"] in children(act.pid)
        where = f"unix:{address}" if transport == "unix" else f"http://127.0.0.1:{address}"
        assert f"Listening at: {where} ({act.pid})" in act.log
        assert act.stop(signal.SIGTERM) == 0, act.log
        if transport == "unix":
            # The socket belongs to systemd (the activator): bourbon must not delete it.
            assert address.is_socket(), act.log
    finally:
        act.stop(signal.SIGKILL)


def service_command(unit: str) -> tuple[list[str], Path, dict[str, str]]:
    """ExecStart argv, working directory and environment of the documented service, with the
    documented paths mapped onto this checkout and its virtualenv."""
    (exec_start,) = unit_values(unit, "ExecStart")
    argv = shell_words(exec_start)
    assert argv[0] == f"{DOC_SITE}/venv/bin/bourbon", argv
    (workdir,) = unit_values(unit, "WorkingDirectory")
    assert workdir == DOC_SITE
    env = {}
    for value in unit_values(unit, "Environment"):
        key, _, val = value.partition("=")
        env[key] = val
    return [bourbon_exe(), *argv[1:]], EXAMPLE, env


def test_systemd_units_are_consistent():
    service = doc_block("systemd.md", "systemd-service")
    sock_unit = doc_block("systemd.md", "systemd-socket")
    argv, _, _ = service_command(service)
    # Socket activation: the service binds nothing itself.
    assert not any(a in ("-b", "--bind") or a.startswith("--bind=") for a in argv), argv
    assert unit_values(sock_unit, "ListenStream") == [DOC_SOCKET]
    assert f"server unix:{DOC_SOCKET} " in doc_block("nginx.md", "nginx-site")
    assert unit_values(service, "Requires") == ["mysite.socket"]
    assert unit_values(service, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert unit_values(service, "KillMode") == ["mixed"]
    assert unit_values(service, "Restart") == ["on-failure"]
    # systemd must not SIGKILL the master before its own drain is over.
    (stop_timeout,) = unit_values(service, "TimeoutStopSec")
    assert int(stop_timeout) > MASTER_GRACEFUL_STOP


def test_systemd_execstart_passes_check_config(django_site):
    argv, cwd, env = service_command(doc_block("systemd.md", "systemd-service"))
    proc = run_bourbon(*argv[1:], "--check-config", cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(60)
def test_systemd_service_serves_under_socket_activation(django_site, short_dir):
    activator = require_program("systemd-socket-activate", "/usr/bin/systemd-socket-activate")
    argv, cwd, extra = service_command(doc_block("systemd.md", "systemd-service"))
    sock = short_dir / "bourbon.sock"
    act = socket_activate(activator, str(sock), argv, short_dir / "out.log", cwd, base_env(extra))
    try:
        wait_connectable(sock, act.proc, "systemd-socket-activate", lambda: act.log)
        for path in ("/plain", "/json"):
            with socket.socket(socket.AF_UNIX) as c:
                c.settimeout(60)
                c.connect(str(sock))
                c.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                status, _, body = read_http_response(c, 60)
            assert status == 200, act.log
        assert body.startswith(b"{")
        # ExecReload: HUP replaces the workers, the socket keeps serving.
        os.kill(act.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "Handling signal: hup" not in act.log:
            assert time.monotonic() < deadline, act.log
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as c:
            c.settimeout(60)
            c.connect(str(sock))
            c.sendall(b"GET /plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert read_http_response(c, 60)[0] == 200
        # systemctl stop with KillMode=mixed: SIGTERM to the main process only.
        os.kill(act.pid, signal.SIGTERM)
        assert act.proc.wait(45) == 0, act.log
        assert "Traceback" not in act.log
    finally:
        act.stop(signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# Docker and Kubernetes (docs/deploy/docker.md, docs/deploy/kubernetes.md)


def docker_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The Dockerfile's CMD with the bind moved to loopback, and its ENV settings."""
    dockerfile = doc_block("docker.md", "dockerfile").replace("\\\n", " ")
    (cmd,) = re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)
    argv = json.loads(cmd)
    assert argv[0] == "bourbon" and "0.0.0.0:8000" in argv, argv
    loopback = f"127.0.0.1:{port}"
    argv = [bourbon_exe(), *(loopback if a == "0.0.0.0:8000" else a for a in argv[1:])]
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.*)$", dockerfile, re.M):
        for word in shlex.split(line):
            key, _, value = word.partition("=")
            if key != "PATH":
                env[key] = value
    assert env.get("WEB_CONCURRENCY"), env
    return argv, env


def kubernetes_numbers() -> tuple[int, int, str]:
    """(terminationGracePeriodSeconds, preStop sleep seconds, readiness path)."""
    manifest = doc_block("kubernetes.md", "kubernetes-deployment")
    (grace,) = re.findall(r"terminationGracePeriodSeconds: (\d+)", manifest)
    (pause,) = re.findall(r'preStop:\s+exec:\s+command: \["sleep", "(\d+)"\]', manifest)
    (ready,) = re.findall(r"readinessProbe:\s+httpGet:\s+path: (\S+)", manifest)
    return int(grace), int(pause), ready


def kubernetes_liveness_path() -> str:
    manifest = doc_block("kubernetes.md", "kubernetes-deployment")
    (live,) = re.findall(r"livenessProbe:\s+httpGet:\s+path: (\S+)", manifest)
    return live


def test_kubernetes_grace_period_covers_the_drain():
    grace, pause, _ = kubernetes_numbers()
    assert pause > 0
    assert grace > pause + MASTER_GRACEFUL_STOP


@pytest.mark.timeout(60)
def test_docker_cmd_serves_and_drains_on_sigterm(launch, django_site):
    port = free_port()
    argv, env = docker_command(port)
    srv = launch(argv, cwd=django_site, env=env)
    workers = int(env["WEB_CONCURRENCY"])
    assert srv.addresses == [f"http://127.0.0.1:{port}"]
    srv.wait_for_log(rf"Arbiter booted: {workers} workers")
    _, _, probe = kubernetes_numbers()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        for path in (probe, kubernetes_liveness_path(), "/"):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200, (path, resp.read()[:300])
            resp.read()
    finally:
        conn.close()
    # The probes are bourbon's own: answered without Django, so not in the access log.
    srv.wait_for_log(r'"GET / HTTP/1.1" 200')
    assert probe not in srv.log, srv.log
    # A slow request in flight (five events 0.2 s apart) when SIGTERM arrives, sent to
    # process 1 only, as docker stop and the kubelet do.
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        buf = b""
        while b"data: 0\n\n" not in buf:
            data = s.recv(65536)
            assert data, buf
            buf += data
        stopped_at = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        while not buf.endswith(b"0\r\n\r\n"):
            data = s.recv(65536)
            if not data:
                break
            buf += data
    assert buf.startswith(b"HTTP/1.1 200 OK"), buf[:200]
    assert all(f"data: {i}\n\n".encode() in buf for i in range(5)), buf
    assert buf.endswith(b"0\r\n\r\n"), buf[-200:]
    assert srv.proc.wait(TIMEOUT) == 0, srv.log
    assert time.monotonic() - stopped_at < 10
    assert "Shutting down: Master" in srv.log


@pytest.mark.parametrize("concurrency", ["1", "2"])
def test_docker_cmd_finishes_a_slow_request_on_sigterm(launch, concurrency):
    """The same command with a plain (non-streaming) slow app, one worker and several."""
    port = free_port()
    argv, env = docker_command(port)
    argv[1] = "slow_app:app"
    # Not a Django project: no Django static files to map.
    i = argv.index("--static")
    del argv[i : i + 2]
    env["WEB_CONCURRENCY"] = concurrency
    srv = launch(argv, cwd=APPS, env=env)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(b"GET /?seconds=1.5 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        srv.wait_for_log(r"slow_app: sleeping 1\.5 s")
        os.kill(srv.pid, signal.SIGTERM)
        status, _, body = read_http_response(s)
    assert (status, body) == (200, b"slept 1.5 s\n")
    assert srv.proc.wait(TIMEOUT) == 0, srv.log
    # After the drain nothing listens on the port any more.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
