"""Both interfaces from one listener (`--asgi`): WebSocket handshakes and `--asgi-path`
prefixes go to the ASGI application, the rest to the WSGI one, in the same workers."""

from __future__ import annotations

import rawhttp
from conftest import run_bourbon


def get(srv, path: str) -> rawhttp.Response:
    with srv.connect() as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return rawhttp.Reader(s).response()


def test_paths_are_routed_between_the_two_apps(start_server):
    srv = start_server(
        "combined_app:wsgi",
        "--asgi",
        "combined_app:asgi",
        "--asgi-path",
        "/api",
        "--asgi-path",
        "/events/",
        "--threads",
        "2",
    )
    assert get(srv, "/").body.startswith(b"wsgi / ")
    assert get(srv, "/page").body.startswith(b"wsgi /page ")
    assert get(srv, "/api").body.startswith(b"asgi /api ")
    assert get(srv, "/api/items?x=1").body.startswith(b"asgi /api/items ")
    assert get(srv, "/apix").body.startswith(b"wsgi /apix "), "a prefix is a path segment"
    assert get(srv, "/events/stream").body.startswith(b"asgi /events/stream ")
    # The WSGI app runs on the Python threads, never on the event loop's thread.
    assert b"MainThread" not in get(srv, "/").body
    assert get(srv, "/api").body.endswith(b"MainThread")


def test_keep_alive_connection_alternates_between_the_apps(start_server):
    srv = start_server("combined_app:wsgi", "--asgi", "combined_app:asgi", "--asgi-path", "/a")
    with srv.connect() as s:
        r = rawhttp.Reader(s)
        for i in range(10):
            path = "/a/x" if i % 2 else "/w"
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            body = r.response().body
            assert body.startswith(b"asgi" if i % 2 else b"wsgi"), body


def test_asgi_given_an_asgi_positional_app_is_refused():
    res = run_bourbon(
        "combined_app:asgi", "--asgi", "combined_app:asgi", "-b", "127.0.0.1:0", timeout=60
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "must then be the WSGI one" in res.stdout + res.stderr
