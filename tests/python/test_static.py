"""bourbon's static files (issue 12), end to end over raw sockets.

The installed ``bourbon`` runs with ``--static /static/=DIR`` over a tree built in a temporary
directory (``make_site``), in front of ``tests/apps/static_app.py``, and the tests speak
HTTP/1.1 byte for byte (``rawhttp``): no client library normalises the paths the safety tests
send. Each request goes on its own connection with ``Connection: close``, and the helper
checks that nothing follows the response, so a HEAD or a 304 that leaked a body, or a
Content-Length that disagrees with the bytes, fails whichever test meets it.

The contract is the issue 12 design (``docs/static-files.md`` tells users about it) and
RFC 9110. Where nginx behaves as that contract says (whole files, HEAD, ranges, 416,
If-Range, the preconditions, files changing on disk), the same checks also run against
Debian's nginx serving the same tree (``location /static/ { alias DIR/; }`` plus the two
settings that make nginx follow the design, ``max_ranges 1`` and ``if_modified_since
before``; see ``nginx_config``). Those tests take the ``target`` or ``ro_target`` fixture, run
as ``[bourbon]`` and ``[nginx]``, and carry the comment ``# Also checked against nginx``. A
failing ``[nginx]`` case means the test is wrong; a failing ``[bourbon]`` case beside a
passing ``[nginx]`` one means the server is. Without nginx installed, the ``[nginx]`` cases
are skipped.

Everything else (content types and charsets, the ETag's exact form, Cache-Control, variants
and Vary, the safety rules, 405, hand-overs, settings) is bourbon's own and runs against
bourbon only; where nginx differs, the test says how.

Fixtures: tests that change files get their own tree (``site``) and their own servers
(``serve``, ``target``); read-only tests share one tree and a few servers per module
(``ro_*``), and compare the app's call log from where it stood before they ran.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from conftest import APPS, Server, base_env, bourbon_exe, run_bourbon
from rawhttp import Reader, Response

APP = "static_app:app"
TIMEOUT = 10.0
# Every file of the tree gets this modification time, so Last-Modified is known exactly:
# 2024-01-02 03:04:05 UTC and 123456789 ns (the ETag carries the nanoseconds).
MTIME_NS = 1_704_164_645_123_456_789
LAST_MODIFIED = "Tue, 02 Jan 2024 03:04:05 GMT"
BEFORE = "Tue, 02 Jan 2024 03:04:04 GMT"  # one second before Last-Modified
AFTER = "Tue, 02 Jan 2024 03:04:06 GMT"  # one second after
SECRET = b"TOP-SECRET-7f3a9c0e: this file lies outside every static root\n"
IMMUTABLE = "public, max-age=315360000, immutable"
HASHED = "css/app.0a1b2c3d4e5f.css"


# ---------------------------------------------------------------------------------------------
# The tree


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` reproducible, non-periodic bytes (a wrong offset in a range shows)."""
    return random.Random(seed).randbytes(n)


@dataclass
class Site:
    """A static root, a secret file beside it (never under it), and a protected directory
    for hand-overs, all in one temporary directory."""

    base: Path
    root: Path
    secret: Path
    protected: Path

    def file(self, rel: str) -> Path:
        return self.root / rel

    def data(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()


JS = b"console.log('identity bytes of app.js');\n" * 40
# The server never decodes a variant; the brotli stand-in only needs bytes of its own.
JS_BR = b"BROTLI-STAND-IN\x00" + pattern(300, 7)

FILES: dict[str, bytes] = {
    "blob.bin": pattern(1024, 1),
    "big.bin": pattern(3 * 1024 * 1024 + 5, 2),
    "empty.txt": b"",
    "css/app.css": b"body { color: #123; }\n",
    HASHED: b"body { color: #123; } /* the hashed copy */\n",
    "js/app.js": JS,
    "js/app.js.gz": gzip.compress(JS, mtime=0),
    "js/app.js.br": JS_BR,
    "js/gzonly.js": b"var onlyGzip = 1;\n" * 30,
    "js/gzonly.js.gz": gzip.compress(b"var onlyGzip = 1;\n" * 30, mtime=0),
    "js/plain.js": b"var plain = 1;\n",
    "index.html": b"<!doctype html><title>root index</title>\n",
    "page.html": b"<!doctype html><title>page</title>\n",
    "notes.txt": b"plain notes\n",
    "data.json": b'{"a": 1}\n',
    "feed.xml": b"<?xml version='1.0'?><feed/>\n",
    "icon.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>\n",
    "site.webmanifest": b'{"name": "site"}\n',
    "logo.png": b"\x89PNG\r\n\x1a\n" + pattern(64, 3),
    "font.woff2": b"wOF2" + pattern(64, 4),
    "data.qqq": b"unknown extension\n",
    "README": b"no extension at all\n",
    "docs/index.html": b"<!doctype html><title>docs index</title>\n",
    "docs/guide.txt": b"the guide\n",
    "nolisting/visible-name.txt": b"a listing would show my name\n",
    "admin/only-in-outer.css": b"/* under the outer mount only */\n",
    "admin/shared.css": b"/* outer copy */\n",
    ".env": b"SECRET_KEY=dotenv-must-not-leak\n",
    ".git/config": b"[core]\n\trepositoryformatversion = 0 # git-config-must-not-leak\n",
    "css/.hidden": b"hidden-file-must-not-leak\n",
}
DOTFILE_MARKERS = [b"dotenv-must-not-leak", b"git-config-must-not-leak", b"hidden-file-must-not"]
REPORT = b"%PDF-1.4\n" + pattern(5000, 5)
# The mount used for "the longest prefix wins": /static/admin/ over a second directory.
INNER = {"shared.css": b"/* inner copy */\n", "inner.css": b"/* inner only */\n"}


def write(path: Path, data: bytes, mtime_ns: int = MTIME_NS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def make_site(base: Path) -> Site:
    root, secret_dir, protected = base / "root", base / "secret", base / "protected"
    for rel, data in FILES.items():
        write(root / rel, data)
    (root / "staticfiles.json").write_text(
        json.dumps({"paths": {"css/app.css": HASHED}, "version": "1.1"})
    )
    write(secret_dir / "secret.txt", SECRET)
    write(protected / "report.pdf", REPORT)
    write(protected / "my report.pdf", REPORT[:1000])
    write(base / "inner" / "shared.css", INNER["shared.css"])
    write(base / "inner" / "inner.css", INNER["inner.css"])
    (root / "empty-dir").mkdir()
    # Symlinks: two that stay inside the root, three that lead out of it.
    (root / "link-in.css").symlink_to("css/app.css")
    (root / "link-in-dir").symlink_to("css")
    (root / "link-out.txt").symlink_to("../secret/secret.txt")
    (root / "link-out-abs.txt").symlink_to(secret_dir / "secret.txt")
    (root / "link-out-dir").symlink_to("../secret")
    return Site(base, root, secret_dir / "secret.txt", protected)


def etag_of(path: Path, suffix: str = "") -> str:
    """The design's strong ETag: mtime seconds and nanoseconds, size, in lowercase hex."""
    st = path.stat()
    secs, nanos = divmod(st.st_mtime_ns, 1_000_000_000)
    return f'"{secs:x}.{nanos:x}-{st.st_size:x}{suffix}"'


def http_date(mtime_ns: int) -> str:
    return email.utils.formatdate(mtime_ns // 1_000_000_000, usegmt=True)


# ---------------------------------------------------------------------------------------------
# Talking to a server


def raw_request(
    method: str, target: str, headers: tuple[str, ...] = (), body: bytes = b""
) -> bytes:
    """One request, exactly these bytes (the target is sent as given, latin-1)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Endpoint:
    """Somewhere to send requests: bourbon (``srv`` set) or the nginx reference."""

    kind: str
    connect: Callable[[], socket.socket]
    srv: object | None = None

    def send(self, data: bytes, method: str = "GET") -> Response:
        """Send ``data`` on a new connection; read one response and check that the server
        then closes without sending anything more."""
        with contextlib.closing(self.connect()) as s:
            s.settimeout(TIMEOUT)
            s.sendall(data)
            reader = Reader(s)
            resp = reader.response(method)
            extra = reader.read_to_close()
        assert extra == b"", f"{len(extra)} bytes after the response: {extra[:200]!r}"
        return resp

    def request(self, method: str, target: str, *headers: str, body: bytes = b"") -> Response:
        return self.send(raw_request(method, target, headers, body), method)

    def get(self, target: str, *headers: str) -> Response:
        return self.request("GET", target, *headers)

    def head(self, target: str, *headers: str) -> Response:
        return self.request("HEAD", target, *headers)

    def seen(self) -> list[str]:
        """The targets the app has been called with so far (bourbon only); on a shared
        server, compare ``seen()[n:]`` with ``n = len(seen())`` taken before."""
        resp = self.get("/_/seen")
        assert resp.status == 200 and resp.header("x-seen") == "1", resp
        return json.loads(resp.body)


def tcp_connector(host: str, port: int) -> Callable[[], socket.socket]:
    return lambda: socket.create_connection((host, port), timeout=TIMEOUT)


def unix_connector(path: Path) -> Callable[[], socket.socket]:
    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(str(path))
        return s

    return connect


def from_app(resp: Response) -> bool:
    return resp.header("x-answered-by") == "static_app"


def without_date(resp: Response) -> list[tuple[str, str]]:
    # The date and the request id (docs/proxies.md) differ from one response to the next.
    return sorted(
        (k.lower(), v) for k, v in resp.headers if k.lower() not in ("date", "x-request-id")
    )


def assert_whole(resp: Response, data: bytes) -> None:
    assert resp.status == 200, (resp.status, resp.headers, resp.body[:200])
    assert resp.header("content-length") == str(len(data)), resp.headers
    assert resp.body == data
    assert resp.header("content-range") is None


def assert_partial(resp: Response, data: bytes, first: int, last: int) -> None:
    assert resp.status == 206, (resp.status, resp.headers, resp.body[:200])
    assert resp.header("content-range") == f"bytes {first}-{last}/{len(data)}", resp.headers
    assert resp.header("content-length") == str(last - first + 1)
    assert resp.body == data[first : last + 1]


def assert_not_modified(resp: Response, etag: str | None = None) -> None:
    """RFC 9110 §15.4.5: no content; the validators a 200 would have carried."""
    assert resp.status == 304, (resp.status, resp.headers, resp.body[:200])
    assert resp.body == b""
    assert resp.header("content-length") is None, resp.headers
    assert resp.header("last-modified") == LAST_MODIFIED, resp.headers
    if etag is not None:
        assert resp.header("etag") == etag, resp.headers


def assert_no_secret(resp: Response) -> None:
    blob = resp.body + repr(resp.headers).encode()
    assert SECRET not in blob and b"TOP-SECRET" not in blob, resp
    for marker in DOTFILE_MARKERS:
        assert marker not in blob, resp
    assert b"root:x:0:0" not in blob, resp


# ---------------------------------------------------------------------------------------------
# Fixtures: bourbon, and nginx as the reference


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
def serve(start_server, site) -> Callable[..., Endpoint]:
    """``serve(*args, mount=True, env=None)``: bourbon in front of static_app, with
    ``--static /static/=ROOT`` unless ``mount`` is false, and the extra arguments."""

    def start(*args: str, mount: bool = True, env: dict[str, str] | None = None) -> Endpoint:
        argv = ["--static", f"/static/={site.root}"] if mount else []
        srv = start_server(APP, *argv, *args, env=env)
        return Endpoint("bourbon", tcp_connector(*srv.host_port), srv)

    return start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# How nginx is told to serve files the way the design does: one range at most (several are
# answered 200 whole), and If-Modified-Since matching any date not older than Last-Modified
# (nginx's default is an exact match).
NGINX_AS_DESIGNED = "max_ranges 1; if_modified_since before;"


def nginx_config(site: Site, tmp: Path, port: int, upstream: int | None = None) -> str:
    """nginx serving ``site.root`` at /static/ as the design does. Without ``upstream``
    everything else is 404; with it, everything else goes to that port, and /protected/ is an
    internal location (``site.protected``) the upstream can hand files to with
    X-Accel-Redirect."""
    if upstream is None:
        rest = "location / { return 404; }"
    else:
        rest = f"""
        location /protected/ {{ internal; alias {site.protected}/; {NGINX_AS_DESIGNED} }}
        location / {{ proxy_pass http://127.0.0.1:{upstream}; }}"""
    mime = Path("/etc/nginx/mime.types")
    types = f"include {mime};" if mime.exists() else "types { text/css css; }"
    # As root, nginx's workers would switch to "nobody", who cannot read the test's files.
    user = "user root;" if os.geteuid() == 0 else ""
    temps = " ".join(
        f"{name}_temp_path {tmp}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
daemon off;
master_process on;
worker_processes 1;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    {types}
    default_type application/octet-stream;
    access_log off;
    {temps}
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ alias {site.root}/; {NGINX_AS_DESIGNED} }}
        {rest}
    }}
}}
"""


def start_nginx(site: Site, tmp: Path, upstream: int | None = None) -> tuple[subprocess.Popen, int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        pytest.skip("nginx is not installed (.ci/run installs it): the reference run is skipped")
    tmp.mkdir()
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_config(site, tmp, port, upstream))
    with open(tmp / "nginx.out", "wb") as out:
        proc = subprocess.Popen(
            [nginx, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=base_env(),
        )
    deadline = time.monotonic() + TIMEOUT
    while True:  # bounded by the deadline: nginx accepts within milliseconds
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_group(proc)
            log = (tmp / "nginx.out").read_text(errors="replace")
            raise AssertionError(f"nginx did not start ({proc.returncode}):\n{log}")
        time.sleep(0.02)


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session: TERM its group, then KILL it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


@pytest.fixture
def nginx_reference(site: Site, tmp_path: Path) -> Iterator[Endpoint]:
    proc, port = start_nginx(site, tmp_path / "nginx")
    try:
        yield Endpoint("nginx", tcp_connector("127.0.0.1", port))
    finally:
        stop_group(proc)


@pytest.fixture(params=["bourbon", "nginx"])
def target(request, serve) -> Endpoint:
    """The server a shared test that changes files talks to, on the test's own tree. bourbon
    answers a missing file with 404 here (``--static-missing 404``), as nginx does."""
    if request.param == "nginx":
        return request.getfixturevalue("nginx_reference")
    return serve("--static-missing", "404")


# Read-only tests share one tree and a few servers per module: starting bourbon for each of
# the ~200 read-only cases would be most of this file's run time. No test using these
# fixtures may change a file; the ones that do take ``site`` and ``serve`` / ``target``.


@pytest.fixture(scope="module")
def ro_site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("ro-site"))


@contextlib.contextmanager
def bourbon_on(site: Site, *args: str) -> Iterator[Server]:
    """bourbon in front of static_app with ``--static /static/=ROOT`` and ``args``, stopped
    by its process group at the end."""
    argv = [bourbon_exe(), APP, "--static", f"/static/={site.root}", *args]
    if "-b" not in args:
        argv += ["-b", "127.0.0.1:0"]
    srv = Server(argv, APPS, base_env(), 30.0)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def ro(ro_site) -> Iterator[Endpoint]:
    """bourbon with the defaults (``--static-missing app``)."""
    with bourbon_on(ro_site) as srv:
        yield Endpoint("bourbon", tcp_connector(*srv.host_port), srv)


@pytest.fixture(scope="module")
def ro404(ro_site) -> Iterator[Endpoint]:
    """bourbon with ``--static-missing 404``."""
    with bourbon_on(ro_site, "--static-missing", "404") as srv:
        yield Endpoint("bourbon", tcp_connector(*srv.host_port), srv)


@pytest.fixture(scope="module")
def ro_nginx(ro_site, tmp_path_factory) -> Iterator[Endpoint]:
    proc, port = start_nginx(ro_site, tmp_path_factory.mktemp("ro-nginx") / "nginx")
    try:
        yield Endpoint("nginx", tcp_connector("127.0.0.1", port))
    finally:
        stop_group(proc)


@pytest.fixture(scope="module", params=["bourbon", "nginx"])
def ro_target(request) -> Endpoint:
    """The server a read-only shared test talks to: ``ro404`` or nginx."""
    return request.getfixturevalue("ro_nginx" if request.param == "nginx" else "ro404")


@pytest.fixture(scope="module")
def ro_short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="bb-static-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def ro_index(ro_site, ro_short_dir) -> Iterator[tuple[Endpoint, Endpoint]]:
    """bourbon with ``--static-index index.html`` on TCP and on a unix socket: the two
    endpoints of one server."""
    sock = ro_short_dir / "s.sock"
    args = ("--static-index", "index.html", "-b", "127.0.0.1:0", "-b", f"unix:{sock}")
    with bourbon_on(ro_site, *args) as srv:
        yield (
            Endpoint("bourbon", tcp_connector(*srv.host_port), srv),
            Endpoint("bourbon", unix_connector(sock), srv),
        )


@pytest.fixture(scope="module")
def ro_handover(ro_site) -> Iterator[Endpoint]:
    """bourbon with ``--static-internal /protected/=PROTECTED``."""
    with bourbon_on(ro_site, "--static-internal", f"/protected/={ro_site.protected}") as srv:
        yield Endpoint("bourbon", tcp_connector(*srv.host_port), srv)


@contextlib.contextmanager
def wsgiref_static_app() -> Iterator[int]:
    """static_app on the standard library's wsgiref server, in a thread of this process; its
    port. It is the nginx reference's upstream for hand-overs, so that reference does not
    depend on what bourbon does with X-Accel-Redirect."""
    spec = importlib.util.spec_from_file_location("static_app_reference", APPS / "static_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = make_server("127.0.0.1", 0, module.app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def ro_handover_nginx(ro_site, tmp_path_factory) -> Iterator[Endpoint]:
    """nginx in front of static_app, handing files over from its internal /protected/."""
    with wsgiref_static_app() as upstream:
        tmp = tmp_path_factory.mktemp("ro-handover-nginx") / "nginx"
        proc, port = start_nginx(ro_site, tmp, upstream)
        try:
            yield Endpoint("nginx", tcp_connector("127.0.0.1", port))
        finally:
            stop_group(proc)


@pytest.fixture(scope="module", params=["bourbon", "nginx"])
def ro_handover_target(request) -> Endpoint:
    """bourbon with an internal location, or nginx doing the same hand-overs."""
    name = "ro_handover_nginx" if request.param == "nginx" else "ro_handover"
    return request.getfixturevalue(name)


# ---------------------------------------------------------------------------------------------
# Whole files, HEAD, validators


# Also checked against nginx.
@pytest.mark.parametrize("rel", ["blob.bin", "big.bin", "css/app.css", "empty.txt"])
def test_whole_file_bytes_length_and_validators(ro_target, rel):
    resp = ro_target.get(f"/static/{rel}")
    assert_whole(resp, FILES[rel])
    assert resp.header("last-modified") == LAST_MODIFIED
    etag = resp.header("etag")
    assert etag and re.fullmatch(r'"[^"]+"', etag), f"not a strong entity tag: {etag!r}"
    if rel != "empty.txt":
        assert resp.header("accept-ranges") == "bytes"


# Also checked against nginx.
def test_query_string_is_not_part_of_the_file_name(ro_target):
    assert_whole(ro_target.get("/static/css/app.css?v=3&x=%2e%2e"), FILES["css/app.css"])


# Also checked against nginx.
@pytest.mark.parametrize("rel", ["blob.bin", "css/app.css", "js/app.js"])
def test_head_has_the_get_headers_and_no_body(ro_target, rel):
    get = ro_target.get(f"/static/{rel}")
    head = ro_target.head(f"/static/{rel}")
    assert (head.status, head.body) == (200, b"")
    assert without_date(head) == without_date(get)


# Also checked against nginx.
def test_keep_alive_sequence_of_static_responses(ro_target):
    """Bodiless and partial answers keep the connection's framing: six requests pipelined on
    one connection, each answer read where the previous one ended."""
    data = FILES["blob.bin"]
    etag = ro_target.get("/static/blob.bin").header("etag")
    reqs = [
        ("HEAD", ()),
        ("GET", (f"If-None-Match: {etag}",)),
        ("GET", ("Range: bytes=100-199",)),
        ("GET", ("Range: bytes=5000-",)),
        ("GET", ()),
        # Last: nginx closes the connection after a 412 (bourbon need not).
        ("GET", ('If-Match: "nope"',)),
    ]
    wire = b"".join(
        (
            "\r\n".join([f"{m} /static/blob.bin HTTP/1.1", "Host: localhost", *hs]) + "\r\n\r\n"
        ).encode()
        for m, hs in reqs
    )
    with contextlib.closing(ro_target.connect()) as s:
        s.settimeout(TIMEOUT)
        s.sendall(wire)
        reader = Reader(s)
        got = [reader.response(m) for m, _ in reqs]
    assert [r.status for r in got] == [200, 304, 206, 416, 200, 412]
    assert got[0].body == b"" and got[1].body == b""
    assert_partial(got[2], data, 100, 199)
    assert got[3].header("content-range") == "bytes */1024"
    assert_whole(got[4], data)


def test_etag_and_last_modified_exact_form(ro, ro_site):
    # bourbon only: nginx's ETag is "<mtime seconds hex>-<size hex>".
    path = ro_site.file("css/app.css")
    resp = ro.get("/static/css/app.css")
    assert resp.header("etag") == etag_of(path) == '"65937d25.75bcd15-16"'
    assert resp.header("last-modified") == LAST_MODIFIED
    assert resp.header("date")


CONTENT_TYPES = [
    ("page.html", "text/html; charset=utf-8"),
    ("notes.txt", "text/plain; charset=utf-8"),
    ("css/app.css", "text/css; charset=utf-8"),
    ("js/plain.js", ("text/javascript; charset=utf-8", "application/javascript; charset=utf-8")),
    ("data.json", "application/json; charset=utf-8"),
    ("feed.xml", ("application/xml; charset=utf-8", "text/xml; charset=utf-8")),
    ("icon.svg", "image/svg+xml; charset=utf-8"),
    ("site.webmanifest", "application/manifest+json; charset=utf-8"),
    ("logo.png", "image/png"),
    ("font.woff2", "font/woff2"),
    ("data.qqq", "application/octet-stream"),
    ("README", "application/octet-stream"),
]


@pytest.mark.parametrize(("rel", "expected"), CONTENT_TYPES)
def test_content_type_by_extension_with_charset_on_text(ro, rel, expected):
    # bourbon only: nginx adds no charset unless told to.
    resp = ro.get(f"/static/{rel}")
    assert_whole(resp, FILES[rel])
    allowed = expected if isinstance(expected, tuple) else (expected,)
    assert resp.header("content-type") in allowed, resp.headers


def test_unknown_file_under_prefix_with_static_missing_404_is_short_text(ro404):
    srv = ro404
    n = len(srv.seen())
    resp = srv.get("/static/no/such/file.css")
    assert resp.status == 404 and not from_app(resp)
    assert (resp.header("content-type") or "").startswith("text/"), resp.headers
    assert len(resp.body) < 512
    assert srv.seen()[n:] == []


# ---------------------------------------------------------------------------------------------
# Conditional requests (RFC 9110 §13)


# Also checked against nginx.
@pytest.mark.parametrize(
    "inm",
    ["{etag}", "W/{etag}", '"other", {etag}', '"a",{etag} , "b"', "*"],
    ids=["single", "weak", "list", "list-spaces", "star"],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_none_match_matching_gives_304(ro_target, inm, method):
    etag = ro_target.get("/static/blob.bin").header("etag")
    resp = ro_target.request(method, "/static/blob.bin", f"If-None-Match: {inm.format(etag=etag)}")
    assert_not_modified(resp, etag)


# Also checked against nginx.
@pytest.mark.parametrize("inm", ['"other"', 'W/"other", "x"', '""'])
def test_if_none_match_not_matching_gives_200(ro_target, inm):
    assert_whole(ro_target.get("/static/blob.bin", f"If-None-Match: {inm}"), FILES["blob.bin"])


# Also checked against nginx.
@pytest.mark.parametrize(
    ("ims", "status"),
    [(LAST_MODIFIED, 304), (AFTER, 304), (BEFORE, 200), ("yesterday", 200), ("", 200)],
    ids=["equal", "later", "earlier", "unparsable", "empty"],
)
def test_if_modified_since(ro_target, ims, status):
    resp = ro_target.get("/static/blob.bin", f"If-Modified-Since: {ims}")
    if status == 304:
        assert_not_modified(resp)
    else:
        assert_whole(resp, FILES["blob.bin"])


# Also checked against nginx.
def test_if_none_match_not_matching_overrides_if_modified_since(ro_target):
    # RFC 9110 §13.1.3: with If-None-Match present, If-Modified-Since is not evaluated; here
    # the date alone would give 304.
    resp = ro_target.get(
        "/static/blob.bin", 'If-None-Match: "other"', f"If-Modified-Since: {AFTER}"
    )
    assert_whole(resp, FILES["blob.bin"])


def test_if_none_match_matching_overrides_an_old_if_modified_since(ro):
    # bourbon only: nginx evaluates both and answers 200 here; RFC 9110 §13.2.2 step 3-4
    # says If-Modified-Since is ignored when If-None-Match is present.
    srv = ro
    etag = srv.get("/static/blob.bin").header("etag")
    resp = srv.get("/static/blob.bin", f"If-None-Match: {etag}", f"If-Modified-Since: {BEFORE}")
    assert_not_modified(resp, etag)


# Also checked against nginx.
@pytest.mark.parametrize(
    ("im", "status"),
    [
        ('"other"', 412),
        ("W/{etag}", 412),  # If-Match uses the strong comparison
        ('"x", "y"', 412),
        ("{etag}", 200),
        ('"x", {etag}', 200),
        ("*", 200),
    ],
    ids=["other", "weak", "list-miss", "same", "list-hit", "star"],
)
def test_if_match(ro_target, im, status):
    etag = ro_target.get("/static/blob.bin").header("etag")
    resp = ro_target.get("/static/blob.bin", f"If-Match: {im.format(etag=etag)}")
    if status == 412:
        assert resp.status == 412, (resp.status, resp.headers)
        assert FILES["blob.bin"] not in resp.body
    else:
        assert_whole(resp, FILES["blob.bin"])


# Also checked against nginx.
@pytest.mark.parametrize(
    ("ius", "status"),
    [(BEFORE, 412), (LAST_MODIFIED, 200), (AFTER, 200)],
    ids=["earlier", "equal", "later"],
)
def test_if_unmodified_since(ro_target, ius, status):
    resp = ro_target.get("/static/blob.bin", f"If-Unmodified-Since: {ius}")
    if status == 412:
        assert resp.status == 412, (resp.status, resp.headers)
    else:
        assert_whole(resp, FILES["blob.bin"])


def test_if_unmodified_since_unparsable_is_ignored(ro):
    # bourbon only: nginx answers 412 to a date it cannot parse; RFC 9110 §13.1.4 says a
    # recipient MUST ignore an invalid date.
    resp = ro.get("/static/blob.bin", "If-Unmodified-Since: not a date")
    assert_whole(resp, FILES["blob.bin"])


def test_if_match_true_means_if_unmodified_since_is_not_evaluated(ro):
    # bourbon only: RFC 9110 §13.2.2 evaluates If-Unmodified-Since only without If-Match;
    # nginx evaluates both (412 here).
    srv = ro
    etag = srv.get("/static/blob.bin").header("etag")
    resp = srv.get("/static/blob.bin", f"If-Match: {etag}", f"If-Unmodified-Since: {BEFORE}")
    assert_whole(resp, FILES["blob.bin"])


# Also checked against nginx.
def test_preconditions_come_before_the_range(ro_target):
    etag = ro_target.get("/static/blob.bin").header("etag")
    assert_not_modified(
        ro_target.get("/static/blob.bin", "Range: bytes=0-9", f"If-None-Match: {etag}")
    )
    resp = ro_target.get("/static/blob.bin", "Range: bytes=0-9", 'If-Match: "other"')
    assert resp.status == 412


def test_not_modified_carries_cache_control_and_no_content_length(ro):
    # bourbon only (nginx's 304 has no Cache-Control unless configured).
    srv = ro
    etag = srv.get("/static/css/app.css").header("etag")
    resp = srv.get("/static/css/app.css", f"If-None-Match: {etag}")
    assert_not_modified(resp, etag)
    assert resp.header("cache-control") == "public, max-age=60"
    assert resp.header("vary") is None  # no variant of app.css exists
    resp = srv.get(f"/static/{HASHED}", f"If-Modified-Since: {LAST_MODIFIED}")
    assert_not_modified(resp)
    assert resp.header("cache-control") == IMMUTABLE


# ---------------------------------------------------------------------------------------------
# Ranges (RFC 9110 §14)


# Also checked against nginx.
@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-19", 10, 19),
        ("bytes=0-0", 0, 0),
        ("bytes=1023-1023", 1023, 1023),
        ("bytes=-5", 1019, 1023),
        ("bytes=-5000", 0, 1023),  # a suffix longer than the file: all of it
        ("bytes=1000-", 1000, 1023),
        ("bytes=1020-5000", 1020, 1023),  # last-pos past the end is clamped
        ("BYTES=3-4", 3, 4),  # range units are case-insensitive
    ],
)
def test_single_range_gives_206(ro_target, spec, first, last):
    resp = ro_target.get("/static/blob.bin", f"Range: {spec}")
    assert_partial(resp, FILES["blob.bin"], first, last)
    assert resp.header("etag") and resp.header("last-modified") == LAST_MODIFIED


# Also checked against nginx.
def test_range_in_a_large_file(ro_target):
    data = FILES["big.bin"]
    first = 2 * 1024 * 1024 + 7
    resp = ro_target.get("/static/big.bin", f"Range: bytes={first}-{first + 70000}")
    assert_partial(resp, data, first, first + 70000)
    resp = ro_target.get("/static/big.bin", "Range: bytes=-3")
    assert_partial(resp, data, len(data) - 3, len(data) - 1)


# Also checked against nginx (with max_ranges 1).
@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "bytes=0-1, -3", "bytes=0-9,0-9"])
def test_several_ranges_give_the_whole_file(ro_target, spec):
    assert_whole(ro_target.get("/static/blob.bin", f"Range: {spec}"), FILES["blob.bin"])


# Also checked against nginx.
def test_range_of_another_unit_is_ignored(ro_target):
    assert_whole(ro_target.get("/static/blob.bin", "Range: items=0-9"), FILES["blob.bin"])


@pytest.mark.parametrize(
    "spec",
    ["bytes=abc", "bytes=5-2", "bytes=", "bytes=--1", "bytes 0-1", "bytes=1-2-3", "bytes=x-"],
)
def test_malformed_range_is_ignored(ro, spec):
    # bourbon only: nginx answers 416 to malformed byte ranges; RFC 9110 §14.2 lets a server
    # ignore a Range it cannot parse, and the design says it does.
    assert_whole(ro.get("/static/blob.bin", f"Range: {spec}"), FILES["blob.bin"])


# Also checked against nginx.
@pytest.mark.parametrize("spec", ["bytes=1024-", "bytes=5000-6000", "bytes=-0", "bytes=1024-1030"])
def test_unsatisfiable_range_gives_416(ro_target, spec):
    resp = ro_target.get("/static/blob.bin", f"Range: {spec}")
    assert resp.status == 416, (resp.status, resp.headers)
    assert resp.header("content-range") == "bytes */1024"
    assert FILES["blob.bin"][:64] not in resp.body


def test_range_on_an_empty_file_gives_416(ro):
    # bourbon only: nginx answers 200 (it skips ranges on empty files); by the design any
    # first-pos is >= 0 = the length.
    resp = ro.get("/static/empty.txt", "Range: bytes=0-")
    assert resp.status == 416
    assert resp.header("content-range") == "bytes */0"


def test_head_ignores_range(ro):
    # bourbon only: nginx answers 206 to HEAD with Range; RFC 9110 §14.2 defines range
    # handling for GET only.
    resp = ro.head("/static/blob.bin", "Range: bytes=0-9")
    assert (resp.status, resp.body) == (200, b"")
    assert resp.header("content-length") == "1024"
    assert resp.header("content-range") is None


# Also checked against nginx.
@pytest.mark.parametrize(
    ("if_range", "partial"),
    [
        ("{etag}", True),
        ("W/{etag}", False),  # If-Range uses the strong comparison
        ('"other"', False),
        (LAST_MODIFIED, True),
        (AFTER, False),  # a date must equal Last-Modified exactly
        (BEFORE, False),
    ],
    ids=["etag", "weak-etag", "other-etag", "date-equal", "date-later", "date-earlier"],
)
def test_if_range(ro_target, if_range, partial):
    etag = ro_target.get("/static/blob.bin").header("etag")
    resp = ro_target.get(
        "/static/blob.bin", "Range: bytes=100-109", f"If-Range: {if_range.format(etag=etag)}"
    )
    if partial:
        assert_partial(resp, FILES["blob.bin"], 100, 109)
    else:
        assert_whole(resp, FILES["blob.bin"])


def test_if_range_with_the_date_of_a_file_modified_this_second_sends_it_whole(serve, site):
    """A Last-Modified less than a second old is a weak validator (RFC 9110 §8.8.2.2): an
    If-Range date equal to it must not let a range of a possibly newer version through."""
    srv = serve()
    path = site.file("notes.txt")
    write(path, b"0123456789" * 10, time.time_ns())
    lm = srv.get("/static/notes.txt").header("last-modified")
    resp = srv.get("/static/notes.txt", "Range: bytes=0-3", f"If-Range: {lm}")
    assert_whole(resp, b"0123456789" * 10)


def test_a_modification_time_in_the_future_is_sent_as_the_date(serve, site):
    """RFC 9110 §8.8.2.1: Last-Modified is never later than the response's Date."""
    srv = serve()
    future = time.time_ns() + 86_400 * 10**9
    write(site.file("notes.txt"), b"from the future\n", future)
    resp = srv.get("/static/notes.txt")
    assert_whole(resp, b"from the future\n")
    sent = email.utils.parsedate_to_datetime(resp.header("last-modified"))
    date = email.utils.parsedate_to_datetime(resp.header("date"))
    assert sent <= date, (resp.header("last-modified"), resp.header("date"))


# ---------------------------------------------------------------------------------------------
# Methods


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_an_existing_file_get_405_with_allow(ro, method):
    # bourbon only: nginx also answers 405, but without Allow.
    srv = ro
    n = len(srv.seen())
    resp = srv.request(method, "/static/css/app.css", "Content-Length: 5", body=b"hello")
    assert resp.status == 405, (resp.status, resp.headers)
    assert resp.header("allow") == "GET, HEAD"
    assert not from_app(resp)
    assert srv.seen()[n:] == []
    # The server still serves after a refused body.
    assert srv.get("/static/css/app.css").status == 200


def test_post_to_a_missing_file_reaches_the_app(ro):
    srv = ro
    n = len(srv.seen())
    resp = srv.request("POST", "/static/nothing-here", "Content-Length: 2", body=b"hi")
    assert from_app(resp) and resp.status == 404
    assert srv.seen()[n:] == ["/static/nothing-here"]


# ---------------------------------------------------------------------------------------------
# Files changing on disk: no stale bytes, lengths or validators on the next request


def set_mtime(path: Path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


# Also checked against nginx.
def test_file_rewritten_in_place_with_another_size(target, site):
    path = site.file("notes.txt")
    old = target.get("/static/notes.txt")
    assert_whole(old, FILES["notes.txt"])
    new = b"rewritten in place, and longer than before\n" * 3
    with open(path, "r+b") as f:  # the same inode, as an editor's in-place save
        f.write(new)
        f.truncate()
    set_mtime(path, MTIME_NS + 10 * 10**9)
    resp = target.get("/static/notes.txt")
    assert_whole(resp, new)
    assert resp.header("etag") != old.header("etag")
    assert resp.header("last-modified") == http_date(MTIME_NS + 10 * 10**9)
    # The old validator no longer matches.
    assert_whole(target.get("/static/notes.txt", f"If-None-Match: {old.header('etag')}"), new)
    # Shorter again: no stale length may frame the response.
    with open(path, "r+b") as f:
        f.write(b"short\n")
        f.truncate()
    set_mtime(path, MTIME_NS + 20 * 10**9)
    assert_whole(target.get("/static/notes.txt"), b"short\n")


# Also checked against nginx.
def test_file_replaced_by_rename(target, site):
    old = target.get("/static/css/app.css")
    new = b"body { color: #fff; } /* replaced by rename */\n"
    tmp = site.file("css/.app.css.tmp")
    write(tmp, new, MTIME_NS + 5 * 10**9)
    os.replace(tmp, site.file("css/app.css"))
    resp = target.get("/static/css/app.css")
    assert_whole(resp, new)
    assert resp.header("etag") != old.header("etag")
    assert resp.header("last-modified") == http_date(MTIME_NS + 5 * 10**9)
    assert_partial(
        target.get("/static/css/app.css", "Range: bytes=-5"), new, len(new) - 5, len(new) - 1
    )


# Also checked against nginx.
def test_file_deleted_then_created_again(target, site):
    path = site.file("docs/guide.txt")
    assert_whole(target.get("/static/docs/guide.txt"), FILES["docs/guide.txt"])
    path.unlink()
    assert target.get("/static/docs/guide.txt").status == 404
    write(path, b"back again\n")
    assert_whole(target.get("/static/docs/guide.txt"), b"back again\n")


# Also checked against nginx.
def test_file_created_after_a_miss(target, site):
    assert target.get("/static/new/later.txt").status == 404
    write(site.file("new/later.txt"), b"I exist now\n")
    assert_whole(target.get("/static/new/later.txt"), b"I exist now\n")


# Also checked against nginx.
def test_directory_swapped_by_rename(target, site):
    """The deploy pattern: build a new directory beside the old one, rename it into place."""
    assert_whole(target.get("/static/docs/guide.txt"), FILES["docs/guide.txt"])
    fresh = site.root / "docs.new"
    write(fresh / "guide.txt", b"guide from the new release\n", MTIME_NS + 10**9)
    site.file("docs").rename(site.root / "docs.old")
    fresh.rename(site.file("docs"))
    assert_whole(target.get("/static/docs/guide.txt"), b"guide from the new release\n")


def test_release_swaps_of_the_root_itself(start_server, tmp_path):
    """The mount's directory is a `current` symlink flipped to a new release, then a
    directory renamed over the path: each is served from the next request on. (bourbon only:
    nginx resolves the alias path per request too, but this suite's nginx serves a fixed
    tree.)"""
    releases = tmp_path / "releases"
    for n in (1, 2, 3):
        write(releases / str(n) / "app.css", f"release {n}\n".encode(), MTIME_NS + n * 10**9)
    current = tmp_path / "current"
    current.symlink_to(releases / "1")
    srv = start_server(APP, "--static", f"/static/={current}", "--static-missing", "404")
    ep = Endpoint("bourbon", tcp_connector(*srv.host_port), srv)
    assert_whole(ep.get("/static/app.css"), b"release 1\n")
    # `ln -sfn releases/2 current`: a new link renamed over the old one.
    tmp_link = tmp_path / "current.tmp"
    tmp_link.symlink_to(releases / "2")
    tmp_link.rename(current)
    assert_whole(ep.get("/static/app.css"), b"release 2\n")
    # A directory renamed over the path.
    current.unlink()
    (releases / "3").rename(current)
    assert_whole(ep.get("/static/app.css"), b"release 3\n")


# Also checked against nginx.
def test_repeated_same_size_rewrites_are_each_seen(target, site):
    """Twenty rewrites, each with the same size and a new mtime, each requested at once:
    an invalidation that arrives late would serve an older version at least once."""
    path = site.file("notes.txt")
    for i in range(20):
        body = f"version {i:04d}\n".encode()
        with open(path, "r+b") as f:
            f.write(body)
            f.truncate()
        set_mtime(path, MTIME_NS + (i + 1) * 10**9)
        resp = target.get("/static/notes.txt")
        assert_whole(resp, body)
        assert resp.header("last-modified") == http_date(MTIME_NS + (i + 1) * 10**9), i


def test_same_size_rewrite_changes_the_etag_with_the_nanoseconds(serve, site):
    # bourbon only: its ETag carries the mtime's nanoseconds (nginx's only the seconds).
    srv = serve()
    path = site.file("notes.txt")
    before = srv.get("/static/notes.txt").header("etag")
    path.write_bytes(b"PLAIN NOTES\n")  # same size
    set_mtime(path, MTIME_NS + 1)  # one nanosecond later: same Last-Modified
    resp = srv.get("/static/notes.txt")
    assert_whole(resp, b"PLAIN NOTES\n")
    assert resp.header("last-modified") == LAST_MODIFIED
    assert resp.header("etag") == etag_of(path) != before


def test_deleted_file_goes_to_the_app_with_static_missing_app(serve, site):
    srv = serve()
    assert srv.get("/static/docs/guide.txt").status == 200
    site.file("docs/guide.txt").unlink()
    resp = srv.get("/static/docs/guide.txt")
    assert from_app(resp) and resp.status == 404
    assert srv.seen() == ["/static/docs/guide.txt"]


# ---------------------------------------------------------------------------------------------
# Pre-compressed variants


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        (None, None),
        ("gzip", "gzip"),
        ("br", "br"),
        ("gzip, br", "br"),  # a tie: brotli first
        ("br, gzip", "br"),
        ("GZIP", "gzip"),  # content codings are case-insensitive
        ("br;q=0, gzip", "gzip"),
        ("br;q=0", None),
        ("gzip;q=0.5, br;q=0.9", "br"),
        ("gzip;q=0.9, br;q=0.5", "gzip"),
        ("gzip; q=1.0, br; q=0.999", "gzip"),
        ("*", "br"),
        ("*;q=0", None),
        ("gzip;q=0.5, *;q=0.9", "br"),  # * covers br, which is not listed
        ("br;q=0, *", "gzip"),
        ("identity", None),
        ("identity, gzip;q=0", None),
        ("deflate, compress", None),
        ("", None),
    ],
)
def test_variant_negotiation(ro, ro_site, accept, coding):
    headers = () if accept is None else (f"Accept-Encoding: {accept}",)
    resp = ro.get("/static/js/app.js", *headers)
    assert resp.status == 200, resp
    name = {None: "js/app.js", "gzip": "js/app.js.gz", "br": "js/app.js.br"}[coding]
    assert resp.header("content-encoding") == coding, resp.headers
    assert_whole(resp, FILES[name])
    suffix = {None: "", "gzip": "-gz", "br": "-br"}[coding]
    assert resp.header("etag") == etag_of(ro_site.file(name), suffix)
    assert resp.header("vary") == "Accept-Encoding"
    # The original's type, whichever file is sent.
    assert (resp.header("content-type") or "").endswith("javascript; charset=utf-8")


@pytest.mark.parametrize(("accept", "coding"), [("br, gzip", "gzip"), ("br", None)])
def test_only_the_variants_that_exist_are_used(ro, accept, coding):
    resp = ro.get("/static/js/gzonly.js", f"Accept-Encoding: {accept}")
    assert resp.header("content-encoding") == coding
    assert_whole(resp, FILES["js/gzonly.js.gz" if coding else "js/gzonly.js"])
    assert resp.header("vary") == "Accept-Encoding"


def test_vary_on_every_response_for_a_file_with_variants(ro):
    srv = ro
    url = "/static/js/app.js"
    etags = {ae: srv.get(url, f"Accept-Encoding: {ae}").header("etag") for ae in ("br", "gzip")}
    etags["identity"] = srv.get(url).header("etag")
    assert len(set(etags.values())) == 3, etags
    responses = [
        srv.get(url),
        srv.head(url, "Accept-Encoding: br"),
        srv.get(url, "Accept-Encoding: gzip", "Range: bytes=0-3"),
        srv.get(url, "Accept-Encoding: gzip", f"If-None-Match: {etags['gzip']}"),
        srv.get(url, f"If-None-Match: {etags['identity']}"),
        srv.get(url, "Range: bytes=99999-"),
    ]
    assert [r.status for r in responses] == [200, 200, 206, 304, 304, 416]
    for r in responses:
        assert r.header("vary") == "Accept-Encoding", (r.status, r.headers)
    # A file without variants varies on nothing.
    assert srv.get("/static/js/plain.js", "Accept-Encoding: br").header("vary") is None


def test_validators_are_per_variant(ro):
    srv = ro
    url = "/static/js/app.js"
    gz_etag = srv.get(url, "Accept-Encoding: gzip").header("etag")
    # The gzip ETag matches the gzip variant only: an identity request gets the full file.
    assert_not_modified(srv.get(url, "Accept-Encoding: gzip", f"If-None-Match: {gz_etag}"))
    assert_whole(srv.get(url, f"If-None-Match: {gz_etag}"), JS)
    # If-Range with the brotli ETag while gzip is chosen: the Range is ignored.
    br_etag = srv.get(url, "Accept-Encoding: br").header("etag")
    resp = srv.get(url, "Accept-Encoding: gzip", "Range: bytes=0-9", f"If-Range: {br_etag}")
    assert_whole(resp, FILES["js/app.js.gz"])


def test_range_applies_to_the_variant_bytes(ro):
    srv = ro
    gz = FILES["js/app.js.gz"]
    resp = srv.get("/static/js/app.js", "Accept-Encoding: gzip", "Range: bytes=10-29")
    assert_partial(resp, gz, 10, 29)
    assert resp.header("content-encoding") == "gzip"
    resp = srv.get("/static/js/app.js", "Accept-Encoding: br", "Range: bytes=-7")
    assert_partial(resp, JS_BR, len(JS_BR) - 7, len(JS_BR) - 1)
    resp = srv.get("/static/js/app.js", "Accept-Encoding: br", f"Range: bytes={len(JS_BR)}-")
    assert resp.status == 416 and resp.header("content-range") == f"bytes */{len(JS_BR)}"


def test_head_of_a_variant(ro):
    resp = ro.head("/static/js/app.js", "Accept-Encoding: gzip")
    assert (resp.status, resp.body) == (200, b"")
    assert resp.header("content-encoding") == "gzip"
    assert resp.header("content-length") == str(len(FILES["js/app.js.gz"]))


def test_a_variant_requested_by_name_is_an_ordinary_file(ro):
    resp = ro.get("/static/js/app.js.gz", "Accept-Encoding: gzip, br")
    assert_whole(resp, FILES["js/app.js.gz"])
    assert resp.header("content-encoding") is None


def test_variant_changes_on_disk_are_seen(serve, site):
    srv = serve()
    assert (
        srv.get("/static/js/app.js", "Accept-Encoding: br, gzip").header("content-encoding") == "br"
    )
    site.file("js/app.js.br").unlink()
    resp = srv.get("/static/js/app.js", "Accept-Encoding: br, gzip")
    assert resp.header("content-encoding") == "gzip"
    assert_whole(resp, site.data("js/app.js.gz"))
    new_gz = gzip.compress(b"var replaced = 1;\n", mtime=0)
    write(site.file("js/app.js.gz"), new_gz, MTIME_NS + 10**9)
    assert_whole(srv.get("/static/js/app.js", "Accept-Encoding: gzip"), new_gz)
    site.file("js/app.js.gz").unlink()
    resp = srv.get("/static/js/app.js", "Accept-Encoding: br, gzip")
    assert resp.header("content-encoding") is None
    assert_whole(resp, JS)
    # No variant left: nothing to vary on.
    assert resp.header("vary") is None
    write(site.file("js/app.js.br"), JS_BR)
    resp = srv.get("/static/js/app.js", "Accept-Encoding: br")
    assert resp.header("content-encoding") == "br" and resp.header("vary") == "Accept-Encoding"


# ---------------------------------------------------------------------------------------------
# Cache-Control


def test_cache_control_hashed_name_is_immutable(ro):
    srv = ro
    resp = srv.get(f"/static/{HASHED}")
    assert_whole(resp, FILES[HASHED])
    assert resp.header("cache-control") == IMMUTABLE
    # The unhashed original, named as a key in the manifest, is not.
    assert srv.get("/static/css/app.css").header("cache-control") == "public, max-age=60"
    assert srv.get("/static/blob.bin").header("cache-control") == "public, max-age=60"
    # The same on partial responses and HEAD.
    assert srv.get(f"/static/{HASHED}", "Range: bytes=0-3").header("cache-control") == IMMUTABLE
    assert srv.head(f"/static/{HASHED}").header("cache-control") == IMMUTABLE


def test_static_max_age_changes_the_default(serve):
    srv = serve("--static-max-age", "5")
    assert srv.get("/static/css/app.css").header("cache-control") == "public, max-age=5"
    assert srv.get(f"/static/{HASHED}").header("cache-control") == IMMUTABLE


def test_without_a_manifest_nothing_is_immutable(serve, site):
    site.file("staticfiles.json").unlink()
    srv = serve()
    assert srv.get(f"/static/{HASHED}").header("cache-control") == "public, max-age=60"


# ---------------------------------------------------------------------------------------------
# Missing files, directories, index, mounts


def test_static_missing_app_passes_missing_files_to_the_app(ro):
    srv = ro  # --static-missing app is the default
    n = len(srv.seen())
    resp = srv.get("/static/css/missing.css?x=1")
    assert from_app(resp) and resp.status == 404
    assert resp.body == b"static_app: /static/css/missing.css?x=1\n"
    assert srv.seen()[n:] == ["/static/css/missing.css?x=1"]


def test_static_missing_404_answers_at_once(ro404):
    srv = ro404
    n = len(srv.seen())
    resp = srv.get("/static/css/missing.css")
    assert resp.status == 404 and not from_app(resp)
    assert srv.seen()[n:] == []
    # Paths outside the prefix still reach the app.
    assert srv.get("/hello").body == b"hello from the app\n"


@pytest.mark.parametrize("missing", ["app", "404"])
def test_no_directory_listing_without_index(request, missing):
    srv = request.getfixturevalue("ro" if missing == "app" else "ro404")
    for url in ("/static/nolisting/", "/static/nolisting", "/static/docs/", "/static/"):
        resp = srv.get(url)
        assert resp.status == 404, (url, resp.status)
        assert from_app(resp) == (missing == "app"), url
        assert b"visible-name" not in resp.body and b"guide.txt" not in resp.body


def test_index_file_for_a_directory_url(ro_index, ro_site):
    srv, _ = ro_index
    resp = srv.get("/static/docs/")
    assert_whole(resp, FILES["docs/index.html"])
    assert resp.header("content-type") == "text/html; charset=utf-8"
    assert resp.header("etag") == etag_of(ro_site.file("docs/index.html"))
    assert_whole(srv.get("/static/"), FILES["index.html"])
    # A directory without the index file is a missing file, never a listing.
    resp = srv.get("/static/nolisting/")
    assert from_app(resp) and b"visible-name" not in resp.body
    assert from_app(srv.get("/static/empty-dir/"))


@pytest.mark.parametrize(
    ("url", "location"),
    [("/static/docs", "/static/docs/"), ("/static/docs?x=1&y=%20", "/static/docs/?x=1&y=%20")],
)
def test_directory_without_slash_redirects(ro_index, url, location):
    srv, _ = ro_index
    n = len(srv.seen())
    resp = srv.get(url)
    assert resp.status == 301, (resp.status, resp.headers)
    loc = urlsplit(resp.header("location") or "")
    want = urlsplit(location)
    assert (loc.path, loc.query) == (want.path, want.query), resp.headers
    assert loc.netloc in ("", "localhost"), resp.headers
    assert srv.seen()[n:] == []


def test_directory_without_its_index_file_is_not_redirected(ro_index):
    srv, _ = ro_index
    resp = srv.get("/static/nolisting")
    assert from_app(resp) and resp.status == 404


@pytest.mark.parametrize("inner_first", [True, False], ids=["inner-first", "outer-first"])
def test_longest_prefix_wins(start_server, site, inner_first):
    outer = ["--static", f"/static/={site.root}"]
    inner = ["--static", f"/static/admin/={site.base / 'inner'}"]
    srv = start_server(APP, *(inner + outer if inner_first else outer + inner))
    ep = Endpoint("bourbon", tcp_connector(*srv.host_port), srv)
    assert_whole(ep.get("/static/admin/shared.css"), INNER["shared.css"])
    assert_whole(ep.get("/static/admin/inner.css"), INNER["inner.css"])
    assert_whole(ep.get("/static/css/app.css"), FILES["css/app.css"])
    # A file only the outer directory has, under the inner prefix: the inner mount decides
    # (missing there), the outer one is not consulted.
    resp = ep.get("/static/admin/only-in-outer.css")
    assert from_app(resp)
    assert ep.seen() == ["/static/admin/only-in-outer.css"]


@pytest.mark.parametrize(
    "url", ["/static", "/static?x=1", "/staticfoo.css", "/statics/css/app.css"]
)
def test_prefix_without_its_slash_goes_to_the_app(ro_index, url):
    srv, _ = ro_index
    n = len(srv.seen())
    resp = srv.get(url)
    assert from_app(resp) and resp.status == 404, (url, resp.status)
    assert srv.seen()[n:] == [url]


def test_prefix_given_without_slash_is_the_same_mount(start_server, site):
    srv = start_server(APP, "--static", f"/static={site.root}")
    ep = Endpoint("bourbon", tcp_connector(*srv.host_port), srv)
    assert_whole(ep.get("/static/css/app.css"), FILES["css/app.css"])
    assert from_app(ep.get("/staticfoo.css"))


def test_absolute_form_target(ro):
    srv = ro
    resp = srv.get("http://localhost/static/css/app.css")
    assert_whole(resp, FILES["css/app.css"])
    resp = srv.get("http://localhost/static/../secret/secret.txt")
    assert resp.status == 404
    assert_no_secret(resp)


def test_mount_from_the_environment_and_the_uwsgi_name(start_server, site):
    srv = start_server(APP, env={"BOURBON_STATIC": f"/assets/={site.root},/static/={site.root}"})
    ep = Endpoint("bourbon", tcp_connector(*srv.host_port), srv)
    assert_whole(ep.get("/assets/css/app.css"), FILES["css/app.css"])
    assert_whole(ep.get("/static/css/app.css"), FILES["css/app.css"])
    srv = start_server(APP, "--static-map", f"/media/={site.root}")
    ep = Endpoint("bourbon", tcp_connector(*srv.host_port), srv)
    assert_whole(ep.get("/media/blob.bin"), FILES["blob.bin"])


# ---------------------------------------------------------------------------------------------
# Safety: byte-exact targets that try to leave the root


# (name, raw target, status). "refused" targets must never reach the app.
ESCAPES = [
    ("dotdot-raw", "/static/../secret/secret.txt", 404),
    ("dotdot-deep", "/static/css/../../secret/secret.txt", 404),
    ("dotdot-back-in", "/static/css/../css/app.css", 404),
    ("dot-segment", "/static/./css/app.css", 404),
    ("dotdot-encoded", "/static/%2e%2e/secret/secret.txt", 404),
    ("dotdot-encoded-slash-mixed-case", "/static/%2E%2e%2fsecret%2fsecret.txt", 404),
    ("dotdot-then-encoded-slash", "/static/..%2fsecret%2fsecret.txt", 404),
    ("encoded-slash-in-segment", "/static/css%2fapp.css", 404),
    ("encoded-slash-upper", "/static/css%2Fapp.css", 404),
    ("backslash-raw", "/static/..\\secret\\secret.txt", 404),
    ("backslash-raw-inside", "/static/css\\app.css", 404),
    ("backslash-encoded", "/static/..%5csecret%5csecret.txt", 404),
    ("backslash-encoded-upper", "/static/..%5Csecret%5Csecret.txt", 404),
    ("dotfile-env", "/static/.env", 404),
    ("dotfile-env-encoded", "/static/%2eenv", 404),
    ("dotfile-git", "/static/.git/config", 404),
    ("dotfile-nested", "/static/css/.hidden", 404),
    ("dotdot-dotfile", "/static/css/../.env", 404),
    ("symlink-out", "/static/link-out.txt", 404),
    ("symlink-out-absolute", "/static/link-out-abs.txt", 404),
    ("symlink-dir-out", "/static/link-out-dir/secret.txt", 404),
    ("nul-encoded", "/static/css/app.css%00", 400),
    ("nul-before-extension", "/static/a.css%00.png", 400),
    ("control-encoded", "/static/css/app%01.css", 400),
    ("newline-encoded", "/static/css/app.css%0d%0aX-Injected:%201", 400),
    ("bad-percent", "/static/%zz.css", 400),
    ("truncated-percent", "/static/css/app.css%2", 400),
]
# Not refused, just names that do not exist: a missing file (the app, or 404).
MISSES = [
    ("double-encoded", "/static/%252e%252e%252fsecret%252fsecret.txt"),
    ("double-encoded-dotdot", "/static/%252e%252e/secret/secret.txt"),
    ("absolute-after-prefix", "/static//etc/passwd"),
    ("absolute-secret-after-prefix", "/static//{secret}"),
    ("overlong-utf8", "/static/%c0%ae%c0%ae/secret/secret.txt"),
    ("overlong-utf8-slash", "/static/%c0%ae%c0%ae%c0%afsecret%c0%afsecret.txt"),
]


def check_still_serves(srv: Endpoint) -> None:
    assert_whole(srv.get("/static/css/app.css"), FILES["css/app.css"])


@pytest.mark.parametrize(("name", "raw", "status"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_escape_attempt_is_refused_before_the_app(ro, name, raw, status):
    srv = ro  # --static-missing app: a refusal must not be handed to the app either
    n = len(srv.seen())
    resp = srv.send(raw_request("GET", raw))
    assert resp.status == status, (raw, resp.status, resp.body[:200])
    assert not from_app(resp)
    assert_no_secret(resp)
    check_still_serves(srv)
    assert srv.seen()[n:] == [], f"{raw} reached the application"


@pytest.mark.parametrize(("name", "raw"), MISSES, ids=[m[0] for m in MISSES])
def test_names_that_only_look_like_escapes_are_missing_files(ro404, ro_site, name, raw):
    raw = raw.format(secret=str(ro_site.secret).lstrip("/"))
    srv = ro404
    resp = srv.send(raw_request("GET", raw))
    assert resp.status == 404, (raw, resp.status, resp.body[:200])
    assert_no_secret(resp)
    check_still_serves(srv)


@pytest.mark.parametrize(("name", "raw"), MISSES, ids=[m[0] for m in MISSES])
def test_names_that_only_look_like_escapes_reach_the_app_as_missing(ro, ro_site, name, raw):
    raw = raw.format(secret=str(ro_site.secret).lstrip("/"))
    srv = ro
    resp = srv.send(raw_request("GET", raw))
    assert from_app(resp), (raw, resp.status, resp.body[:200])
    assert_no_secret(resp)
    check_still_serves(srv)


def test_escape_attempts_with_every_method_and_head(ro):
    srv = ro
    n = len(srv.seen())
    for method in ("HEAD", "POST", "DELETE"):
        resp = srv.request(method, "/static/../secret/secret.txt", "Content-Length: 0")
        assert resp.status == 404, (method, resp.status)
        assert_no_secret(resp)
    resp = srv.get("/static/link-out.txt", "Range: bytes=0-9")
    assert resp.status == 404
    assert_no_secret(resp)
    assert srv.seen()[n:] == []


def test_symlink_inside_the_root_is_served(ro):
    srv = ro
    assert_whole(srv.get("/static/link-in.css"), FILES["css/app.css"])
    assert_whole(srv.get("/static/link-in-dir/app.css"), FILES["css/app.css"])


def test_follow_symlinks_serves_the_outside_target(serve, site):
    srv = serve("--static-follow-symlinks")
    assert_whole(srv.get("/static/link-out.txt"), SECRET)
    assert_whole(srv.get("/static/link-out-abs.txt"), SECRET)
    assert_whole(srv.get("/static/link-out-dir/secret.txt"), SECRET)
    # Following symlinks relaxes nothing else.
    for raw in ("/static/../secret/secret.txt", "/static/%2e%2e/secret/secret.txt", "/static/.env"):
        resp = srv.send(raw_request("GET", raw))
        assert resp.status == 404, raw
        assert_no_secret(resp)
    assert srv.seen() == []


def test_symlink_retargeted_outside_after_being_served(serve, site):
    srv = serve()
    link = site.file("moving.css")
    link.symlink_to("css/app.css")
    assert_whole(srv.get("/static/moving.css"), FILES["css/app.css"])
    tmp = site.file(".moving.tmp")
    tmp.symlink_to("../secret/secret.txt")
    os.replace(tmp, link)
    resp = srv.get("/static/moving.css")
    assert resp.status == 404
    assert_no_secret(resp)


# ---------------------------------------------------------------------------------------------
# TCP and unix sockets answer alike


# (method, target, header fields, the status both must give)
PARITY_REQUESTS = [
    ("GET", "/static/css/app.css", (), 200),
    ("HEAD", "/static/css/app.css", (), 200),
    ("GET", f"/static/{HASHED}", (), 200),
    ("GET", "/static/blob.bin", ("Range: bytes=10-20",), 206),
    ("GET", "/static/blob.bin", ("Range: bytes=2000-",), 416),
    ("GET", "/static/blob.bin", ("If-Modified-Since: " + LAST_MODIFIED,), 304),
    ("GET", "/static/blob.bin", ('If-Match: "nope"',), 412),
    ("GET", "/static/js/app.js", ("Accept-Encoding: gzip",), 200),
    ("GET", "/static/js/app.js", ("Accept-Encoding: br", "Range: bytes=0-4"), 206),
    ("GET", "/static/docs/", (), 200),
    ("GET", "/static/docs?q=1", (), 301),
    ("GET", "/static/missing.css", (), 404),
    ("GET", "/static/.env", (), 404),
    ("GET", "/static/../secret/secret.txt", (), 404),
    ("GET", "/static/a%00b", (), 400),
    ("POST", "/static/css/app.css", ("Content-Length: 0",), 405),
    ("GET", "/static", (), 404),
]


@pytest.mark.parametrize(
    ("method", "raw", "headers", "status"),
    PARITY_REQUESTS,
    ids=[f"{m} {u} {h}" for m, u, h, _ in PARITY_REQUESTS],
)
def test_tcp_and_unix_answer_alike(ro_index, method, raw, headers, status):
    tcp, unix = ro_index
    data = raw_request(method, raw, headers)
    a, b = tcp.send(data, method), unix.send(data, method)
    assert a.status == status, (a.status, a.headers, a.body[:200])
    assert (a.status, without_date(a), a.body) == (b.status, without_date(b), b.body)
    assert_no_secret(a)


# ---------------------------------------------------------------------------------------------
# Hand-overs: X-Accel-Redirect and X-Sendfile


@pytest.fixture
def handover(serve, site) -> Endpoint:
    return serve("--static-internal", f"/protected/={site.protected}")


def accel(to: str, **params: str) -> str:
    extra = "".join(f"&{k}={quote(v, safe='')}" for k, v in params.items())
    return f"/download/accel?to={quote(to, safe='')}{extra}"


def sendfile(to: str, **params: str) -> str:
    extra = "".join(f"&{k}={quote(v, safe='')}" for k, v in params.items())
    return f"/download/sendfile?to={quote(to, safe='')}{extra}"


def assert_handed_over(resp: Response, data: bytes) -> None:
    assert_whole(resp, data)
    assert resp.header("x-accel-redirect") is None and resp.header("x-sendfile") is None
    assert b"app body" not in resp.body


# Also checked against nginx (in front of static_app, with an internal /protected/).
def test_accel_redirect_serves_the_file_with_the_apps_headers(ro_handover_target, ro_site):
    ep = ro_handover_target
    resp = ep.get(accel("/protected/report.pdf"))
    assert_handed_over(resp, REPORT)
    assert resp.header("content-type") == "application/x-report"  # the app's
    assert resp.header("content-disposition") == 'attachment; filename="report.pdf"'
    assert resp.header("last-modified") == LAST_MODIFIED
    assert re.fullmatch(r'"[^"]+"', resp.header("etag") or ""), resp.headers
    if ep.kind == "bourbon":
        assert resp.header("etag") == etag_of(ro_site.protected / "report.pdf")


# Also checked against nginx.
def test_accel_redirect_keeps_the_apps_cache_and_cookie_headers(ro_handover_target):
    resp = ro_handover_target.get(accel("/protected/report.pdf", extras="1"))
    assert_handed_over(resp, REPORT)
    assert resp.header("cache-control") == "private, max-age=5"
    assert resp.header("expires") == "Thu, 01 Jan 2037 00:00:00 GMT"
    assert resp.header("set-cookie") == "downloaded=1; Path=/"


# Also checked against nginx.
def test_accel_redirect_without_content_type_uses_the_files(ro_handover_target):
    resp = ro_handover_target.get(accel("/protected/report.pdf", type="none"))
    assert_handed_over(resp, REPORT)
    assert resp.header("content-type") == "application/pdf"


# Also checked against nginx.
def test_accel_redirect_ranges_and_conditionals_apply_to_the_file(ro_handover_target):
    ep = ro_handover_target
    url = accel("/protected/report.pdf")
    etag = ep.get(url).header("etag")
    resp = ep.get(url, "Range: bytes=100-199")
    assert_partial(resp, REPORT, 100, 199)
    assert resp.header("content-disposition") == 'attachment; filename="report.pdf"'
    resp = ep.get(url, "Range: bytes=-10")
    assert_partial(resp, REPORT, len(REPORT) - 10, len(REPORT) - 1)
    resp = ep.get(url, f"Range: bytes={len(REPORT)}-")
    assert resp.status == 416 and resp.header("content-range") == f"bytes */{len(REPORT)}"
    assert_partial(ep.get(url, "Range: bytes=0-9", f"If-Range: {etag}"), REPORT, 0, 9)
    assert_not_modified(ep.get(url, f"If-None-Match: {etag}"), etag)
    assert_not_modified(ep.get(url, f"If-Modified-Since: {LAST_MODIFIED}"), etag)
    assert ep.get(url, 'If-Match: "other"').status == 412
    head = ep.head(url)
    assert (head.status, head.body) == (200, b"")
    assert head.header("content-length") == str(len(REPORT))


# Also checked against nginx.
def test_accel_redirect_uri_is_percent_decoded_and_its_query_dropped(ro_handover_target):
    resp = ro_handover_target.get(accel("/protected/my%20report.pdf?version=2"))
    assert_handed_over(resp, REPORT[:1000])


# Also checked against nginx.
def test_accel_redirect_to_a_missing_file_is_404(ro_handover_target):
    resp = ro_handover_target.get(accel("/protected/nope.pdf"))
    assert resp.status == 404
    assert b"app body" not in resp.body


def test_sendfile_absolute_path_under_the_internal_directory(ro_handover, ro_site):
    resp = ro_handover.get(sendfile(str(ro_site.protected / "report.pdf")))
    assert_handed_over(resp, REPORT)
    assert resp.header("content-disposition") == 'attachment; filename="report.pdf"'
    assert_partial(
        ro_handover.get(sendfile(str(ro_site.protected / "report.pdf")), "Range: bytes=0-99"),
        REPORT,
        0,
        99,
    )


@pytest.mark.parametrize(
    ("field", "to"),
    [
        ("X-Accel-Redirect", "/elsewhere/secret.txt"),
        ("X-Accel-Redirect", "/static/css/app.css"),  # a public mount is not an internal one
        ("X-Accel-Redirect", "protected/report.pdf"),
        ("X-Sendfile", "{secret}"),
        ("X-Sendfile", "{root}/css/app.css"),
        ("X-Sendfile", "report.pdf"),
    ],
)
def test_hand_over_outside_the_internal_locations_is_500(handover, site, field, to):
    to = to.format(secret=site.secret, root=site.root)
    url = accel(to) if field == "X-Accel-Redirect" else sendfile(to)
    resp = handover.get(url)
    assert resp.status == 500, (to, resp.status, resp.headers)
    assert_no_secret(resp)
    assert b"app body" not in resp.body
    line = handover.srv.wait_for_log(re.escape(field))
    assert "TOP-SECRET" not in line
    assert "TOP-SECRET" not in handover.srv.log


# Also checked against nginx, which normalises the URI and passes it to the app (404).
@pytest.mark.parametrize(
    "to",
    [
        "/protected/../secret/secret.txt",
        "/protected/%2e%2e/secret/secret.txt",
        "/protected/..%2fsecret%2fsecret.txt",
        "/protected/%2e%2e%2fsecret%2fsecret.txt",
    ],
)
def test_accel_redirect_escaping_the_internal_location_never_sends_the_file(ro_handover_target, to):
    # The design names 500 for a place outside every internal location and 404 for what the
    # path rules refuse; either way the secret stays where it is.
    resp = ro_handover_target.get(accel(to))
    assert resp.status in (404, 500), (to, resp.status)
    assert_no_secret(resp)
    assert b"app body" not in resp.body


def test_sendfile_escaping_the_internal_directory_never_sends_the_file(ro_handover, ro_site):
    to = f"{ro_site.protected}/../secret/secret.txt"
    resp = ro_handover.get(sendfile(to))
    assert resp.status in (404, 500), (to, resp.status)
    assert_no_secret(resp)


# Also checked against nginx (whose internal location answers 404 itself; bourbon's is no
# location for clients at all, so the request reaches the app).
def test_internal_location_is_not_served_to_clients(ro_handover_target):
    ep = ro_handover_target
    for url in ("/protected/report.pdf", "/protected/my%20report.pdf", "/protected/"):
        resp = ep.get(url)
        assert resp.status == 404, (url, resp.status)
        assert REPORT[:200] not in resp.body
        if ep.kind == "bourbon":
            assert from_app(resp), url


def test_hand_over_fields_pass_through_without_internal_locations(ro, ro_site):
    """Without any ``--static-internal`` bourbon does not act on the fields: an application
    behind nginx that hands files to nginx with X-Accel-Redirect keeps working unchanged.

    The design does not say what happens with no internal location at all; a 500 here would
    break every such deployment on upgrade, so this test asks for the pass-through."""
    srv = ro
    resp = srv.get(accel("/protected/report.pdf"))
    assert resp.status == 200 and from_app(resp)
    assert resp.header("x-accel-redirect") == "/protected/report.pdf"
    assert resp.body == b"app body: must never reach the client when a file is handed over\n"
    path = str(ro_site.protected / "report.pdf")
    resp = srv.get(sendfile(path))
    assert resp.status == 200 and resp.header("x-sendfile") == path
    assert REPORT[:200] not in resp.body


# ---------------------------------------------------------------------------------------------
# Access log


def test_static_requests_are_in_the_access_log(serve, site):
    srv = serve("--access-logfile", "-")
    assert srv.get("/static/css/app.css?x=1").status == 200
    size = len(FILES["css/app.css"])
    srv.srv.wait_for_log(rf'"GET /static/css/app\.css\?x=1 HTTP/1\.1" 200 {size} ')
    assert srv.get("/static/blob.bin", "Range: bytes=0-9").status == 206
    srv.srv.wait_for_log(r'"GET /static/blob\.bin HTTP/1\.1" 206 10 ')
    assert srv.get("/static/.env").status == 404
    srv.srv.wait_for_log(r'"GET /static/\.env HTTP/1\.1" 404 ')


# ---------------------------------------------------------------------------------------------
# Bad settings: one line naming the setting, exit 2


def one_line_error(proc: subprocess.CompletedProcess, *must_contain: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    # Not the parser's "unknown option": the setting exists and names what is wrong.
    assert "unknown option" not in lines[0], lines[0]
    for text in must_contain:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    ("args", "must"),
    [
        (["--static", "nosep"], ["--static", "nosep"]),
        (["--static", "/s/=/does/not/exist"], ["--static", "/does/not/exist"]),
        (["--static", "assets/={root}"], ["--static", "assets/"]),
        (["--static", "/s/={root}/blob.bin"], ["--static", "blob.bin"]),
        (["--static-missing", "maybe"], ["--static-missing", "maybe"]),
        (["--static-internal", "nosep"], ["--static-internal", "nosep"]),
        (["--static-internal", "/p/=/does/not/exist"], ["--static-internal", "/does/not/exist"]),
        (["--static-max-age", "soon"], ["--static-max-age", "soon"]),
    ],
)
def test_bad_static_settings_exit_2_with_one_line(site, args, must):
    args = [a.format(root=site.root) for a in args]
    proc = run_bourbon(APP, "-b", "127.0.0.1:0", *args, timeout=30)
    one_line_error(proc, *must)
