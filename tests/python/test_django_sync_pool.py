"""``--django-sync-pool`` (on by default): under ASGI, each request of a Django site gets its
thread for synchronous work (middleware hooks, ``sync_to_async``) from a pool rather than a
thread asgiref starts and joins for it. What must hold either way, and what the pool changes:

- one request's thread-sensitive calls all run on one thread;
- concurrent requests have threads of their own;
- with the pool, sequential requests reuse a thread (``bourbon-sync-*``); without it, each
  request has a new one;
- a task that outlives its request can still call ``sync_to_async``;
- Channels' router with Django as its ``http`` route gets the pool too.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rawhttp import Reader

APP = "django_async_app:application"


def get(srv, path: str, timeout: float = 30.0):
    with srv.connect(timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        return Reader(s).response()


def threads(srv, n: int) -> list[str]:
    names = []
    for _ in range(n):
        report = json.loads(get(srv, "/thread").body)
        # The middleware's hook and both of the view's calls: the request's one thread.
        assert report["first"] == report["second"] == report["hook"], report
        names.append(report["first"])
    return names


@pytest.mark.parametrize("app", [APP, "django_async_app:routed"])
def test_sequential_requests_reuse_a_pooled_thread(start_server, app):
    srv = start_server(app, "-w", "1")
    names = threads(srv, 5)
    assert names[0].startswith("bourbon-sync"), names
    assert len(set(names)) == 1, names


def test_without_the_pool_each_request_has_a_new_thread(start_server):
    srv = start_server(APP, "-w", "1", "--django-sync-pool", "false")
    names = threads(srv, 3)
    assert len(set(names)) == 3, names
    assert not any(n.startswith("bourbon-sync") for n in names), names


def test_concurrent_requests_have_threads_of_their_own(start_server):
    # Each request's sync part waits at a barrier for the others: on a shared thread they
    # would wait in turn, the barrier would break after 10 s and the views answer 500.
    srv = start_server(APP, "-w", "1")
    for _ in range(2):
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: get(srv, "/meet?n=4").status, range(4)))
        assert statuses == [200] * 4


def test_a_task_that_outlives_its_request_can_still_call_sync_code(start_server):
    srv = start_server(APP, "-w", "1")
    assert get(srv, "/later").status == 200
    deadline = time.monotonic() + 10
    result = "pending"
    while result == "pending" and time.monotonic() < deadline:
        result = get(srv, "/later-result").body.decode()
        if result == "pending":
            time.sleep(0.05)  # the task waits 0.2 s after the response, then reports
    assert result.startswith("ok "), result
