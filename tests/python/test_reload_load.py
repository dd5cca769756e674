"""Signals to the master while clients keep it busy: no request may fail.

``bourbon -w 3`` serves a small app that answers with its pid, while four client threads
send requests in a loop. The test sends HUP, TTIN, TTOU, a SIGKILL to one worker and HUP
again, a couple of seconds apart, waiting each time for the master to reach the expected set
of workers. Every request's outcome is recorded. The only failures allowed are requests that
were on the killed worker when it died: they end within a short window after the SIGKILL, at
most one per client thread.

Half the clients reuse their connection, half send ``Connection: close``. The drain of a
retired worker must answer every request it has received, including one that arrived on an
idle keep-alive connection just as the drain began, and must say ``Connection: close`` on
the last response of each connection; the tests at the end check both directly.
:class:`LostInDrain` names the failure a broken drain produces (a connection closed without
an answer just after a HUP or TTOU), so a regression reads clearly.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from procs import children, wait_children

CLIENTS = 4
# Clients that reuse connections (the others send ``Connection: close``).
KEEP_ALIVE_CLIENTS = 2
PAUSE = 2.0  # load between two signals, seconds
KILL_WINDOW = 1.0  # seconds after the SIGKILL in which its victims' requests may fail
DRAIN_WINDOW = 0.5  # seconds after a HUP/TTOU in which a broken drain would show
TIMEOUT = 10.0


class LostInDrain(AssertionError):
    """Requests closed without an answer by a worker that had just begun to drain."""


@dataclass
class Outcome:
    client: int
    started: float
    ended: float
    reused: bool  # sent on a kept-alive connection that had already served a request
    pid: int | None = None
    error: str | None = None


def run_client(
    idx: int, host: str, port: int, keep_alive: bool, stop: threading.Event, out: list[Outcome]
) -> None:
    conn: http.client.HTTPConnection | None = None
    served = 0  # requests answered on the current connection
    # Bounded: the deadline ends the loop even if the test forgets to set ``stop``.
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
            served = 0
        o = Outcome(idx, time.monotonic(), 0.0, reused=served > 0)
        try:
            conn.request("GET", "/", headers={} if keep_alive else {"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}: {body[:200]!r}")
            o.pid = json.loads(body)["pid"]
            served += 1
            if not keep_alive or resp.will_close:
                conn.close()
                conn = None
        except Exception as e:  # every failure is recorded, none is retried
            o.error = f"{type(e).__name__}: {e}"
            conn.close()
            conn = None
        o.ended = time.monotonic()
        out.append(o)
    if conn is not None:
        conn.close()


@pytest.mark.timeout(90)
def test_hup_ttin_ttou_kill_under_load(start_server):
    srv = start_server("workers_app:app", "-w", "3")
    host, port = srv.host_port
    generations = [wait_children(srv.pid, lambda k: len(k) == 3, "boot")]
    stop = threading.Event()
    results: list[list[Outcome]] = [[] for _ in range(CLIENTS)]
    threads = [
        threading.Thread(
            target=run_client,
            args=(i, host, port, i < KEEP_ALIVE_CLIENTS, stop, results[i]),
            daemon=True,
        )
        for i in range(CLIENTS)
    ]
    t0 = time.monotonic()
    events: list[tuple[float, str]] = []
    try:
        for t in threads:
            t.start()
        time.sleep(PAUSE)

        def hup() -> None:
            old = children(srv.pid)
            events.append((time.monotonic(), "HUP"))
            os.kill(srv.pid, signal.SIGHUP)
            new = wait_children(
                srv.pid, lambda k: len(k) == 3 and not (k & old), "HUP: a new set of 3 workers"
            )
            generations.append(new)

        hup()
        time.sleep(PAUSE)

        events.append((time.monotonic(), "TTIN"))
        os.kill(srv.pid, signal.SIGTTIN)
        generations.append(wait_children(srv.pid, lambda k: len(k) == 4, "TTIN: 4 workers"))
        time.sleep(PAUSE)

        events.append((time.monotonic(), "TTOU"))
        os.kill(srv.pid, signal.SIGTTOU)
        wait_children(srv.pid, lambda k: len(k) == 3, "TTOU: 3 workers")
        time.sleep(PAUSE)

        victim = min(children(srv.pid))
        killed_at = time.monotonic()
        events.append((killed_at, f"KILL {victim}"))
        os.kill(victim, signal.SIGKILL)
        generations.append(
            wait_children(
                srv.pid, lambda k: len(k) == 3 and victim not in k, "SIGKILL: worker replaced"
            )
        )
        srv.wait_for_log(rf"Worker \(pid:{victim}\) was killed by signal 9")
        time.sleep(PAUSE)

        hup()
        time.sleep(PAUSE)
    finally:
        stop.set()
        for t in threads:
            t.join(TIMEOUT + 5)
    assert not any(t.is_alive() for t in threads)

    outcomes = sorted((o for r in results for o in r), key=lambda o: o.started)
    failed = [o for o in outcomes if o.error]
    allowed = [o for o in failed if killed_at <= o.ended <= killed_at + KILL_WINDOW]
    unexpected = [o for o in failed if o not in allowed]

    def describe(o: Outcome) -> str:
        return (
            f"client {o.client} ({'keep-alive' if o.client < KEEP_ALIVE_CLIENTS else 'close'}, "
            f"{'reused' if o.reused else 'fresh'} connection) "
            f"{o.started - t0:.3f}-{o.ended - t0:.3f} s: {o.error}"
        )

    timeline = ", ".join(f"{name} at {t - t0:.3f} s" for t, name in events)
    retirements = [t for t, name in events if name in ("HUP", "TTOU")]
    lost_in_drain = [
        o
        for o in unexpected
        if o.error.startswith("RemoteDisconnected")
        and any(t <= o.ended <= t + DRAIN_WINDOW for t in retirements)
    ]
    other = [o for o in unexpected if o not in lost_in_drain]
    assert not other, (
        f"{len(other)} of {len(outcomes)} requests failed outside the SIGKILL window "
        f"({timeline}):\n" + "\n".join(describe(o) for o in other[:20])
    )
    assert len(allowed) <= CLIENTS, "\n".join(describe(o) for o in allowed)

    served = {o.pid for o in outcomes if o.pid is not None}
    assert len(outcomes) >= 200, f"only {len(outcomes)} requests in {timeline}"
    # Requests were answered by the first workers and by the ones started by each HUP.
    first, after_hup, final = generations[0], generations[1], generations[-1]
    assert served & first, (served, generations)
    assert served & after_hup, (served, generations)
    assert served & final, (served, generations)
    # Every answer came from a worker of this master.
    assert served <= set().union(*generations) | children(srv.pid), (served, generations)
    assert srv.pid not in served

    wait_children(srv.pid, lambda k: len(k) == 3, "end: 3 workers")
    assert srv.stop() == 0, srv.log
    # Last, so that every other check above has run: requests lost by a drain.
    if lost_in_drain:
        raise LostInDrain(
            f"{len(lost_in_drain)} of {len(outcomes)} requests closed without an answer just "
            f"after a retirement ({timeline}):\n"
            + "\n".join(describe(o) for o in lost_in_drain[:20])
        )


# ---------------------------------------------------------------------------------------------
# The drain, deterministically. A worker retired by HUP or TTOU drains exactly like the
# -w 1 process here: it answers what it has received and announces the close.


def tcp_queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """(send queue, receive queue) of the loopback TCP socket ``local_port`` →
    ``remote_port``, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == local_port and int(remote, 16) == remote_port:
            tx, rx = fields[4].split(":")
            return int(tx, 16), int(rx, 16)
    return None


def wait_read_by_server(client: socket.socket, timeout: float = TIMEOUT) -> None:
    """Until the bytes the client sent are acknowledged and read by the server process."""
    client_port = client.getsockname()[1]
    server_port = client.getpeername()[1]
    deadline = time.monotonic() + timeout
    while True:
        sent = tcp_queues(client_port, server_port)
        received = tcp_queues(server_port, client_port)
        if sent is not None and received is not None and sent[0] == 0 and received[1] == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"bytes not read by the server: {sent} {received}")
        time.sleep(0.01)


def test_drain_announces_the_close_on_the_response_in_flight(start_server):
    srv = start_server("slow_app:app")
    with srv.connect() as s:
        s.sendall(b"GET /?seconds=0.5 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        srv.wait_for_log(r"slow_app: sleeping 0\.5 s")
        os.kill(srv.pid, signal.SIGTERM)
        resp = http.client.HTTPResponse(s)
        try:
            resp.begin()
            assert (resp.status, resp.read()) == (200, b"slept 0.5 s\n")
            assert resp.getheader("Connection", "").lower() == "close", resp.getheaders()
        finally:
            resp.close()


@pytest.mark.parametrize("connection", ["fresh", "kept-alive"])
def test_drain_serves_a_request_that_had_started_to_arrive(start_server, connection):
    srv = start_server("workers_app:app")
    with srv.connect() as s:
        if connection == "kept-alive":
            s.sendall(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
            first = http.client.HTTPResponse(s)
            try:
                first.begin()
                assert first.status == 200
                first.read()
            finally:
                first.close()
        # Half of a request, read by the server, then the drain, then the rest.
        s.sendall(b"GET /second HTTP/1.1\r\nHost: localhost\r\n")
        wait_read_by_server(s)
        os.kill(srv.pid, signal.SIGTERM)
        srv.wait_for_log("Handling signal: term")
        s.sendall(b"\r\n")
        second = http.client.HTTPResponse(s)
        try:
            second.begin()
            assert second.status == 200
            assert json.loads(second.read())["ppid"] == srv.pid
        finally:
            second.close()
