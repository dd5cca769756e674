"""A graceful stop refuses nothing silently (issue 11, point 3).

On TERM every process of the server stops listening at once, while requests in flight finish:
a connection that arrives during the drain is refused straight away, or goes to another
server sharing the port (``--reuse-port``), instead of waiting in a listen queue nobody reads
until the drain ends and then being reset.

Sleeps here are only the application's (a request kept in flight); readiness comes from log
lines.
"""

from __future__ import annotations

import signal
import socket
import threading
from contextlib import closing

from rawhttp import Reader

APP = "slow_app:app"


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()


class InFlight(threading.Thread):
    """One slow request, whose response is recorded."""

    def __init__(self, srv, seconds: float):
        super().__init__(daemon=True)
        self.srv = srv
        self.seconds = seconds
        self.status: int | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with closing(self.srv.connect(timeout=self.seconds + 20)) as s:
                s.sendall(get(f"/?seconds={self.seconds}"))
                self.status = Reader(s).response().status
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def attempt(host: str, port: int, bound: float) -> str:
    """Connect and ask; return "refused", "answered" or "reset" — or "held" when nothing at
    all happened within ``bound`` seconds."""
    try:
        s = socket.create_connection((host, port), timeout=bound)
    except ConnectionRefusedError:
        return "refused"
    with closing(s):
        s.settimeout(bound)
        try:
            s.sendall(get("/?seconds=0"))
            resp = Reader(s).response()
        except TimeoutError:
            return "held"
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        except Exception:  # the connection ended without a response
            return "reset"
        return "answered" if resp.status == 200 else f"status {resp.status}"


def test_connections_during_the_drain_are_refused_at_once(start_server):
    srv = start_server(
        APP, "-w", "1", "--threads", "2", "--graceful-timeout", "20", "--log-level", "debug"
    )
    host, port = srv.host_port
    slow = InFlight(srv, 6)
    slow.start()
    srv.wait_for_log(r"slow_app: sleeping 6", timeout=10)
    srv.proc.send_signal(signal.SIGTERM)  # the master only, as systemd's KillMode=mixed does
    srv.wait_for_log(r"Handling signal: term", timeout=5)
    srv.wait_for_log(r"stopped listening; draining 1 connections", timeout=5)
    # Every process has closed its listener: each new connection is refused at once, never
    # held (the drain lasts another ~5 s).
    outcomes = [attempt(host, port, 2.0) for _ in range(5)]
    assert outcomes == ["refused"] * 5, outcomes
    # The request in flight still completes.
    slow.join(20)
    assert slow.error is None and slow.status == 200, (slow.status, slow.error)
    assert srv.proc.wait(20) == 0


def test_connections_during_the_drain_go_to_the_other_server_on_the_port(start_server):
    """Blue/green on one port with SO_REUSEPORT: while the old server drains, every new
    connection is served by the new one."""
    old = start_server(
        APP,
        "--reuse-port",
        "-w",
        "1",
        "--threads",
        "2",
        "--graceful-timeout",
        "20",
        "--log-level",
        "debug",
    )
    host, port = old.host_port
    # In flight on the old server (the only one on the port yet).
    slow = InFlight(old, 6)
    slow.start()
    old.wait_for_log(r"slow_app: sleeping 6", timeout=10)
    new = start_server(APP, "--reuse-port", "-w", "1", "--threads", "4", "-b", f"{host}:{port}")
    old.proc.send_signal(signal.SIGTERM)
    old.wait_for_log(r"stopped listening; draining", timeout=5)
    # Every connection is answered promptly, by the new server.
    outcomes = [attempt(host, port, 3.0) for _ in range(40)]
    assert outcomes == ["answered"] * 40, outcomes
    assert new.log.count("slow_app: sleeping 0.0 s") == 40, "not all answered by the new server"
    slow.join(20)
    assert slow.status == 200, (slow.status, slow.error)
    assert old.proc.wait(20) == 0
