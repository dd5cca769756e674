"""--worker-connections: a worker holds at most N client connections (idle keep-alive,
in progress, WebSocket); further ones wait in the listen queue and are served as soon as
one of the worker's connections closes. The server does it, so WSGI and ASGI alike."""

from __future__ import annotations

import pytest
from conftest import run_bourbon, wait_readable
from rawhttp import Reader, get

APPS = {"wsgi": ("hello_app:app", "/"), "asgi": ("asgi_app:app", "/hello")}


@pytest.mark.parametrize("interface", sorted(APPS))
def test_a_full_worker_queues_new_connections_until_one_closes(start_server, interface):
    app, path = APPS[interface]
    srv = start_server(app, "-w", "1", "--worker-connections", "2")
    held = [srv.connect(), srv.connect()]
    for s in held:
        s.sendall(get(path))
        assert Reader(s).response().status == 200
    # The kernel completes the third handshake (the listen queue); the worker, holding its
    # two, does not take it, so its request is not answered.
    third = srv.connect()
    third.sendall(get(path))
    assert not wait_readable(third, 1.0), "a third connection was served past the limit"
    srv.wait_for_log("worker_connections reached")
    # One of the two closes: the worker takes the queued connection and answers it.
    held[0].close()
    assert wait_readable(third, 10.0), "the queued connection was not served after a close"
    assert Reader(third).response().status == 200
    # The connection still held keeps being served.
    held[1].sendall(get(path))
    assert Reader(held[1]).response().status == 200
    for s in (held[1], third):
        s.close()


def test_no_limit_by_default(start_server):
    srv = start_server("asgi_app:app", "-w", "1")
    socks = [srv.connect() for _ in range(50)]
    try:
        for s in socks:
            s.sendall(get("/hello"))
        for s in socks:
            assert Reader(s).response().status == 200
    finally:
        for s in socks:
            s.close()
    assert "worker_connections reached" not in srv.log


def test_bad_value_names_the_setting():
    r = run_bourbon("hello_app:app", "--worker-connections", "many")
    assert r.returncode == 2
    assert "worker-connections" in r.stderr or "worker_connections" in r.stderr, r.stderr
