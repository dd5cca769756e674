"""The example Django site (examples/mysite) served by bourbon, end to end over HTTP.

The site is prepared once per session by conftest's ``django_site`` (migrate, collectstatic,
compress: all idempotent, their outputs gitignored). Clients are the standard library's only.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import pytest
from conftest import EXAMPLE

APP = "mysite.wsgi:application"
SAMPLE = EXAMPLE / "polls" / "files" / "sample.txt"
SAMPLE_SHA256 = "43f551d1abc1783414c2a1c0e99b1863bdd5c34f3a8e5e4c98aaaa70b2050f86"


@pytest.fixture
def srv(start_server, django_site):
    # As `make demo` serves it: static files from Rust, mapped from Django's settings.
    return start_server(APP, "--static", "django", cwd=django_site)


class Client:
    """A tiny cookie-keeping HTTP client over http.client (one connection per request)."""

    def __init__(self, srv):
        self.host, self.port = srv.host_port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        for raw in resp.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return resp, data

    def get(self, path: str, headers=None):
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: dict[str, str]):
        return self.request(
            "POST",
            path,
            body=urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


def csrf_field(html: bytes) -> str:
    m = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert m, html[:2000]
    return m.group(1).decode()


def test_index_template_page(srv):
    resp, body = Client(srv).get("/")
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/html")
    text = body.decode()
    assert "<h1>Latest polls</h1>" in text
    rows = re.findall(r'<tr class="(?:odd|even)">', text)
    assert len(rows) == 50
    assert re.search(r'href="/\d+/"', text)


def test_static_file_served_by_bourbon(srv, django_site):
    client = Client(srv)
    _, page = client.get("/")
    m = re.search(rb'<link rel="stylesheet" href="(/static/polls/style\.[0-9a-f]+\.css)">', page)
    assert m, page[:1000]
    url = m.group(1).decode()
    expected = (django_site / "staticfiles" / url[len("/static/") :]).read_bytes()
    resp, body = client.get(url)
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/css")
    assert resp.getheader("Content-Length") == str(len(expected))
    assert body == expected
    # A hashed name from the manifest: cached for good.
    assert resp.getheader("Cache-Control") == "public, max-age=315360000, immutable"
    # The unhashed name is served too, with the short default max-age.
    resp, body = client.get("/static/polls/style.css")
    assert resp.status == 200
    assert resp.getheader("Cache-Control") == "public, max-age=60"


def test_static_file_gzip_variant(srv, django_site):
    client = Client(srv)
    _, page = client.get("/")
    m = re.search(rb'src="(/static/polls/app\.[0-9a-f]+\.js)"', page)
    assert m, page[:1000]
    url = m.group(1).decode()
    gz = (django_site / "staticfiles" / (url[len("/static/") :] + ".gz")).read_bytes()
    resp, body = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.getheader("Content-Encoding") == "gzip"
    assert body == gz


def test_download_file_response(srv):
    resp, body = Client(srv).get("/download")
    assert resp.status == 200
    assert resp.getheader("Content-Length") == str(SAMPLE.stat().st_size)
    assert "attachment" in resp.getheader("Content-Disposition", "")
    assert body == SAMPLE.read_bytes()
    assert hashlib.sha256(body).hexdigest() == SAMPLE_SHA256


def test_streaming_http_response(srv):
    resp, body = Client(srv).get("/stream")
    assert resp.status == 200
    assert body == b"".join(f"line {i}\n".encode() for i in range(10))


def test_server_sent_events_arrive_spaced_out(srv):
    with srv.connect() as s:
        t0 = time.monotonic()
        s.sendall(b"GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        buf = b""
        seen: dict[int, float] = {}
        while len(seen) < 5:
            data = s.recv(65536)
            if not data:
                break
            now = time.monotonic() - t0
            buf += data
            for i in range(5):
                if i not in seen and f"data: {i}\n\n".encode() in buf:
                    seen[i] = now
    assert sorted(seen) == [0, 1, 2, 3, 4], buf
    assert b"text/event-stream" in buf
    # Five events 0.2 s apart, each sent as it is made: the last arrives about 0.8 s after
    # the first (a buffered response would bring them together). No bound on when the first
    # arrives: that measures the machine's load, not the streaming.
    assert seen[4] - seen[0] >= 0.6, seen


def test_admin_login_with_csrf(srv):
    client = Client(srv)
    resp, page = client.get("/admin/login/?next=/admin/")
    assert resp.status == 200
    assert "csrftoken" in client.cookies
    token = csrf_field(page)
    resp, _ = client.post_form(
        "/admin/login/?next=/admin/",
        {
            "csrfmiddlewaretoken": token,
            "username": "admin",
            "password": "admin",
            "next": "/admin/",
        },
    )
    assert resp.status == 302
    assert urlsplit(resp.getheader("Location", "")).path == "/admin/"
    assert "sessionid" in client.cookies
    resp, page = client.get("/admin/")
    assert resp.status == 200
    assert b"Site administration" in page


def test_admin_login_without_csrf_is_rejected(srv):
    client = Client(srv)
    resp, _ = client.post_form("/admin/login/", {"username": "admin", "password": "admin"})
    assert resp.status == 403


def _votes(client: Client, qid: str) -> dict[str, int]:
    resp, page = client.get(f"/{qid}/results/")
    assert resp.status == 200
    found = re.findall(
        r'<span class="choice">([^<]*)</span>\s*<span class="votes" data-votes="(\d+)"',
        page.decode(),
    )
    assert found, page[:2000]
    return {name: int(n) for name, n in found}


def test_poll_vote_with_csrf(srv):
    client = Client(srv)
    _, index = client.get("/")
    qid = re.search(rb'href="/(\d+)/"', index).group(1).decode()
    resp, detail = client.get(f"/{qid}/")
    assert resp.status == 200
    token = csrf_field(detail)
    choices = re.findall(rb'name="choice" value="(\d+)"> ([^<\n]*)', detail)
    assert choices, detail[:2000]
    choice_id, choice_text = choices[0][0].decode(), choices[0][1].decode().strip()
    before = _votes(client, qid)

    resp, _ = client.post_form(f"/{qid}/vote/", {"csrfmiddlewaretoken": token, "choice": choice_id})
    assert resp.status == 302
    location = resp.getheader("Location", "")
    assert urlsplit(location).path == f"/{qid}/results/"

    after = _votes(client, qid)
    assert after[choice_text] == before[choice_text] + 1
    assert {k: v for k, v in after.items() if k != choice_text} == {
        k: v for k, v in before.items() if k != choice_text
    }


def test_upload_10mib_multipart(srv):
    data = os.urandom(10 * 1024 * 1024)
    boundary = "----bourbon-test-boundary-7d3f"
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="note"\r\n\r\nhello\r\n',
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    resp, out = Client(srv).request(
        "POST",
        "/upload/raw",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status == 200, out[:500]
    assert json.loads(out) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_upload_raw_body(srv):
    data = os.urandom(3 * 1024 * 1024 + 17)
    resp, out = Client(srv).request(
        "POST", "/upload/raw", body=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert resp.status == 200, out[:500]
    assert json.loads(out) == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_echo_meta(srv):
    resp, out = Client(srv).get(
        "/echo-meta?a=1&b=%20", headers={"Host": "example.org:8123", "X-Custom": "v1"}
    )
    assert resp.status == 200
    meta = json.loads(out)
    assert meta["REQUEST_METHOD"] == "GET"
    assert meta["PATH_INFO"] == "/echo-meta"
    assert meta["SCRIPT_NAME"] == ""
    assert meta["QUERY_STRING"] == "a=1&b=%20"
    # Where the connection arrived, not Host (which Django reads through HTTP_HOST).
    assert (meta["SERVER_NAME"], meta["SERVER_PORT"]) == ("127.0.0.1", str(srv.host_port[1]))
    assert meta["REMOTE_ADDR"] == "127.0.0.1"
    assert meta["wsgi.url_scheme"] == "http"
    assert meta["HTTP_HOST"] == "example.org:8123"
    assert meta["HTTP_X_CUSTOM"] == "v1"
    assert "HTTP_CONTENT_TYPE" not in meta


def test_plain_json_orm_and_404(srv):
    client = Client(srv)
    resp, body = client.get("/plain")
    assert (resp.status, body) == (200, b"Hello from Django\n")
    resp, body = client.get("/json")
    assert resp.status == 200
    assert json.loads(body)["items"] == [1, 2, 3]
    resp, body = client.get("/orm")
    assert resp.status == 200
    assert json.loads(body)["count"] == 10
    resp, _ = client.get("/no/such/page")
    assert resp.status == 404
    assert "Traceback" not in srv.log
