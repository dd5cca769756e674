"""The access log: gunicorn's format language, one line per completed request."""

from __future__ import annotations

import re
import urllib.request

from conftest import run_bourbon

LINE = re.compile(
    r"^127\.0\.0\.1 - - \[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "
    r'"GET /hello\?x=1 HTTP/1\.1" 200 13 "http://ref\.example/" "agent/1\.0"$'
)


def test_default_format_line_per_request(start_server):
    srv = start_server("hello_app:app", "--access-logfile", "-")
    req = urllib.request.Request(
        srv.url + "/hello?x=1",
        headers={"User-Agent": "agent/1.0", "Referer": "http://ref.example/"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    line = srv.wait_for_log(r'"GET /hello')
    assert LINE.match(line.strip()), line


def test_custom_format_and_file(start_server, tmp_path):
    log = tmp_path / "access.log"
    srv = start_server(
        "hello_app:app",
        "--access-logfile",
        str(log),
        "--access-logformat",
        '%(m)s %(U)s %(s)s %(B)s %({x-req}i)s "%(a)s"',
    )
    req = urllib.request.Request(
        srv.url + "/hello", headers={"X-Req": 'a"b', "User-Agent": "evil\tagent"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.read() == b"Hello, world!"
    srv.stop()
    text = log.read_text()
    # Quotes and control characters from the client are escaped: no forged fields or lines.
    assert text == 'GET /hello 200 13 a\\"b "evil\\x09agent"\n'


def test_no_access_log_by_default(start_server):
    srv = start_server("hello_app:app")
    with urllib.request.urlopen(srv.url + "/hello", timeout=10) as resp:
        assert resp.status == 200
    srv.stop()
    assert '"GET /hello' not in srv.log


def test_bad_format_is_a_settings_error():
    proc = run_bourbon("hello_app:app", "--access-logfile", "-", "--access-logformat", "%(nope)s")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--access-logformat" in lines[0], proc.stderr
