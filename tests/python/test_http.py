"""HTTP/1.1 behaviour of bourbon over real sockets: keep-alive and pipelining, chunked request
bodies, ``Expect: 100-continue``, HEAD/204/304 framing, Date/Server/Content-Length, and the
request guard's answers to bad requests.

The app is ``tests/apps/http_app.py``: it echoes each request as JSON and counts its calls,
so a test can prove a bad request never reached it.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
import socket
import time
from contextlib import closing

import pytest
from rawhttp import Reader, Response

APP = "http_app:app"
GEN_PARTS = [b"part one\n", b"part two\n", b"part three\n"]  # as in http_app
TIMEOUT = 5.0


# ---------------------------------------------------------------------------------------------
# helpers


def req(
    method: str = "GET",
    path: str = "/",
    version: str = "1.1",
    headers: tuple[str, ...] = ("Host: localhost",),
    body: bytes = b"",
) -> bytes:
    head = f"{method} {path} HTTP/{version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    return head.encode("latin-1") + body


def echo_json(resp: Response) -> dict:
    assert resp.status == 200, (resp.status, resp.body)
    assert resp.header("content-type") == "application/json", resp.headers
    return json.loads(resp.body)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def app_calls(srv) -> int:
    """The app's call counter, read over a fresh connection."""
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/_/calls", headers=("Host: localhost", "Connection: close")))
        resp = Reader(s).response()
    assert resp.status == 200
    return int(resp.body)


def chunked(body: bytes, size: int = 7, ext: str = "", trailers: tuple[str, ...] = ()) -> bytes:
    out = b""
    for i in range(0, len(body), size):
        piece = body[i : i + size]
        out += f"{len(piece):x}{ext}\r\n".encode() + piece + b"\r\n"
    out += b"0" + ext.encode() + b"\r\n"
    out += "".join(t + "\r\n" for t in trailers).encode() + b"\r\n"
    return out


IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT$"
)


def assert_date_and_server(resp: Response) -> None:
    dates = resp.header_all("date")
    assert len(dates) == 1, f"exactly one Date header expected: {resp.headers}"
    assert IMF_FIXDATE.match(dates[0]), dates[0]
    when = email.utils.parsedate_to_datetime(dates[0]).timestamp()
    assert abs(when - time.time()) < 60, dates[0]
    servers = resp.header_all("server")
    assert len(servers) == 1 and servers[0], f"exactly one Server header expected: {resp.headers}"


@pytest.fixture
def srv(start_server):
    return start_server(APP, "--keep-alive", "5")


# ---------------------------------------------------------------------------------------------
# 1. keep-alive and pipelining


def test_several_requests_on_one_connection(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        r = Reader(s)
        for i in range(5):
            body = f"request {i}".encode()
            s.sendall(
                req("POST", f"/seq/{i}?n={i}", headers=("Host: a", f"Content-Length: {len(body)}"))
                + body
            )
            data = echo_json(r.response())
            assert data["path_info"] == f"/seq/{i}"
            assert data["query_string"] == f"n={i}"
            assert data["body_sha256"] == sha(body)
        assert not r.at_eof(0.2), "keep-alive connection closed early"


def test_pipelined_requests_answered_in_order(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(
            req(path="/one")
            + req("POST", "/two", headers=("Host: a", "Content-Length: 3"), body=b"abc")
            + req(path="/three")
        )
        r = Reader(s)
        got = [echo_json(r.response()) for _ in range(3)]
        assert [d["path_info"] for d in got] == ["/one", "/two", "/three"]
        assert [d["method"] for d in got] == ["GET", "POST", "GET"]
        assert got[1]["body_len"] == 3 and got[1]["body_sha256"] == sha(b"abc")
        # the connection is still usable afterwards
        s.sendall(req(path="/four"))
        assert echo_json(r.response())["path_info"] == "/four"


@pytest.mark.parametrize("threads", ["1", "4"])
@pytest.mark.parametrize("coalesce", ["0.0005", "0.05", "0"])
def test_concurrent_keep_alive_clients_get_their_own_responses(start_server, coalesce, threads):
    # Eight clients in step keep the worker busy, so (unless 0) finished responses are held
    # and written together: each must still reach its own client, whole and in order, whether
    # the app runs inline (1 thread) or on Python threads (4).
    import threading

    srv = start_server(APP, "--keep-alive", "5", "--write-coalesce", coalesce, "--threads", threads)
    errors: list[str] = []

    def client(c: int) -> None:
        try:
            with closing(srv.connect(timeout=TIMEOUT)) as s:
                r = Reader(s)
                for i in range(150):
                    s.sendall(req(path=f"/c{c}/r{i}"))
                    got = echo_json(r.response())["path_info"]
                    if got != f"/c{c}/r{i}":
                        errors.append(f"client {c} request {i} got {got}")
                        return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {c}: {e!r}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert not errors, errors


def test_http10_without_keepalive_closes(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/ten", version="1.0", headers=()))
        r = Reader(s)
        resp = r.response()
        assert resp.version == "HTTP/1.0" or resp.version == "HTTP/1.1"
        assert echo_json(resp)["path_info"] == "/ten"
        assert (resp.header("connection") or "").lower() != "keep-alive"
        assert r.at_eof(TIMEOUT), "HTTP/1.0 connection without keep-alive must close"


def test_http10_keepalive_stays_open(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        r = Reader(s)
        for i in range(3):
            s.sendall(req(path=f"/ka/{i}", version="1.0", headers=("Connection: keep-alive",)))
            resp = r.response()
            assert echo_json(resp)["path_info"] == f"/ka/{i}"
            assert (resp.header("connection") or "").lower() == "keep-alive", resp.headers
        assert not r.at_eof(0.3), "HTTP/1.0 keep-alive connection closed early"


def test_connection_close_on_http11_closes(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/bye", headers=("Host: a", "Connection: close")))
        r = Reader(s)
        resp = r.response()
        assert echo_json(resp)["path_info"] == "/bye"
        assert (resp.header("connection") or "").lower() == "close"
        assert r.at_eof(TIMEOUT)


def test_pipelined_responses_stay_in_order_with_several_threads(start_server):
    srv = start_server(APP, "--keep-alive", "5", "--threads", "4")
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/_/sleep?s=0.5") + req(path="/fast") + req(path="/_/fixed"))
        r = Reader(s)
        assert r.response().body == b"slept\n"
        assert echo_json(r.response())["path_info"] == "/fast"
        assert r.response().body == b"hello from the fixed body\n"


def test_pipelined_requests_after_connection_close_are_not_answered(srv):
    before = app_calls(srv)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(
            req(path="/a")
            + req(path="/b", headers=("Host: a", "Connection: close"))
            + req(path="/c")
        )
        r = Reader(s)
        assert echo_json(r.response())["path_info"] == "/a"
        assert echo_json(r.response())["path_info"] == "/b"
        assert r.at_eof(TIMEOUT), "a request after Connection: close was answered"
    assert app_calls(srv) == before + 2


# ---------------------------------------------------------------------------------------------
# 2. chunked request bodies


@pytest.mark.parametrize(
    "ext,trailers",
    [
        ("", ()),
        (";name=value", ()),
        (';a=1;quoted="x y";flag', ()),
        ("", ("X-Trailer: yes", "X-Other: 2")),
        (" ; ext=1", ("X-Trailer: yes",)),
    ],
    ids=["plain", "ext", "ext-quoted", "trailers", "bws-ext-trailer"],
)
def test_chunked_request_body(srv, ext, trailers):
    body = bytes(range(256)) * 3 + b"tail"
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(
            req("POST", "/chunked", headers=("Host: a", "Transfer-Encoding: chunked"))
            + chunked(body, size=100, ext=ext, trailers=trailers)
            + req(path="/after")
        )
        r = Reader(s)
        data = echo_json(r.response())
        assert data["method"] == "POST"
        assert data["body_len"] == len(body)
        assert data["body_sha256"] == sha(body)
        assert echo_json(r.response())["path_info"] == "/after"


def test_chunked_request_body_larger_than_post_buffering(srv):
    body = (b"0123456789abcdef" * 4096) * 40  # 2.5 MiB, above the 1 MiB default
    with closing(srv.connect(timeout=30)) as s:
        s.sendall(
            req("POST", "/bigchunked", headers=("Host: a", "Transfer-Encoding: chunked"))
            + chunked(body, size=65536)
        )
        data = echo_json(Reader(s).response())
        assert data["body_len"] == len(body)
        assert data["body_sha256"] == sha(body)


def test_chunked_body_sent_in_small_pieces(srv):
    body = b"x" * 1000 + b"y" * 1000
    wire = chunked(body, size=333, ext=";e=1", trailers=("X-T: 1",))
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req("POST", "/pieces", headers=("Host: a", "Transfer-Encoding: chunked")))
        for i in range(0, len(wire), 50):
            s.sendall(wire[i : i + 50])
        data = echo_json(Reader(s).response())
        assert data["body_len"] == len(body)
        assert data["body_sha256"] == sha(body)


# ---------------------------------------------------------------------------------------------
# 3. Expect: 100-continue


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_expect_continue_when_app_reads(srv, framing):
    body = b"the body after 100"
    if framing == "content-length":
        head = req(
            "POST", "/cont", headers=("Host: a", "Expect: 100-continue", "Content-Length: 18")
        )
        wire = body
    else:
        head = req(
            "POST",
            "/cont",
            headers=("Host: a", "Expect: 100-continue", "Transfer-Encoding: chunked"),
        )
        wire = chunked(body)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(head)
        r = Reader(s)
        interim = r.response()  # raises on timeout: the 100 must come before the body is sent
        assert interim.status == 100, interim
        assert interim.version == "HTTP/1.1"
        s.sendall(wire)
        data = echo_json(r.response())
        assert data["body_len"] == len(body)
        assert data["body_sha256"] == sha(body)
        # the connection stays usable
        s.sendall(req(path="/next"))
        assert echo_json(r.response())["path_info"] == "/next"


def test_expect_continue_with_body_sent_at_once(srv):
    """A client that does not wait for the 100 (like curl after its timeout) is served."""
    body = b"eager body"
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(
            req(
                "POST",
                "/eager",
                headers=("Host: a", "Expect: 100-continue", f"Content-Length: {len(body)}"),
                body=body,
            )
            + req(path="/next")
        )
        r = Reader(s)
        resp = r.response()
        if resp.status == 100:
            resp = r.response()
        data = echo_json(resp)
        assert data["body_sha256"] == sha(body)
        assert echo_json(r.response())["path_info"] == "/next"


def test_no_100_continue_for_http10(srv):
    """RFC 9110 §10.1.1: a server MUST NOT send a 100 to an HTTP/1.0 client."""
    body = b"ten body"
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(
            req(
                "POST",
                "/ten",
                version="1.0",
                headers=("Expect: 100-continue", f"Content-Length: {len(body)}"),
                body=body,
            )
        )
        resp = Reader(s).response()
        assert resp.status == 200, f"got {resp.status} first"
        assert echo_json(resp)["body_sha256"] == sha(body)


def test_expect_continue_body_over_limit_is_refused_without_100(start_server):
    srv = start_server(APP, "--keep-alive", "5", *LIMITS)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(
            req("POST", "/big", headers=("Host: a", "Expect: 100-continue", "Content-Length: 5000"))
        )
        r = Reader(s)
        resp = r.response()
        assert resp.status == 413, f"got {resp.status}: a 100 invites a body that is refused"
        assert r.at_eof(TIMEOUT)


def test_expect_continue_without_reading_gets_final_response_only(srv):
    """The app answers without reading: no 100, the final response directly; the unsent body
    (here a complete request, to detect smuggling) must never be taken as a request."""
    smuggled = req(path="/smuggled")
    before = app_calls(srv)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(
            req(
                "POST",
                "/_/noread",
                headers=("Host: a", "Expect: 100-continue", f"Content-Length: {len(smuggled)}"),
            )
        )
        r = Reader(s)
        resp = r.response()
        assert resp.status == 200, f"expected the final response, got {resp.status}"
        assert resp.body == b"answered without reading the body\n"
        if (resp.header("connection") or "").lower() == "close":
            assert r.at_eof(TIMEOUT), "Connection: close announced but the connection stays open"
        else:
            # Kept open: the server must discard the body if the client sends it.
            try:
                s.sendall(smuggled + req(path="/next"))
                nxt = r.response()
            except (ConnectionError, OSError) as e:  # closed after all: also safe
                nxt = None
                assert not isinstance(e, TimeoutError), (
                    "kept open without Connection: close, but after the client sent the body "
                    f"and a next request, nothing came back within {TIMEOUT}s"
                )
            if nxt is not None:
                assert echo_json(nxt)["path_info"] == "/next"
    calls = app_calls(srv) - before
    assert calls in (1, 2), calls
    assert "app-call GET /smuggled" not in srv.log


# ---------------------------------------------------------------------------------------------
# 4. HEAD, 204, 304


def test_head_has_get_headers_and_no_body(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/_/fixed") + req("HEAD", "/_/fixed") + req(path="/after-head"))
        r = Reader(s)
        get = r.response()
        head = r.response("HEAD")
        after = r.response()
    assert get.status == head.status == 200
    assert get.body == b"hello from the fixed body\n"
    assert get.header("content-length") == str(len(get.body))
    assert head.header("content-length") == get.header("content-length")
    # Each request has its own id (docs/proxies.md).
    drop = {"date", "x-request-id"}
    assert sorted((k.lower(), v) for k, v in get.headers if k.lower() not in drop) == sorted(
        (k.lower(), v) for k, v in head.headers if k.lower() not in drop
    )
    assert echo_json(after)["path_info"] == "/after-head", "HEAD leaked body bytes"


@pytest.mark.parametrize("path", ["/_/gen", "/_/setcl", "/_/stream?chunk=1000&total=5000"])
def test_head_on_streamed_body_sends_no_body(srv, path):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req("HEAD", path) + req(path="/after-head"))
        r = Reader(s)
        head = r.response("HEAD")
        assert head.status == 200
        assert echo_json(r.response())["path_info"] == "/after-head", "HEAD leaked body bytes"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_on_204_and_304(srv, code):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path=f"/_/status/{code}") + req(path="/after"))
        r = Reader(s)
        resp = r.response()
        assert resp.status == code
        assert resp.header("transfer-encoding") is None, resp.headers
        if code == 204:
            # RFC 9110 §8.6: no Content-Length in a 204.
            assert resp.header("content-length") is None, resp.headers
        assert_date_and_server(resp)
        after = r.response()
        assert echo_json(after)["path_info"] == "/after", "body bytes of a 204/304 leaked"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_on_204_and_304_http10(srv, code):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path=f"/_/status/{code}", version="1.0", headers=()))
        r = Reader(s)
        resp = r.response()
        assert resp.status == code
        rest = r.read_to_close()
        assert rest == b"", f"body bytes after a {code}: {rest[:80]!r}"


# ---------------------------------------------------------------------------------------------
# 5. Date, Server, Content-Length and chunked responses


def test_date_and_server_on_every_kind_of_response(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        paths = ["/echo", "/_/fixed", "/_/setcl", "/_/gen", "/_/status/204", "/_/status/304"]
        s.sendall(b"".join(req(path=p) for p in paths) + req("HEAD", "/_/fixed"))
        r = Reader(s)
        for p in paths:
            resp = r.response()
            assert_date_and_server(resp)
            assert resp.header("server") == "bourbon", p
        assert_date_and_server(r.response("HEAD"))
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(
            req("POST", "/c", headers=("Host: a", "Expect: 100-continue", "Content-Length: 1"))
        )
        r = Reader(s)
        assert r.response().status == 100
        s.sendall(b"x")
        assert_date_and_server(r.response())


def test_content_length_for_list_body(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/_/fixed"))
        resp = Reader(s).response()
    assert resp.header("content-length") == str(len(b"hello from the fixed body\n"))
    assert resp.header("transfer-encoding") is None
    assert not resp.chunked


def test_content_length_set_by_app(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/_/setcl") + req(path="/after"))
        r = Reader(s)
        resp = r.response()
        assert resp.header_all("content-length") == [str(len(b"".join(GEN_PARTS)))]
        assert resp.header("transfer-encoding") is None
        assert resp.body == b"".join(GEN_PARTS)
        assert echo_json(r.response())["path_info"] == "/after"


def test_generator_without_length_is_chunked_on_http11(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/_/gen") + req(path="/after"))
        r = Reader(s)
        resp = r.response()
        assert resp.chunked
        assert resp.header("content-length") is None
        assert resp.body == b"".join(GEN_PARTS)
        assert echo_json(r.response())["path_info"] == "/after"


def test_generator_on_http10_is_close_delimited(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/_/gen", version="1.0", headers=()))
        r = Reader(s)
        resp = r.response()
        assert not resp.chunked
        assert resp.header("transfer-encoding") is None
        assert resp.body == b"".join(GEN_PARTS)


def test_generator_on_http10_keepalive_is_not_chunked(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/_/gen", version="1.0", headers=("Connection: keep-alive",)))
        r = Reader(s)
        resp = r.response()
        assert resp.header("transfer-encoding") is None
        assert not resp.chunked
        assert resp.body == b"".join(GEN_PARTS)
        if resp.header("content-length") is None:
            # close-delimited: the body ended with the connection
            assert r.at_eof(TIMEOUT)
            assert (resp.header("connection") or "").lower() != "keep-alive"


# ---------------------------------------------------------------------------------------------
# 6. bad requests

LIMITS = (
    "--limit-request-line",
    "200",
    "--limit-request-fields",
    "10",
    "--limit-request-field_size",
    "200",
    "--limit-request-body",
    "1000",
)

GOOD = req(path="/good-after-bad")


def _head(*lines: str) -> bytes:
    return ("".join(line + "\r\n" for line in lines) + "\r\n").encode("latin-1")


BAD_REQUESTS = {
    "garbage": (b"GARBAGE\r\n\r\n", 400),
    "request-line-too-long": (_head("GET /" + "a" * 300 + " HTTP/1.1", "Host: a"), 414),
    "too-many-fields": (
        _head("GET / HTTP/1.1", "Host: a", *[f"X-F{i}: v" for i in range(12)]),
        431,
    ),
    "field-too-long": (_head("GET / HTTP/1.1", "Host: a", "X-Long: " + "v" * 300), 431),
    "body-over-limit": (
        _head("POST / HTTP/1.1", "Host: a", "Content-Length: 2000") + b"b" * 2000,
        413,
    ),
    "chunked-body-over-limit": (
        _head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked")
        + chunked(b"c" * 2000, size=500),
        413,
    ),
    "cl-and-te": (
        _head("POST / HTTP/1.1", "Host: a", "Content-Length: 5", "Transfer-Encoding: chunked")
        + b"0\r\n\r\n",
        400,
    ),
    "te-and-cl": (
        _head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked", "Content-Length: 5")
        + b"0\r\n\r\n",
        400,
    ),
    "duplicate-different-cl": (
        _head("POST / HTTP/1.1", "Host: a", "Content-Length: 3", "Content-Length: 4") + b"abcd",
        400,
    ),
    "cl-abc": (_head("POST / HTTP/1.1", "Host: a", "Content-Length: abc") + b"abc", 400),
    "cl-negative": (_head("POST / HTTP/1.1", "Host: a", "Content-Length: -1"), 400),
    "cl-plus": (_head("POST / HTTP/1.1", "Host: a", "Content-Length: +3") + b"abc", 400),
    "cl-list": (_head("POST / HTTP/1.1", "Host: a", "Content-Length: 3, 3") + b"abc", 400),
    "bad-chunk-size": (
        _head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked")
        + b"zz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "nul-in-header": (_head("GET / HTTP/1.1", "Host: a", "X-Nul: a\x00b"), 400),
    "bare-cr-in-header": (_head("GET / HTTP/1.1", "Host: a", "X-Cr: a\rb"), 400),
    "obs-fold": (_head("GET / HTTP/1.1", "Host: a", "X-Fold: a", " continued"), 400),
    "bare-lf-line-ending": (b"GET / HTTP/1.1\nHost: a\n\n", 400),
    "http-2-version": (_head("GET / HTTP/2.0", "Host: a"), 505),
    "lower-case-method": (_head("get / HTTP/1.1", "Host: a"), 400),
    "duplicate-host": (_head("GET / HTTP/1.1", "Host: a", "Host: b"), 400),
    # RFC 9112 §3.2: HTTP/1.1 without Host, or with an invalid Host, is a 400
    "missing-host": (_head("GET / HTTP/1.1", "X-Host: a"), 400),
    "missing-host-absolute-form": (_head("GET http://a/ HTTP/1.1"), 400),
    "host-with-path": (_head("GET / HTTP/1.1", "Host: a/b"), 400),
    "host-with-userinfo": (_head("GET / HTTP/1.1", "Host: user@a"), 400),
    "host-with-space": (_head("GET / HTTP/1.1", "Host: a b"), 400),
    "host-bad-port": (_head("GET / HTTP/1.1", "Host: a:8x"), 400),
    "space-before-colon": (_head("GET / HTTP/1.1", "Host: a", "X-Sp : v"), 400),
    # RFC 9112 §6.3: chunked not final -> 400; a coding we do not decode -> 501
    "te-not-chunked": (_head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip") + b"x", 400),
    "te-unknown-coding": (
        _head("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n",
        501,
    ),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_rejected_and_connection_closed(start_server, name):
    bad, status = BAD_REQUESTS[name]
    srv = start_server(APP, "--keep-alive", "5", *LIMITS)
    before = app_calls(srv)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(bad + GOOD)
        r = Reader(s)
        resp = r.response()
        assert resp.status == status, (resp.status, resp.body)
        assert resp.body.strip(), "the rejection must explain itself in a short body"
        assert len(resp.body) < 512
        assert (resp.header("connection") or "").lower() == "close", resp.headers
        # exactly one response, then the connection ends: the good request is never read
        assert r.at_eof(TIMEOUT), f"more bytes after the rejection: {r.buf[:200]!r}"
    assert app_calls(srv) == before, "the app was called for a bad request"
    assert "/good-after-bad" not in srv.log


def test_host_rules(start_server):
    """RFC 9112 §3.2: HTTP/1.1 needs exactly one valid Host; HTTP/1.0 may omit it."""
    srv = start_server(APP)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(_head("GET /no-host HTTP/1.1"))
        resp = Reader(s).response()
        assert resp.status == 400
        assert resp.body == b"Bad Request: missing Host\n"
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(_head("GET / HTTP/1.1", "Host: a b"))
        assert Reader(s).response().body == b"Bad Request: invalid Host\n"
    for head in (
        _head("GET /old HTTP/1.0"),
        _head("GET /empty-host HTTP/1.1", "Host:", "Connection: close"),
        _head("GET /v6 HTTP/1.1", "Host: [::1]:8000", "Connection: close"),
        _head("GET /name HTTP/1.1", "host: Example.COM.:80", "Connection: close"),
    ):
        with closing(srv.connect(timeout=TIMEOUT)) as s:
            s.sendall(head)
            assert echo_json(Reader(s).response())["method"] == "GET", head


def test_asterisk_form_and_connect(start_server):
    """OPTIONS * reaches the app as PATH_INFO "*" (RFC 9112 §3.2.4); CONNECT asks for a
    tunnel, which is refused with 501 without calling the app (RFC 9110 §9.3.6)."""
    srv = start_server(APP)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(_head("OPTIONS * HTTP/1.1", "Host: a", "Connection: close"))
        data = echo_json(Reader(s).response())
    assert (data["method"], data["raw_uri"], data["path_info"]) == ("OPTIONS", "*", "*")
    assert data["query_string"] == ""
    before = app_calls(srv)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(_head("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"))
        r = Reader(s)
        resp = r.response()
        assert (resp.status, resp.body) == (501, b"Not Implemented: CONNECT is not supported\n")
        assert r.at_eof(TIMEOUT)
    assert app_calls(srv) == before


def test_limits_boundaries_are_accepted(start_server):
    srv = start_server(APP, "--keep-alive", "5", *LIMITS)
    line = "GET /" + "a" * (200 - len("GET / HTTP/1.1")) + " HTTP/1.1"
    assert len(line) == 200
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        r = Reader(s)
        s.sendall(_head(line, "Host: a"))
        assert r.response().status == 200, "a request line of exactly the limit was refused"
        s.sendall(_head("GET /f HTTP/1.1", "Host: a", *[f"X-F{i}: v" for i in range(9)]))
        assert r.response().status == 200, "exactly limit_request_fields fields were refused"
        body = b"z" * 1000
        s.sendall(_head("POST /b HTTP/1.1", "Host: a", "Content-Length: 1000") + body)
        assert echo_json(r.response())["body_len"] == 1000, "a body of exactly the limit failed"


@pytest.mark.parametrize("name", ["garbage", "body-over-limit", "bad-chunk-size"])
def test_rejection_has_date_and_server(start_server, name):
    """RFC 9110 §6.6.1: an origin server with a clock MUST send Date in 4xx responses."""
    bad, status = BAD_REQUESTS[name]
    srv = start_server(APP, "--keep-alive", "5", *LIMITS)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(bad)
        resp = Reader(s).response()
    assert resp.status == status
    assert_date_and_server(resp)


def test_bad_request_after_good_one_on_same_connection(start_server):
    """A keep-alive connection: the first request is answered, the bad second one is
    rejected, the third is never read."""
    srv = start_server(APP, "--keep-alive", "5", *LIMITS)
    before = app_calls(srv)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/first") + b"GARBAGE\r\n\r\n" + GOOD)
        r = Reader(s)
        assert echo_json(r.response())["path_info"] == "/first"
        resp = r.response()
        assert resp.status == 400
        assert resp.body.strip()
        assert r.at_eof(TIMEOUT)
    assert app_calls(srv) == before + 1


def test_unread_body_bytes_do_not_turn_rejection_into_reset(start_server):
    """A client still sending a large body after a 413 must read the 413, not an RST."""
    srv = start_server(APP, "--keep-alive", "5", *LIMITS)
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(_head("POST / HTTP/1.1", "Host: a", "Content-Length: 200000"))
        try:
            s.sendall(b"q" * 200000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = Reader(s).response()
        assert resp.status == 413


@pytest.mark.parametrize("sep", [b"\r\n", b"\r\n\r\n"])
def test_empty_lines_before_request_are_ignored(srv, sep):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(sep + req(path="/padded"))
        assert echo_json(Reader(s).response())["path_info"] == "/padded"


def test_half_close_after_request_still_answered(srv):
    with closing(srv.connect(timeout=TIMEOUT)) as s:
        s.sendall(req(path="/half") + req(path="/half2"))
        s.shutdown(socket.SHUT_WR)
        r = Reader(s)
        assert echo_json(r.response())["path_info"] == "/half"
        assert echo_json(r.response())["path_info"] == "/half2"
        assert r.at_eof(TIMEOUT)
