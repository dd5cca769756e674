"""bourbon's benchmark harness: bourbon against its peers, one worker each, on loopback.

Run it with the bench virtualenv's Python (``make bench`` / ``make bench-quick`` set it up):

    bench/.venv/bin/python bench/run.py --quick
    bench/.venv/bin/python bench/run.py --bar     # only the bar's cells, 5 x 5 s (make bench-bar)
    bench/.venv/bin/python bench/run.py --slow-readers-only --servers bourbon,granian
    bench/.venv/bin/python bench/run.py --static-only     # static files vs nginx, Granian, uWSGI
    bench/.venv/bin/python bench/run.py --servers bourbon,bjoern --workloads hello --repeat 5
    bench/.venv/bin/python bench/run.py --access-log-only    # hello, access log off vs on

Method (see docs/performance.md): each server runs as ONE worker process pinned to CPU 0
(``taskset -c 0``, inherited by all its processes); wrk runs pinned to CPU 1, as does this
harness. For every repetition, servers are visited in a rotated order (so slow drift spreads
over all of them); each server is started once per app group (the micro apps, the Django
site), checked, warmed up, measured cell by cell, then killed by process group. A cell is
(workload, connections, keep-alive or ``Connection: close``) run for a fixed duration.
Per cell we keep the median over repetitions of requests/s and p50/p99 latency, the summed
errors, the peak RSS of the server's whole process tree (sampled every 50 ms) and the server
CPU time (user+system of the tree) per request. Extras (not with --quick or --no-extras):
the 1 GiB file_wrapper download, the slow readers (``slow_readers``: what /hello gets while
50 clients hold a streamed 8 MiB body without reading it), the static-file cells (a 16 KiB
stylesheet at c=64 and a 3 MiB file at c=16, served by bourbon's ``--static``, nginx,
Granian and uWSGI, with the RSS before and after each cell) and callgrind counts. Every ratio
compares bourbon with a peer measured in the same run, and each bar line also counts the
repetitions that pass on their own, so a verdict that moves with this machine's noise shows
as such. This is not a test: it never fails on a missed bar.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import json
import os
import platform
import pwd
import random
import re
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache, partial
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MYSITE = REPO / "examples" / "mysite"
RESULTS = BENCH / "results"
DOC = REPO / "docs" / "performance.md"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"
MIB = 1024 * 1024
# Where a run's report goes in docs/performance.md: a full run, or a --bar run.
DOC_MARKERS = {
    "full": ("<!-- bench:results:start -->", "<!-- bench:results:end -->"),
    "bar": ("<!-- bench:bar:start -->", "<!-- bench:bar:end -->"),
    "asgi": ("<!-- bench:asgi:start -->", "<!-- bench:asgi:end -->"),
}

# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    name: str
    note: str  # how it is configured, for the report
    package: str  # distribution name for the version

    def command(self, target: str, port: int) -> list[str]:
        b = str(VENV_BIN)
        addr = f"{HOST}:{port}"
        if self.name == "bourbon":
            return [f"{b}/bourbon", target, "-b", addr, "-w", "1", "--threads", "1"]
        if self.name == "gunicorn-sync":
            return [f"{b}/gunicorn", "-w", "1", "-k", "sync", "-b", addr, target]
        if self.name == "gunicorn-gthread":
            gthread = ["-k", "gthread", "--threads", "4"]
            return [f"{b}/gunicorn", "-w", "1", *gthread, "-b", addr, target]
        if self.name == "granian":
            return [
                f"{b}/granian", "--interface", "wsgi", "--workers", "1",
                "--blocking-threads", "1", "--http", "1", "--no-ws",
                "--host", HOST, "--port", str(port), target,
            ]  # fmt: skip
        if self.name == "uwsgi":
            return [
                f"{b}/uwsgi", "--http-socket", addr, "--master", "--processes", "1",
                "--disable-logging", "--die-on-term", "--need-app", "--module", target,
            ]  # fmt: skip
        if self.name == "bjoern":
            runner = str(BENCH / "runners" / "bjoern_run.py")
            return [sys.executable, runner, target, HOST, str(port)]
        if self.name == "waitress":
            return [f"{b}/waitress-serve", "--threads=1", f"--listen={addr}", target]
        if self.name == "pyruvate":
            runner = str(BENCH / "runners" / "pyruvate_run.py")
            return [sys.executable, runner, target, HOST, str(port), "1"]
        raise ValueError(self.name)


SERVERS = {
    s.name: s
    for s in [
        Server("bourbon", "-w 1 --threads 1", "bourbon"),
        Server("gunicorn-sync", "-w 1 -k sync", "gunicorn"),
        Server("gunicorn-gthread", "-w 1 -k gthread --threads 4", "gunicorn"),
        Server("granian", "--interface wsgi --workers 1 --blocking-threads 1 --http 1", "granian"),
        Server(
            "uwsgi",
            "--http-socket --master --processes 1 (1 thread; closes after each response)",
            "uwsgi",
        ),
        Server("bjoern", "bjoern.run (single-threaded, libev)", "bjoern"),
        Server("waitress", "--threads=1", "waitress"),
        Server("pyruvate", "pyruvate.serve(app, addr, 1)", "pyruvate"),
    ]
}

# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    name: str
    group: str  # "micro" (bench/apps/micro.py) or "django" (examples/mysite)
    path: str
    desc: str
    post: bool = False
    expect_len: int | None = None  # body length a correct response has (None: not checked)
    conns: tuple[int, ...] = (1, 64)


WORKLOADS = {
    w.name: w
    for w in [
        Workload("hello", "micro", "/hello", "13-byte body", expect_len=13, conns=(1, 64, 256)),
        Workload("body-10k", "micro", "/10k", "10 KiB body", expect_len=10 * 1024),
        Workload("body-1m", "micro", "/1m", "1 MiB body", expect_len=MIB),
        Workload("post-64k", "micro", "/post", "64 KiB POST read by the app", post=True),
        Workload(
            "stream-100",
            "micro",
            "/stream",
            "100 chunks x 100 B, no Content-Length",
            expect_len=100 * 100,
        ),  # fmt: skip
        Workload(
            "file-1m", "micro", "/file-1m", "1 MiB file via wsgi.file_wrapper", expect_len=MIB
        ),  # fmt: skip
        Workload("dj-plain", "django", "/plain", "Django HttpResponse (/plain)", expect_len=18),
        Workload("dj-json", "django", "/json", "Django JsonResponse (/json)"),
        Workload("dj-template", "django", "/", "Django template, 50-row loop (/)"),
        Workload("dj-orm", "django", "/orm", "Django 10-row ORM read, SQLite (/orm)"),
        Workload(
            "dj-upload", "django", "/upload/raw", "Django 64 KiB raw POST (/upload/raw)", post=True
        ),  # fmt: skip
    ]
}
# The static-file cells: files generated at run time under a directory served at /static/
# (bench/apps/micro.py is the app behind it for the servers that have one). Each one is
# measured over keep-alive at one concurrency, after a warm-up.
STATIC_PREFIX = "/static"
STATIC_CELLS = [
    Workload(
        "static-16k", "static", f"{STATIC_PREFIX}/css/site.css", "16 KiB stylesheet",
        expect_len=16 * 1024, conns=(64,),
    ),
    Workload(
        "static-3m", "static", f"{STATIC_PREFIX}/media/blob-3m.bin", "3 MiB file",
        expect_len=3 * MIB, conns=(16,),
    ),
]  # fmt: skip
GROUP_TARGET = {
    "micro": "apps.micro:app",
    "django": "mysite.wsgi:application",
    "static": "apps.micro:app",
}
GROUP_DIR = {"micro": BENCH, "django": MYSITE, "static": BENCH}
GROUP_PROBE = {"micro": "/probe", "django": "/plain", "static": STATIC_CELLS[0].path}
POST_BODY = b"b" * (64 * 1024)
POST_LUA = BENCH / "wrk" / "post64k.lua"

QUICK_SERVERS = ["bourbon", "granian", "bjoern"]
QUICK_WORKLOADS = ["hello", "dj-plain"]
# --bar: what the bar's lines compare, with longer cells and more repetitions. The peers are
# every server that was ever the best or the reference on a bar line (gunicorn and waitress
# are far behind on every one).
BAR_SERVERS = ["bourbon", "bjoern", "granian", "uwsgi", "pyruvate"]
BAR_WORKLOADS = [
    "hello", "body-1m", "file-1m", "dj-plain", "dj-json", "dj-template", "dj-orm", "dj-upload",
]  # fmt: skip


def cells_for(w: Workload, matrix: str, quick: bool, bar: bool = False) -> list[tuple[int, str]]:
    """(connections, mode) cells of one workload. mode: "ka" keep-alive, "close"."""
    if quick:
        return [(64, "ka")]
    if bar:
        return [(1, "ka"), (64, "ka")]
    cells = [(c, "ka") for c in w.conns]
    if matrix == "all":
        cells += [(c, "close") for c in w.conns]
    else:  # standard: Connection: close at c=64 (and c=1 for hello)
        cells += [(c, "close") for c in w.conns if c == 64 or (w.name == "hello" and c == 1)]
    return cells


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def tree(proc: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [proc, *proc.children(recursive=True)]
    return []


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in tree(proc):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def largest_rss(proc: psutil.Process) -> int:
    """RSS of the largest process of the tree: the worker, for servers with a master."""
    best = 0
    for p in tree(proc):
        with contextlib.suppress(psutil.Error):
            best = max(best, p.memory_info().rss)
    return best


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in tree(proc):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


class RssSampler:
    """Samples the RSS of a process tree every 50 ms; ``peak`` is the largest sum seen."""

    def __init__(self, proc: psutil.Process):
        self.proc, self.peak = proc, tree_rss(proc)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, tree_rss(self.proc))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.proc))


class Running:
    """One server process group: started pinned to CPU 0, always killed by group at the end.

    ``command`` (given the port) replaces the server's usual command line: the static cells
    add their flags, and nginx has no WSGI command at all."""

    def __init__(
        self,
        server: Server,
        group: str,
        log_dir: Path,
        env: dict,
        wrap=None,
        command: Callable[[int], list[str]] | None = None,
    ):
        self.server, self.group = server, group
        self.port = free_port()
        if command is not None:
            cmd = command(self.port)
        else:
            cmd = server.command(GROUP_TARGET[group], self.port)
            if server.name == "uwsgi":
                cmd += ["--chdir", str(GROUP_DIR[group])]
        cmd = (wrap or []) + cmd
        self.cmd = ["taskset", "-c", SERVER_CPU, *cmd]
        self.log_path = log_dir / f"{server.name}-{group}.log"
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.cmd,
            cwd=GROUP_DIR[group],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.proc = psutil.Process(self.popen.pid)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        probe = GROUP_PROBE[self.group]
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.server.name} exited ({self.popen.returncode})")
            status = 0
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _ = request(self.port, probe, timeout=2)
            if status == 200:
                return
            if status and self.group == "static":
                # Up, but not serving the file: waiting longer will not change that.
                raise RuntimeError(f"{self.server.name} answered {status} for {probe}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.server.name} not ready after {timeout:.0f} s")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        # stray members of the group (e.g. a worker that outlived its master)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.log.close()

    def log_tail(self, n: int = 5) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""


def request(port: int, path: str, post: bool = False, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        if post:
            headers = {"Content-Type": "application/octet-stream"}
            conn.request("POST", path, body=POST_BODY, headers=headers)
        else:
            conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- wrk

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_BYTE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def run_wrk(
    port: int, w: Workload, conns: int, mode: str, duration: float, timeout: str = "5s"
) -> dict:
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t", "1", "-c", str(conns)]
    cmd += ["-d", f"{duration:g}s", "--timeout", timeout, "--latency"]
    if w.post:
        cmd += ["-s", str(POST_LUA)]
    if mode == "close":
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://{HOST}:{port}{w.path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30).stdout
    res = {"requests": 0, "rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan")}
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+)", out):
        res["requests"] = int(m.group(1))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    # wrk's Transfer/sec counts every byte it read (heads included), in units of 1024.
    res["mib_s"] = float("nan")
    if m := re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", out):
        res["mib_s"] = float(m.group(1)) * _BYTE_UNITS[m.group(2)] / MIB
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M):
            res[key] = _ms(m.group(1))
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non2xx": 0}
    if m := re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        for k, v in zip(("connect", "read", "write", "timeout"), m.groups(), strict=True):
            errors[k] = int(v)
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors["non2xx"] = int(m.group(1))
    res["errors"] = sum(errors.values())
    res["error_detail"] = {k: v for k, v in errors.items() if v}
    if not res["requests"]:
        res["wrk_output"] = out[-500:]
    return res


# --------------------------------------------------------------------------- measurements


def check(run: Running, w: Workload) -> str:
    """One request with a client of our own: "ok" or what was wrong."""
    try:
        status, body = request(run.port, w.path, post=w.post, timeout=30)
    except (OSError, http.client.HTTPException) as exc:
        return f"request failed: {exc!r}"
    if status != 200:
        return f"status {status}"
    if w.expect_len is not None and len(body) != w.expect_len:
        return f"body {len(body)} bytes, expected {w.expect_len}"
    if w.post and w.group == "micro" and body != b"65536":
        return f"app read {body[:20]!r} bytes, expected 65536"
    return "ok"


def measure_cell(run: Running, w: Workload, conns: int, mode: str, duration: float) -> dict:
    cpu0 = tree_cpu(run.proc)
    with RssSampler(run.proc) as sampler:
        res = run_wrk(run.port, w, conns, mode, duration)
    cpu = tree_cpu(run.proc) - cpu0
    res["peak_rss_mib"] = sampler.peak / MIB
    res["cpu_s"] = cpu
    res["cpu_us_per_req"] = cpu / res["requests"] * 1e6 if res["requests"] else float("nan")
    return res


def big_file_rss(run: Running, timeout: float = 120) -> dict:
    """Download /file-1g (1 GiB through wsgi.file_wrapper) once; RSS growth of the tree."""
    time.sleep(0.3)
    base = tree_rss(run.proc)
    got = 0
    t0 = time.monotonic()
    with RssSampler(run.proc) as sampler:
        try:
            sock = socket.create_connection((HOST, run.port), timeout=30)
            with sock:
                sock.sendall(f"GET /file-1g HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                buf = bytearray(1 << 20)
                head = b""
                while b"\r\n\r\n" not in head:
                    n = sock.recv_into(buf)
                    if not n:
                        break
                    head += bytes(buf[:n])
                got = len(head.partition(b"\r\n\r\n")[2])
                while got < 1 << 30 and time.monotonic() - t0 < timeout:
                    n = sock.recv_into(buf)
                    if not n:
                        break
                    got += n
        except OSError as exc:
            return {"error": repr(exc), "bytes": got}
    return {
        "bytes": got,
        "complete": got == 1 << 30,
        "seconds": round(time.monotonic() - t0, 2),
        "base_rss_mib": base / MIB,
        "peak_rss_mib": sampler.peak / MIB,
        "growth_mib": (sampler.peak - base) / MIB,
    }


# --------------------------------------------------------------------------- slow readers

SLOW_CLIENTS = 50
SLOW_PATH = "/stream-8m"  # bench/apps/micro.py: 128 chunks of 64 KiB from a generator
SLOW_BODY = 8 * MIB
SLOW_RCVBUF = 4096  # set before connect (the kernel doubles it): a window of a few KiB
SLOW_WRK_CONNS = 16
# wrk counts a response later than this as a timeout (an error, not a latency). It always
# stops at its duration, answered or not; the subprocess timeout bounds it beyond that.
SLOW_WRK_TIMEOUT = "2s"
SLOW_PROBE_S = 2.0  # how long a new client waits for /hello during the hold
SLOW_CONNECT_S = 10.0  # at most this long to connect them all and send their requests
SLOW_SETTLE_S = 3.0  # at most this long for the slow responses to begin before wrk starts
SLOW_DRAIN_S = 60.0  # at most this long to read the 50 bodies afterwards
SLOW_HEAD_MAX = 64 * 1024


class SlowBody:
    """The response one slow client reads, fed as it arrives: counts the body bytes through
    the framing (Content-Length, chunked, or up to EOF: the request says ``Connection:
    close``) and says whether the body ended where its framing says it ends."""

    def __init__(self) -> None:
        self.head = b""
        self.status = 0
        self.framing = ""  # "" until the head is parsed; then "length", "chunked" or "eof"
        self.left = 0  # bytes left of the Content-Length body, or of the current chunk
        self.skip = 0  # bytes of the CRLF after a chunk's data still to skip
        self.pending = b""  # an incomplete chunk-size or trailer line
        self.trailers = False  # the last chunk has been seen
        self.ended = False  # the framing says the body is complete
        self.eof = False
        self.body = 0
        self.error = ""

    @property
    def complete(self) -> bool:
        ended = self.eof if self.framing == "eof" else self.ended
        return not self.error and self.status == 200 and ended and self.body == SLOW_BODY

    @property
    def finished(self) -> bool:
        """Nothing more to read: the framing ended, the peer closed, or the bytes are bad."""
        return self.ended or self.eof or bool(self.error)

    def feed(self, data: bytes) -> None:
        if not self.framing:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                if len(self.head) > SLOW_HEAD_MAX:
                    self.error = "head too large"
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip().lower()
            if "chunked" in fields.get("transfer-encoding", ""):
                self.framing = "chunked"
            elif fields.get("content-length", "").isdigit():
                self.framing, self.left = "length", int(fields["content-length"])
                self.ended = self.left == 0
            else:
                self.framing = "eof"
        if self.framing == "chunked":
            self._chunked(data)
        elif self.framing == "length":
            take = min(self.left, len(data))
            self.body, self.left = self.body + take, self.left - take
            self.ended = self.left == 0
        else:
            self.body += len(data)

    def _chunked(self, data: bytes) -> None:
        buf, i = self.pending + data, 0
        while i < len(buf) and not self.ended:
            if self.left:  # inside a chunk's data
                take = min(self.left, len(buf) - i)
                self.body, self.left, i = self.body + take, self.left - take, i + take
                self.skip = 0 if self.left else 2
            elif self.skip:  # the CRLF that closes a chunk's data
                take = min(self.skip, len(buf) - i)
                self.skip, i = self.skip - take, i + take
            else:
                j = buf.find(b"\r\n", i)
                if j < 0:
                    break
                line, i = buf[i:j], j + 2
                if self.trailers:
                    self.ended = not line  # the empty line after the (absent) trailers
                    continue
                try:
                    size = int(line.split(b";")[0], 16)
                except ValueError:
                    self.error = f"bad chunk size {line[:20]!r}"
                    return
                self.trailers, self.left = size == 0, size
        self.pending = buf[i:]
        if len(self.pending) > SLOW_HEAD_MAX:
            self.error = "chunk-size line too long"


def open_slow_clients(port: int, socks: list[socket.socket]) -> None:
    """Open SLOW_CLIENTS connections (appended to ``socks``, which the caller closes), each
    with a small receive buffer, and send each one request; nothing is read."""
    req = f"GET {SLOW_PATH} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    deadline = time.monotonic() + SLOW_CONNECT_S
    for i in range(SLOW_CLIENTS):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{i} of {SLOW_CLIENTS} slow clients connected in time")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socks.append(sock)
        # Before connect, so the window the client offers (and its scale) stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        sock.settimeout(left)
        sock.connect((HOST, port))
        sock.sendall(req)


def wait_begun(socks: list[socket.socket], timeout: float) -> int:
    """How many of ``socks`` became readable (the response began, or the server closed)
    within ``timeout`` seconds; nothing is read."""
    begun = 0
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for sock in socks:
            sel.register(sock, selectors.EVENT_READ)
        while begun < len(socks) and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                sel.unregister(key.fileobj)
                begun += 1
    return begun


def drain(socks: list[socket.socket], timeout: float) -> list[SlowBody]:
    """Read every response on ``socks`` to its end, all at once, for at most ``timeout`` s;
    each socket is closed as soon as its response is over."""
    bodies = [SlowBody() for _ in socks]
    buf = bytearray(1 << 20)
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for sock, body in zip(socks, bodies, strict=True):
            # Now a fast reader: a larger buffer (the window stays within the scale the
            # small buffer fixed at connect, 64 KiB at most).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, body)
        while sel.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(min(left, 1.0)):
                body = key.data
                try:
                    n = key.fileobj.recv_into(buf)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    body.error, n = repr(exc), 0
                if n:
                    body.feed(bytes(buf[:n]))
                else:
                    body.eof = True
                if body.finished:
                    sel.unregister(key.fileobj)
                    # Close at once, as a client of a `Connection: close` response does:
                    # gunicorn, for one, lingers up to 2 s for the client's FIN before it
                    # takes the next connection.
                    key.fileobj.close()
    return bodies


def probe_ms(port: int, timeout: float) -> float | None:
    """Milliseconds a new connection waits for /hello, or None: no 200 within ``timeout``.

    wrk cannot say this when nothing is answered: it reports 0 requests and, with
    connections that are never answered, no timeouts either (it counts a timeout only for
    responses that do arrive late)."""
    t0 = time.monotonic()
    try:
        status, _ = request(port, "/hello", timeout=timeout)
    except (OSError, http.client.HTTPException):
        return None
    ms = (time.monotonic() - t0) * 1000
    return ms if status == 200 and ms <= timeout * 1000 else None


def slow_readers(server: Server, env: dict, log_dir: Path, duration: float) -> dict:
    """What other clients get while SLOW_CLIENTS clients read a streamed 8 MiB body slowly.

    A fresh server (so its RSS is not that of earlier cells) is checked with one fast
    download of /stream-8m, then wrk measures /hello at c=16 alone; then the slow clients
    connect, each sends one request and reads nothing, and once their responses have begun
    (at most SLOW_SETTLE_S s) wrk measures /hello again while they hold on, and one new
    client asks for /hello once more (``probe_ms``); then all of them read their bodies to
    the end (bounded by SLOW_DRAIN_S s). RSS of the tree is sampled from
    before the slow clients connect until they are done. Every socket is closed and the
    server stopped by process group, whatever happens.
    """
    hello = WORKLOADS["hello"]
    run = Running(server, "micro", log_dir, env)
    socks: list[socket.socket] = []
    try:
        run.wait_ready(60)
        status, got = request(run.port, SLOW_PATH, timeout=30)
        if status != 200 or len(got) != SLOW_BODY:
            return {"error": f"fast client got status {status}, {len(got)} bytes"}
        run_wrk(run.port, hello, SLOW_WRK_CONNS, "ka", 1)  # warm-up
        alone = run_wrk(run.port, hello, SLOW_WRK_CONNS, "ka", duration, SLOW_WRK_TIMEOUT)
        base = tree_rss(run.proc)
        with RssSampler(run.proc) as sampler:
            t0 = time.monotonic()
            open_slow_clients(run.port, socks)
            begun = wait_begun(socks, SLOW_SETTLE_S)
            settle_s = time.monotonic() - t0
            held = run_wrk(run.port, hello, SLOW_WRK_CONNS, "ka", duration, SLOW_WRK_TIMEOUT)
            probe = probe_ms(run.port, SLOW_PROBE_S)
            hold_peak = sampler.peak
            t1 = time.monotonic()
            bodies = drain(socks, SLOW_DRAIN_S)
            drain_s = time.monotonic() - t1
        complete = sum(b.complete for b in bodies)
        incomplete = [b for b in bodies if not b.complete]
        for res in (alone, held):
            if not res["requests"]:  # wrk prints 0.00us percentiles when nothing completed
                res["p50_ms"] = res["p99_ms"] = float("nan")
        return {
            "clients": SLOW_CLIENTS,
            "begun": begun,
            "settle_s": round(settle_s, 2),
            "alone": alone,
            "held": held,
            "probe_ms": probe,
            "base_rss_mib": base / MIB,
            "hold_peak_rss_mib": hold_peak / MIB,
            "peak_rss_mib": sampler.peak / MIB,
            "complete": complete,
            "drain_s": round(drain_s, 2),
            "incomplete": {
                "no body bytes": sum(b.body == 0 for b in incomplete),
                "partial": sum(0 < b.body < SLOW_BODY for b in incomplete),
                "errors": sorted({b.error for b in incomplete if b.error})[:3],
                "framing": sorted({b.framing or "no head" for b in incomplete}),
            }
            if incomplete
            else {},
        }
    except Exception as exc:  # noqa: BLE001 - a peer failing is a result
        return {"error": f"{exc!r}; log: {run.log_tail(3)}"}
    finally:
        for sock in socks:
            sock.close()
        run.stop()


def slow_summary(r: dict) -> str:
    """One line for the console."""
    if "error" in r:
        return f"error: {r['error']}"
    a, h = r["alone"], r["held"]
    return (
        f"hello alone {a['rps']:,.0f} req/s; with {r['clients']} slow readers"
        f" {h['rps']:,.0f} req/s p99 {h['p99_ms']:.2f} ms errors {h['errors']}"
        f" {h.get('error_detail') or ''}; new client /hello {r['probe_ms']} ms;"
        f" begun {r['begun']}/{r['clients']} in"
        f" {r['settle_s']} s; RSS {r['base_rss_mib']:.1f} -> {r['peak_rss_mib']:.1f} MiB"
        f" (hold {r['hold_peak_rss_mib']:.1f}); bodies complete {r['complete']}/{r['clients']}"
        f" in {r['drain_s']} s {r['incomplete'] or ''}"
    )


# --------------------------------------------------------------------------- static files

# Servers that serve a directory themselves; nginx is the reference, not a WSGI server.
STATIC_SERVERS = ["bourbon", "nginx", "granian", "uwsgi"]
STATIC_DURATION = 10.0  # seconds per measured cell, unless --duration
STATIC_WARMUP = 2.0  # seconds of wrk before each measured cell, unless --warmup
STATIC_REPEAT = 2  # unless --repeat
STATIC_SETTLE_S = 0.5  # after a cell, before its "after" RSS: wrk's connections are closed
STATIC_SEED = 12  # the 3 MiB file's bytes: the same on every run
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_SERVER = Server(
    "nginx",
    "one worker, sendfile on, tcp_nopush on, access_log off, keep-alive, open_file_cache off",
    "nginx",
)


def stylesheet(size: int) -> bytes:
    """A stylesheet of exactly ``size`` bytes, the same on every run: numbered rules, then a
    comment that pads it to the size."""
    out = bytearray(b"/* bench/run.py static-16k: generated, deterministic */\n")
    i = 0
    while True:
        colour = (i * 2654435761) & 0xFFFFFF
        rule = f".c{i:04d} {{ color: #{colour:06x}; margin: {i % 17}px {i % 11}px; }}\n"
        if len(out) + len(rule) > size - 5:  # room for the shortest pad, "/**/\n"
            break
        out += rule.encode()
        i += 1
    out += b"/*" + b"x" * (size - len(out) - 5) + b"*/\n"
    return bytes(out)


def unprivileged_ids() -> tuple[int, int] | None:
    """(uid, gid) nginx runs as when the harness is root ("nobody"), else None."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


@cache
def nginx_temp_paths() -> tuple[str, ...]:
    """The temp-path directives this nginx build knows (all pointed into its prefix, so a
    non-root nginx never touches /var/lib/nginx)."""
    try:
        out = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    names = ["client_body", "proxy"]
    names += [m for m in ("fastcgi", "uwsgi", "scgi") if f"--without-http_{m}_module" not in out]
    return tuple(names)


def nginx_config(prefix: Path, port: int, root: Path) -> str:
    """nginx.conf for the static cells: one worker, sendfile, no access log, keep-alive."""
    mime = Path("/etc/nginx/mime.types")
    types = f"include {mime};" if mime.exists() else "types { text/css css; }"
    temp = [f"    {n}_temp_path {prefix}/{n};" for n in nginx_temp_paths()]
    return "\n".join(
        [
            "daemon off;",
            "master_process on;",
            "worker_processes 1;",
            f"pid {prefix}/nginx.pid;",
            f"error_log {prefix}/error.log warn;",
            "events { worker_connections 1024; }",
            "http {",
            f"    {types}",
            "    default_type application/octet-stream;",
            "    access_log off;",
            "    sendfile on;",
            "    tcp_nopush on;",
            "    keepalive_timeout 65;",
            # nginx closes a keep-alive connection after 1,000 requests by default; wrk would
            # reconnect every few hundred milliseconds. No other server here has such a cap.
            "    keepalive_requests 1000000;",
            *temp,
            "    server {",
            f"        listen {HOST}:{port};",
            f"        location {STATIC_PREFIX}/ {{ alias {root}/; }}",
            "    }",
            "}",
            "",
        ]
    )


class StaticSite:
    """The files the static cells serve, and a prefix directory per nginx start, in one
    temporary directory. Everything is readable by all: as root, nginx runs as "nobody"."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bourbon-bench-static-"))
        self.tmp.chmod(0o755)
        self.root = self.tmp / "root"
        self.bodies = {
            "static-16k": stylesheet(16 * 1024),
            "static-3m": random.Random(STATIC_SEED).randbytes(3 * MIB),
        }
        for w in STATIC_CELLS:
            path = self.root / w.path.removeprefix(f"{STATIC_PREFIX}/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.bodies[w.name])
            path.chmod(0o644)
            for d in path.relative_to(self.tmp).parents:
                (self.tmp / d).chmod(0o755)
        self.nginx_starts = 0
        self.nginx_prefix: Path | None = None

    def nginx_command(self, port: int) -> list[str]:
        """Write a fresh prefix (config, pid and error log, temp paths) and return the command
        that runs nginx in the foreground from it, as "nobody" when the harness is root."""
        self.nginx_starts += 1
        prefix = self.tmp / f"nginx-{self.nginx_starts}"
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(nginx_config(prefix, port, self.root))
        ids = unprivileged_ids()
        drop: list[str] = []
        if ids is not None:
            os.chown(prefix, *ids)
            drop = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups"]
        self.nginx_prefix = prefix
        conf, err = prefix / "nginx.conf", prefix / "error.log"
        return [*drop, NGINX, "-p", f"{prefix}/", "-e", str(err), "-c", str(conf)]

    def keep_nginx_log(self, log_dir: Path) -> None:
        """Append the last nginx start's error log to the run's logs (the prefix goes)."""
        if self.nginx_prefix is None:
            return
        with contextlib.suppress(OSError):
            text = (self.nginx_prefix / "error.log").read_bytes()
            with open(log_dir / "nginx-static-error.log", "ab") as f:
                f.write(text)

    def template(self, args: list[str], port: int) -> str:
        """A command line with the run's own paths and port replaced by names."""
        out = []
        for arg in args:
            if arg == str(port):
                arg = "PORT"
            arg = arg.replace(f"{HOST}:{port}", f"{HOST}:PORT")
            if self.nginx_prefix is not None:
                arg = arg.replace(str(self.nginx_prefix), "PREFIX")
            out.append(arg.replace(str(self.root), "DIR"))
        return shlex.join(out)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def static_command(name: str, site: StaticSite, port: int) -> list[str]:
    """The command line of one server serving ``site.root`` at /static/ (and the micro app
    elsewhere, for the servers that run one): the usual one-worker line plus the server's
    own static flag."""
    if name == "nginx":
        return site.nginx_command(port)
    cmd = SERVERS[name].command(GROUP_TARGET["static"], port)
    root = str(site.root)
    if name == "bourbon":
        return [*cmd, "--static", f"{STATIC_PREFIX}/={root}"]
    if name == "granian":  # its flags before the app, which is the last argument
        flags = ["--static-path-route", STATIC_PREFIX, "--static-path-mount", root]
        return [*cmd[:-1], *flags, cmd[-1]]
    if name == "uwsgi":
        return [
            *cmd,
            "--chdir",
            str(GROUP_DIR["static"]),
            "--static-map",
            f"{STATIC_PREFIX}={root}",
        ]
    raise ValueError(f"{name} has no static-file mode here")


def bourbon_static_missing() -> str | None:
    """None when the installed bourbon has ``--static``; else why the cells skip it."""
    exe = VENV_BIN / "bourbon"
    try:
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`bourbon --help` failed: {exc!r}"
    if re.search(r"(?m)^\s*(?:-\w, )?--static(?:[\s=\[]|$)", out.stdout + out.stderr):
        return None
    return f"`{exe} --help` lists no --static (a build from before issue 12)"


def static_check(run: Running, w: Workload, body: bytes) -> tuple[str, dict]:
    """One GET with a client of our own: "ok" when the body is the file byte for byte, and
    the response's header fields (what each server sends with a file)."""
    conn = http.client.HTTPConnection(HOST, run.port, timeout=30)
    try:
        conn.request("GET", w.path)
        resp = conn.getresponse()
        got = resp.read()
        headers = dict(resp.getheaders())
    except (OSError, http.client.HTTPException) as exc:
        return f"request failed: {exc!r}", {}
    finally:
        conn.close()
    if resp.status != 200:
        return f"status {resp.status}", headers
    if got != body:
        return f"{len(got)} bytes that are not the file's {len(body)}", headers
    return "ok", headers


def static_cell(run: Running, w: Workload, duration: float, warmup: float) -> dict:
    """Warm-up then one measured wrk run of a static cell; the tree's RSS before the warm-up,
    at its peak (sampled through warm-up and cell) and STATIC_SETTLE_S after the cell."""
    conns = w.conns[0]
    before = tree_rss(run.proc)
    with RssSampler(run.proc) as sampler:
        if warmup:
            run_wrk(run.port, w, conns, "ka", warmup)
        cpu0 = tree_cpu(run.proc)
        res = run_wrk(run.port, w, conns, "ka", duration)
        cpu = tree_cpu(run.proc) - cpu0
    time.sleep(STATIC_SETTLE_S)
    res["conns"] = conns
    res["rss_before_mib"] = before / MIB
    res["peak_rss_mib"] = sampler.peak / MIB
    res["rss_after_mib"] = tree_rss(run.proc) / MIB
    res["cpu_s"] = cpu
    res["cpu_us_per_req"] = cpu / res["requests"] * 1e6 if res["requests"] else float("nan")
    return res


def static_files(
    names: list[str], env: dict, log_dir: Path, duration: float, warmup: float, repeat: int
) -> dict:
    """The static cells for ``names``, ``repeat`` times, servers in a rotated order per
    repetition; each server is started once per repetition for both cells, checked (status
    and the exact bytes of each file), measured, and stopped by process group whatever
    happens. Returns the part of the results the report's static table reads."""
    out: dict = {
        "servers": names,
        "duration": duration,
        "warmup": warmup,
        "repeat": repeat,
        "cells": {w.name: {"path": w.path, "bytes": w.expect_len, "conns": w.conns[0]}
                  for w in STATIC_CELLS},
        "runs": {},
        "idle_rss_mib": {},
        "commands": {},
        "headers": {},
        "problems": [],
    }  # fmt: skip
    site = StaticSite()
    try:
        for rep in range(repeat):
            order = names[rep % len(names) :] + names[: rep % len(names)] if names else []
            for name in order:
                server = NGINX_SERVER if name == "nginx" else SERVERS[name]
                try:  # nothing runs when this fails (no executable, no prefix directory)
                    command = partial(static_command, name, site)
                    run = Running(server, "static", log_dir, env, command=command)
                except OSError as exc:
                    out["problems"].append(f"{name} (static, rep {rep}) did not start: {exc!r}")
                    print(f"  ! {out['problems'][-1]}", flush=True)
                    continue
                if name not in out["commands"]:
                    out["commands"][name] = site.template(run.cmd, run.port)
                    if name == "nginx" and site.nginx_prefix is not None:
                        conf = (site.nginx_prefix / "nginx.conf").read_text()
                        out["nginx_conf"] = conf.replace(str(site.nginx_prefix), "PREFIX")
                        out["nginx_conf"] = out["nginx_conf"].replace(str(site.root), "DIR")
                        out["nginx_conf"] = out["nginx_conf"].replace(f":{run.port};", ":PORT;")
                try:
                    run.wait_ready(60)
                    out["idle_rss_mib"].setdefault(name, []).append(tree_rss(run.proc) / MIB)
                    for w in STATIC_CELLS:
                        verdict, headers = static_check(run, w, site.bodies[w.name])
                        out["headers"].setdefault(name, {})[w.name] = headers
                        if verdict != "ok":
                            msg = f"{name} {w.name}: {verdict}; not measured"
                            if msg not in out["problems"]:
                                out["problems"].append(msg)
                            print(f"  ! {msg}", flush=True)
                            continue
                        res = static_cell(run, w, duration, warmup)
                        res["rep"] = rep
                        out["runs"].setdefault(w.name, {}).setdefault(name, []).append(res)
                        err = f" errors={res['errors']}" if res["errors"] else ""
                        print(
                            f"  static rep{rep} {name:8} {w.name:10} c={res['conns']:<3}"
                            f" {res['rps']:>9,.0f} req/s {res['mib_s']:>8,.1f} MiB/s"
                            f" p99 {res['p99_ms']:7.2f} ms rss {res['rss_before_mib']:.1f}"
                            f" -> {res['rss_after_mib']:.1f} MiB (peak {res['peak_rss_mib']:.1f})"
                            f"{err}",
                            flush=True,
                        )
                except Exception as exc:  # noqa: BLE001 - a peer failing is a result
                    msg = f"{name} (static, rep {rep}): {exc!r}; log: {run.log_tail(3)}"
                    out["problems"].append(msg)
                    print(f"  ! {msg}", flush=True)
                finally:
                    run.stop()
                    if name == "nginx":
                        site.keep_nginx_log(log_dir)
    finally:
        site.cleanup()
    return out


def static_extra(
    names: list[str], env: dict, log_dir: Path, duration: float, warmup: float, repeat: int
) -> dict:
    """The static cells for those of ``names`` that can run here: bourbon only when its
    ``--help`` lists ``--static``, nginx only when installed; the others are listed as
    skipped, with the reason."""
    skipped = {}
    if "bourbon" in names and (why := bourbon_static_missing()):
        skipped["bourbon"] = why
    if "nginx" in names:
        if not Path(NGINX).exists():
            skipped["nginx"] = "nginx not found: apt-get install -y nginx"
        elif unprivileged_ids() is not None and shutil.which("setpriv") is None:
            skipped["nginx"] = "setpriv (util-linux) not found: needed to run nginx as nobody"
    for name, why in skipped.items():
        print(f"  static: skipping {name}: {why}", flush=True)
    out = static_files(
        [n for n in names if n not in skipped], env, log_dir, duration, warmup, repeat
    )
    out["servers"], out["skipped"] = names, skipped
    return out


def make_files(tmp: Path, big: bool) -> None:
    (tmp / "file-1m.bin").write_bytes(os.urandom(MIB))
    if big:  # sparse: no disk space, the page cache serves zeros
        with open(tmp / "file-1g.bin", "wb") as f:
            f.truncate(1 << 30)
        # Read it once so its (zero) pages are in the page cache before any server sends it:
        # otherwise the first server measured pays for filling the cache (~3 s instead of
        # ~0.6 s here) and the download times compare the cache, not the servers.
        buf = bytearray(1 << 20)
        with open(tmp / "file-1g.bin", "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def prepare_django(env: dict) -> None:
    py = sys.executable
    for args in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        subprocess.run([py, "manage.py", *args], cwd=MYSITE, env=env, check=True, timeout=300)


# --------------------------------------------------------------------------- ASGI and WebSockets

# The ASGI cells (--asgi-only): the same one-worker method as the WSGI cells, with ASGI
# servers: bench/apps/asgi.py (hello over HTTP, an echo over WebSockets) and the example
# site's async view through mysite.asgi. wrk loads HTTP; bench/wsload (Rust, in this
# workspace) loads WebSockets and, in its `serve` mode, measures its own ceiling.
WSLOAD = Path(os.environ.get("BENCH_WSLOAD", REPO / "target" / "release" / "wsload"))
WS_PATH = "/ws"
ASGI_DURATION = 5.0  # seconds per wrk cell, unless --duration
ASGI_WARMUP = 2.0  # seconds of load before each cell's measurement (wrk run / wsload --warmup)
ASGI_WS_SECS = 10.0  # seconds per echo cell, unless --duration
ASGI_REPEAT = 3  # unless --repeat
DJ_ROUNDS_PER_REP = 3  # paired rounds of the Django async cell per repetition
WS_SIZE = 64
IDLE_CONNS = 10_000
IDLE_SECS = 30.0
IDLE_PARALLEL = 100  # handshakes in flight while opening the idle connections
IDLE_CONNECT_S = 120.0
IDLE_PROBE_S = 120.0
# RLIMIT_NOFILE of the harness, inherited by every server it starts (and raised by wsload for
# itself): the idle cell needs 10,000 sockets in the server, well over the usual 1,024.
ASGI_NOFILE = 65_536
CEILING_FACTOR = 2.0  # a cell is client-bound unless the client's ceiling is this × the best


@dataclass(frozen=True)
class AsgiServer:
    name: str
    note: str  # how it is configured, for the report
    package: str

    def command(self, target: str, port: int) -> list[str]:
        b = str(VENV_BIN)
        if self.name == "bourbon":
            # ASGI is detected from the app; one worker, as in every cell.
            return [f"{b}/bourbon", target, "-b", f"{HOST}:{port}", "-w", "1"]
        if self.name == "granian":
            # --backpressure: Granian admits at most backlog/workers (1,024) requests at a
            # time per worker, and a WebSocket is one request for its whole life: without
            # this the idle cell would stop at 1,024 connections.
            return [
                f"{b}/granian", "--interface", "asgi", "--workers", "1",
                "--runtime-threads", "1", "--runtime-mode", "st", "--loop", "uvloop",
                "--http", "1", "--ws", "--backpressure", str(IDLE_CONNS + 1024),
                "--host", HOST, "--port", str(port), target,
            ]  # fmt: skip
        if self.name in ("uvicorn", "uvicorn-sansio"):
            # --lifespan auto: run the lifespan protocol, and carry on when the app refuses it
            # as Django's ASGIHandler does ("on" makes uvicorn exit on the Django site).
            ws = "websockets" if self.name == "uvicorn" else "websockets-sansio"
            return [
                f"{b}/uvicorn", "--host", HOST, "--port", str(port), "--loop", "uvloop",
                "--http", "httptools", "--ws", ws, "--lifespan", "auto", "--no-access-log",
                "--log-level", "warning", target,
            ]  # fmt: skip
        if self.name == "daphne":
            # -v 0: no access log (daphne writes one to stdout at its default verbosity).
            return [f"{b}/daphne", "-b", HOST, "-p", str(port), "-v", "0", target]
        raise ValueError(self.name)


ASGI_SERVERS = {
    s.name: s
    for s in [
        AsgiServer("bourbon", "-w 1 (ASGI detected from the app)", "bourbon"),
        AsgiServer(
            "granian",
            "--interface asgi --workers 1 --runtime-threads 1 --runtime-mode st --loop uvloop"
            " --http 1 --backpressure 11024",
            "granian",
        ),
        AsgiServer(
            "uvicorn",
            "--loop uvloop --http httptools --ws websockets --lifespan auto --no-access-log",
            "uvicorn",
        ),
        AsgiServer(
            "uvicorn-sansio",
            "--loop uvloop --http httptools --ws websockets-sansio --lifespan auto --no-access-log",
            "uvicorn",
        ),
        AsgiServer("daphne", "-v 0 (Twisted, one process)", "daphne"),
    ]
}
ASGI_PEER_PACKAGES = ("uvicorn", "uvloop", "httptools", "websockets", "daphne", "twisted")
ASGI_TARGET = {"asgi": "apps.asgi:app", "django-asgi": "mysite.asgi:application"}
GROUP_DIR.update({"asgi": BENCH, "django-asgi": MYSITE})
GROUP_PROBE.update({"asgi": "/hello", "django-asgi": "/plain-async"})
ASGI_HTTP = {
    "asgi-hello": Workload(
        "asgi-hello", "asgi", "/hello", "ASGI hello, 13-byte body", expect_len=13, conns=(64, 1)
    ),
    "dj-async": Workload(
        "dj-async", "django-asgi", "/plain-async", "Django async view (/plain-async)",
        expect_len=18, conns=(64,),
    ),
}  # fmt: skip
WS_ECHO_CONNS = (64, 1)


def asgi_key(cell: str, conns: int) -> str:
    return f"{cell} c={conns}"


def raise_nofile(want: int) -> int:
    """Raise this process's RLIMIT_NOFILE (inherited by the servers it starts) to ``want``
    where allowed (the hard limit too, as root); the soft limit in force afterwards."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    if soft != inf and soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want if hard != inf else hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < want:  # not root: as far as the hard limit allows
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft


def run_wsload(args: list[str], timeout: float) -> dict:
    """One wsload run pinned to the client's CPU; its last stdout line (JSON), or an error."""
    cmd = ["taskset", "-c", CLIENT_CPU, str(WSLOAD), *args]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"wsload ran over {timeout:.0f} s"}
    lines = out.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"wsload exit {out.returncode}: {out.stderr.strip()[-300:]}"}


def ws_echo(port: int, conns: int, secs: float, warmup: float, text: bool = False) -> dict:
    """wsload echo of WS_SIZE-byte messages; in the shape of a wrk result (rps = messages/s)."""
    args = ["echo", "--url", f"ws://{HOST}:{port}{WS_PATH}", "--conns", str(conns)]
    args += ["--size", str(WS_SIZE), "--secs", f"{secs:g}", "--warmup", f"{warmup:g}"]
    if text:
        args.append("--text")
    r = run_wsload(args, timeout=secs + warmup + 60)
    if "error" in r:
        nan = float("nan")
        return {"requests": 0, "rps": 0.0, "p50_ms": nan, "p99_ms": nan, "errors": 1,
                "error_detail": {"wsload": r["error"]}}  # fmt: skip
    ms = lambda v: float("nan") if v is None else v / 1000  # noqa: E731
    return {
        "requests": r["messages"],
        "rps": r["msgs_per_s"],
        "p50_ms": ms(r["p50_us"]),
        "p99_ms": ms(r["p99_us"]),
        "errors": r["errors"],
        "error_detail": r["error_detail"],
        "error_examples": r.get("error_examples", {}),
        "connected": r["connected"],
        "clean_closes": r["clean_closes"],
    }


def ws_echo_cell(run: Running, conns: int, secs: float, warmup: float) -> dict:
    """One echo cell with the server's RSS peak and CPU. wsload's warm-up is inside its run,
    so the CPU per message divides the whole run's CPU by the messages the whole run would
    have counted at the measured rate (≈: it assumes the warm-up ran at the same rate)."""
    cpu0 = tree_cpu(run.proc)
    with RssSampler(run.proc) as sampler:
        res = ws_echo(run.port, conns, secs, warmup)
    cpu = tree_cpu(run.proc) - cpu0
    res["peak_rss_mib"] = sampler.peak / MIB
    res["cpu_s"] = cpu
    total = res["rps"] * (secs + warmup)
    res["cpu_us_per_req"] = cpu / total * 1e6 if total else float("nan")
    return res


def ws_check(port: int) -> str:
    """One short echo run, binary then text: "ok" or what was wrong."""
    for text in (False, True):
        r = ws_echo(port, 1, 0.3, 0, text=text)
        if r["errors"] or not r["requests"]:
            detail = r.get("error_examples") or r.get("error_detail")
            return f"WebSocket echo ({'text' if text else 'binary'}) failed: {detail}"
    return "ok"


class WsloadServe:
    """wsload's own echo server, pinned to the servers' CPU, stopped by process group."""

    def __init__(self, secs: float):
        cmd = ["taskset", "-c", SERVER_CPU, str(WSLOAD), "serve", "--secs", f"{secs:g}"]
        self.popen = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )  # fmt: skip
        line = read_line(self.popen.stdout, 10.0)
        try:
            self.port = int(json.loads(line)["port"])
        except (TypeError, ValueError, KeyError) as exc:
            self.stop()
            raise RuntimeError(f"wsload serve did not start: {line!r}") from exc

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(5)


def read_line(stream, timeout: float) -> str | None:
    """The next line of a pipe within ``timeout`` seconds, else None."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            return None
    return stream.readline()


def idle_cell(server: AsgiServer, env: dict, log_dir: Path) -> dict:
    """IDLE_CONNS idle WebSockets held by one fresh server for IDLE_SECS seconds.

    The server is started, checked (hello and one echo), and its tree's RSS taken; wsload
    opens the connections (IDLE_PARALLEL handshakes at a time) and says when all are open;
    the RSS is taken again just before the hold ends (the connections idle for IDLE_SECS,
    answering pings); then wsload proves each alive with one echoed message and closes them,
    and the RSS is taken once more. Stopped by process group whatever happens."""
    run = Running(
        server, "asgi", log_dir, env, command=partial(server.command, ASGI_TARGET["asgi"])
    )
    proc = None
    try:
        run.wait_ready(60)
        verdict = ws_check(run.port)
        if verdict != "ok":
            return {"error": verdict}
        time.sleep(0.5)
        before = tree_rss(run.proc)
        args = [
            "idle", "--url", f"ws://{HOST}:{run.port}{WS_PATH}", "--conns", str(IDLE_CONNS),
            "--secs", f"{IDLE_SECS:g}", "--parallel", str(IDLE_PARALLEL),
            "--connect-secs", f"{IDLE_CONNECT_S:g}", "--probe-secs", f"{IDLE_PROBE_S:g}",
        ]  # fmt: skip
        cmd = ["taskset", "-c", CLIENT_CPU, str(WSLOAD), *args]
        with RssSampler(run.proc) as sampler:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True,
            )  # fmt: skip
            held = json.loads(read_line(proc.stdout, IDLE_CONNECT_S + 30) or "{}")
            if held.get("event") != "held":
                return {"error": f"wsload idle: no 'held' line ({held})"}
            # The connections idle for IDLE_SECS from here: measure just before the end.
            time.sleep(max(0.0, IDLE_SECS - 2))
            at_hold = tree_rss(run.proc)
            hold_end = json.loads(read_line(proc.stdout, 30) or "{}")
            final = json.loads(read_line(proc.stdout, IDLE_PROBE_S + 30) or "{}")
            proc.wait(30)
        time.sleep(1)
        after = tree_rss(run.proc)
        connected = held.get("connected", 0)
        return {
            "conns": IDLE_CONNS,
            "connected": connected,
            "connect_s": held.get("connect_s"),
            "dropped_in_hold": hold_end.get("dropped_in_hold"),
            "alive": final.get("alive"),
            "clean_closes": final.get("clean_closes"),
            "errors": final.get("error_detail", {}),
            "error_examples": final.get("error_examples", {}),
            "rss_before_mib": before / MIB,
            "rss_held_mib": at_hold / MIB,
            "rss_after_mib": after / MIB,
            "peak_rss_mib": sampler.peak / MIB,
            "kib_per_socket": (at_hold - before) / 1024 / connected if connected else None,
        }
    except Exception as exc:  # noqa: BLE001 - a peer failing is a result
        return {"error": f"{exc!r}; log: {run.log_tail(3)}"}
    finally:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        run.stop()


def start_failure(name: str, run: Running) -> str:
    """Why a server that exited at start did, in words for the report."""
    rc = run.popen.returncode
    if name == "bourbon" and rc == 4:
        return (
            "exit 4 at start: this bourbon refuses ASGI applications (a build from before"
            " ASGI support)"
        )
    return f"exited ({rc}) at start; log: {run.log_tail(3)}"


def asgi_record(out: dict, name: str, key: str, res: dict, rep: int) -> None:
    """Keep one measurement of ``name`` in cell ``key`` (``rep``: its repetition or round)."""
    res["rep"] = rep
    out["runs"].setdefault(key, {}).setdefault(name, []).append(res)
    err = f" errors={res['errors']} {res.get('error_detail') or ''}" if res["errors"] else ""
    print(
        f"  asgi rep{rep} {name:15} {key:16} {res['rps']:>10,.0f}/s p50 {res['p50_ms']:7.3f}"
        f" p99 {res['p99_ms']:8.3f} ms rss {res['peak_rss_mib']:6.1f} MiB"
        f" cpu {res['cpu_us_per_req']:6.1f} us{err}",
        flush=True,
    )


def asgi_start(server: AsgiServer, group: str, env: dict, log_dir: Path, out: dict) -> Running:
    """Start ``server`` on ``group``'s app; its command line goes to the report."""
    run = Running(server, group, log_dir, env, command=partial(server.command, ASGI_TARGET[group]))
    out["commands"].setdefault(
        f"{server.name} {group}", shlex.join(run.cmd).replace(str(run.port), "PORT")
    )
    return run


def checked_and_warm(run: Running, w: Workload, name: str, cfg: dict, out: dict) -> bool:
    """One request checked (a problem noted if it is wrong), then the warm-up load."""
    verdict = check(run, w)
    if verdict != "ok":
        problem(out, f"{name} {w.name}: {verdict}; not measured")
        return False
    if cfg["warmup"]:
        run_wrk(run.port, w, max(w.conns), "ka", cfg["warmup"])
    return True


def asgi_visit(
    server: AsgiServer, group: str, env: dict, log_dir: Path, cfg: dict, rep: int, out: dict
) -> str | None:
    """Start ``server`` on ``group``'s app, check it, measure the group's cells, stop it.
    Returns a reason when the server could not start at all (not worth another try)."""
    name = server.name
    run = asgi_start(server, group, env, log_dir, out)

    def record(key: str, res: dict) -> None:
        asgi_record(out, name, key, res, rep)

    try:
        try:
            run.wait_ready(60)
        except RuntimeError:
            if run.popen.poll() is not None:
                return start_failure(name, run)
            raise
        for w in (w for w in ASGI_HTTP.values() if w.group == group):
            if not checked_and_warm(run, w, name, cfg, out):
                continue
            for conns in w.conns:
                record(asgi_key(w.name, conns), measure_cell(run, w, conns, "ka", cfg["duration"]))
        if group == "asgi":
            verdict = ws_check(run.port)
            if verdict != "ok":
                problem(out, f"{name} ws-echo: {verdict}; not measured")
            else:
                for conns in WS_ECHO_CONNS:
                    res = ws_echo_cell(run, conns, cfg["ws_secs"], cfg["warmup"])
                    record(asgi_key("ws-echo", conns), res)
    except Exception as exc:  # noqa: BLE001 - a peer failing is a result
        problem(out, f"{name} ({group}, rep {rep}): {exc!r}; log: {run.log_tail(3)}")
    finally:
        run.stop()
    return None


def django_rounds(servers: list[str], env: dict, log_dir: Path, cfg: dict, out: dict) -> None:
    """The Django async cell in paired rounds: every server runs the site at once (each
    pinned to the servers' CPU, idle while another is loaded), and each round loads each in
    turn, the order rotated from round to round. The cell is bound by Django and asgiref on
    every server (docs/performance.md), so the servers land within a few per cent of each
    other, less than this VM's drift over the minutes a visit per server takes; measuring
    them side by side puts the drift on both sides of each round's ratio, and the verdict is
    the median of those ratios."""
    group = "django-asgi"
    runs: dict[str, Running] = {}
    try:
        for name in servers:
            if name in out["status"]:
                continue
            runs[name] = asgi_start(ASGI_SERVERS[name], group, env, log_dir, out)
        live: list[str] = []
        for name, run in runs.items():
            try:
                run.wait_ready(60)
            except RuntimeError as exc:
                if run.popen.poll() is not None:
                    why = start_failure(name, run)
                    out["status"][name] = why
                    print(f"  asgi: {name}: {why}; not measured", flush=True)
                else:
                    problem(out, f"{name} ({group}): {exc!r}; log: {run.log_tail(3)}")
                continue
            for w in (w for w in ASGI_HTTP.values() if w.group == group):
                if not checked_and_warm(run, w, name, cfg, out):
                    break
            else:
                live.append(name)
        for rnd in range(cfg["dj_rounds"]):
            order = live[rnd % len(live) :] + live[: rnd % len(live)] if live else []
            for name in order:
                for w in (w for w in ASGI_HTTP.values() if w.group == group):
                    for conns in w.conns:
                        try:
                            res = measure_cell(runs[name], w, conns, "ka", cfg["duration"])
                        except Exception as exc:  # noqa: BLE001 - a peer failing is a result
                            problem(out, f"{name} ({group}, round {rnd}): {exc!r}")
                            continue
                        asgi_record(out, name, asgi_key(w.name, conns), res, rnd)
    finally:
        for run in runs.values():
            run.stop()


def problem(out: dict, msg: str) -> None:
    if msg not in out["problems"]:
        out["problems"].append(msg)
    print(f"  ! {msg}", flush=True)


def asgi_ceiling(cfg: dict, rep: int, out: dict) -> None:
    """The client's ceiling: the echo cells against wsload's own server."""
    try:
        srv = WsloadServe(secs=(cfg["ws_secs"] + cfg["warmup"] + 60) * len(WS_ECHO_CONNS))
    except (OSError, RuntimeError) as exc:
        problem(out, f"client ceiling: {exc!r}")
        return
    try:
        for conns in WS_ECHO_CONNS:
            res = ws_echo(srv.port, conns, cfg["ws_secs"], cfg["warmup"])
            res.update(rep=rep, peak_rss_mib=float("nan"), cpu_us_per_req=float("nan"))
            out["ceiling"].setdefault(asgi_key("ws-echo", conns), []).append(res)
            print(
                f"  ceiling rep{rep} wsload-serve ws-echo c={conns:<3} {res['rps']:>10,.0f}/s"
                f" p50 {res['p50_ms']:7.3f} p99 {res['p99_ms']:8.3f} ms errors {res['errors']}",
                flush=True,
            )
    finally:
        srv.stop()


def asgi_cells(servers: list[str], env: dict, log_dir: Path, cfg: dict) -> dict:
    """Every ASGI cell for ``servers``: ``cfg["repeat"]`` repetitions of the hello and echo
    cells (servers in a rotated order, each started once per repetition) with the client's
    ceiling once per repetition, the Django cell in ``cfg["dj_rounds"]`` paired rounds, then
    the idle cell once per server."""
    out: dict = {
        "servers": servers, "config": cfg, "runs": {}, "ceiling": {}, "idle": {},
        "status": {}, "commands": {}, "problems": [],
        "nofile": raise_nofile(ASGI_NOFILE),
    }  # fmt: skip
    if out["nofile"] < IDLE_CONNS + 1024:
        problem(out, f"RLIMIT_NOFILE is {out['nofile']}: the idle cell may run out of sockets")
    if "bourbon" in servers and not (VENV_BIN / "bourbon").exists():
        out["status"]["bourbon"] = f"not installed in {VENV_BIN.parent} (run bench/setup.sh)"
    for s, why in out["status"].items():
        print(f"  asgi: skipping {s}: {why}", flush=True)
    for rep in range(cfg["repeat"]):
        order = servers[rep % len(servers) :] + servers[: rep % len(servers)]
        for name in order:
            if name in out["status"]:
                continue
            why = asgi_visit(ASGI_SERVERS[name], "asgi", env, log_dir, cfg, rep, out)
            if why:
                out["status"][name] = why
                print(f"  asgi: {name}: {why}; not measured", flush=True)
        asgi_ceiling(cfg, rep, out)
    django_rounds(servers, env, log_dir, cfg, out)
    if cfg["idle"]:
        for name in servers:
            if name in out["status"]:
                continue
            r = idle_cell(ASGI_SERVERS[name], env, log_dir)
            out["idle"][name] = r
            if "error" in r:
                problem(out, f"{name} idle: {r['error']}")
            else:
                print(
                    f"  idle {name}: {r['connected']}/{IDLE_CONNS} open in {r['connect_s']} s,"
                    f" alive after {IDLE_SECS:g} s: {r['alive']}; RSS {r['rss_before_mib']:.1f}"
                    f" -> {r['rss_held_mib']:.1f} MiB ({r['kib_per_socket'] or 0:.1f} KiB/socket),"
                    f" {r['rss_after_mib']:.1f} after; errors {r['errors']}",
                    flush=True,
                )
    for s in servers:
        out["status"].setdefault(s, "ok")
    out["cells"] = {
        key: {s: asdict(aggregate(runs)) for s, runs in per.items()}
        for key, per in out["runs"].items()
    }
    out["ceiling_agg"] = {key: asdict(aggregate(runs)) for key, runs in out["ceiling"].items()}
    out["bars"] = asgi_bars(out)
    return out


def asgi_bars(out: dict) -> list[tuple[str, str, str, str]]:
    """(bar, verdict, detail, repetitions passing) for the issue's ASGI and WebSocket lines."""
    cells, runs = out["cells"], out["runs"]
    lines = []

    def per_rep(key: str, peer: str) -> list[float]:
        theirs = {r["rep"]: r["rps"] for r in runs.get(key, {}).get(peer, [])}
        mine = runs.get(key, {}).get("bourbon", [])
        return [r["rps"] / theirs[r["rep"]] for r in mine if theirs.get(r["rep"])]

    def line(
        key: str, peer: str | None, factor: float, paired: bool = False
    ) -> tuple[str, str, str, str]:
        """``paired``: the cell ran in paired rounds, and the verdict is the median of the
        rounds' ratios (else the ratio of the medians over repetitions)."""
        cell = cells.get(key, {})
        peers = {s: a for s, a in cell.items() if s != "bourbon" and a["rps"]}
        label = f"{key}: bourbon ≥ {factor:g}× " + (peer or "best peer")
        if peer is None and peers:
            peer = max(peers, key=lambda s: peers[s]["rps"])
        b, p = cell.get("bourbon"), peers.get(peer or "")
        if not b or not p:
            why = out["status"].get("bourbon", "ok")
            return (
                label,
                "n/a",
                "not measured" + (f" (bourbon: {why})" if why != "ok" else ""),
                "—",
            )
        each = per_rep(key, peer)
        r = med(each) if paired and each else b["rps"] / p["rps"]
        detail = f"{r:.2f}× {peer} ({fmt(b['rps'])} vs {fmt(p['rps'])}/s)"
        if paired and each:
            detail += f", median of {len(each)} paired rounds"
        passing = f"{sum(x >= factor for x in each)} of {len(each)}" if each else "—"
        return (label, "PASS" if r >= factor else "FAIL", detail, passing)

    lines.append(line(asgi_key("asgi-hello", 64), "granian", 1.5))
    lines.append(line(asgi_key("asgi-hello", 1), "uvicorn", 1.1))
    lines.append(line(asgi_key("dj-async", 64), None, 1.0, paired=True))
    lines.append(line(asgi_key("ws-echo", 64), None, 1.5))
    lines.append(line(asgi_key("ws-echo", 1), None, 1.1))
    return lines


def client_bound(out: dict) -> dict[str, str]:
    """Per echo cell: whether wsload's ceiling is at least CEILING_FACTOR × the best server."""
    verdicts = {}
    for key, ceil in out.get("ceiling_agg", {}).items():
        cell = out["cells"].get(key, {})
        if not cell:
            continue
        best = max(cell, key=lambda s: cell[s]["rps"])
        top = cell[best]["rps"]
        ratio = ceil["rps"] / top if top else float("inf")
        verdicts[key] = (
            f"ceiling {fmt(ceil['rps'])}/s = {ratio:.1f}× the best server ({best},"
            f" {fmt(top)}/s): "
            + ("not client-bound" if ratio >= CEILING_FACTOR else "**client-bound**")
        )
    return verdicts


def render_asgi(results: dict) -> str:
    env, a = results["environment"], results["asgi"]
    cfg = a["config"]
    servers = a["servers"]
    lines = [
        f"Run {results['started']} (ASGI cells: wrk {cfg['duration']:g} s, echo"
        f" {cfg['ws_secs']:g} s, after {cfg['warmup']:g} s of warm-up; {cfg['repeat']}"
        f" repetition(s); {results['elapsed_s'] / 60:.1f} min in all). bourbon"
        f" {env['bourbon_commit']}, CPython {env['python']}, Linux {env['kernel']}, {env['cpu']}"
        f" ({env['cpus']} CPUs).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items())) + ".",
        "",
        "Servers: " + "; ".join(f"{s} `{ASGI_SERVERS[s].note}`" for s in servers) + ".",
        "",
        "Load average of the machine (1, 5, 15 min) at the start "
        + ", ".join(f"{x:.1f}" for x in results.get("loadavg_start", ()))
        + " and at the end "
        + ", ".join(f"{x:.1f}" for x in results.get("loadavg_end", ()))
        + f" ({env['cpus']} CPUs): over about 1 per CPU, other work shared the cores, and the"
        " column server CPU % (the server's CPU time over the cell's length) shows how much of"
        " its core each server got; CPU µs per request is then the steadier figure.",
    ]
    absent = {s: why for s, why in a["status"].items() if why != "ok"}
    if absent:
        lines += ["", "Not measured: " + "; ".join(f"{s}: {w}" for s, w in absent.items()) + "."]
    lines += [
        "",
        f"The Django async cell ran in {cfg.get('dj_rounds', cfg['repeat'])} paired rounds (every"
        " server up at once, loaded in turn, the order rotated each round); its verdict is the"
        " median of the rounds' ratios, and its repetitions passing are rounds.",
    ]
    lines += ["", "| bar | verdict | detail | repetitions passing |", "| --- | --- | --- | --- |"]
    lines += [f"| {b} | {v} | {d} | {n} |" for b, v, d, n in a["bars"]]
    lines += [
        "",
        "Per cell, medians over repetitions (req/s for wrk cells, messages/s for echo cells;"
        " CPU µs per request or message, ≈ for echo cells):",
        "",
        "| cell | server | per s | p50 ms | p99 ms | errors | peak RSS MiB | CPU µs"
        " | server CPU % | bourbon ÷ this |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, cell in a["cells"].items():
        b = cell.get("bourbon")
        for s in servers:
            x = cell.get(s)
            if x is None:
                continue
            ratio = f"{b['rps'] / x['rps']:.2f}×" if b and s != "bourbon" and x["rps"] else "—"
            name = f"**{s}**" if s == "bourbon" else s
            lines.append(
                f"| {key} | {name} | {fmt(x['rps'])} | {fmt(x['p50_ms'], 3)}"
                f" | {fmt(x['p99_ms'], 3)} | {x['errors']} | {fmt(x['peak_rss_mib'], 1)}"
                f" | {fmt(x['cpu_us_per_req'], 1)} | {fmt(x['rps'] * x['cpu_us_per_req'] / 1e4)}"
                f" | {ratio} |"
            )
    for key, c in a.get("ceiling_agg", {}).items():
        lines.append(
            f"| {key} | wsload serve (client ceiling) | {fmt(c['rps'])} | {fmt(c['p50_ms'], 3)}"
            f" | {fmt(c['p99_ms'], 3)} | {c['errors']} | | | | |"
        )
    bound = client_bound(a)
    if bound:
        lines += [
            "",
            "Client ceiling (wsload against its own echo server on the servers' CPU):",
            "",
        ]
        lines += [f"- {k}: {v}" for k, v in bound.items()]
    if a["idle"]:
        lines += [
            "",
            f"{IDLE_CONNS:,} idle WebSockets, held {IDLE_SECS:g} s (RSS of the server's process"
            " tree; per socket: held minus before, over the connections open):",
            "",
            "| server | open | alive after hold | connect s | RSS before MiB | held MiB"
            " | KiB/socket | after close MiB | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for s, r in a["idle"].items():
            if "error" in r:
                lines.append(f"| {s} | error: {r['error'][:150]} | | | | | | | |")
                continue
            errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
            kib = r["kib_per_socket"]
            lines.append(
                f"| {s} | {r['connected']} | {r['alive']} | {r['connect_s']}"
                f" | {r['rss_before_mib']:.1f} | {r['rss_held_mib']:.1f}"
                f" | {'—' if kib is None else f'{kib:.1f}'} | {r['rss_after_mib']:.1f} | {errs} |"
            )
    if a["commands"]:
        lines += ["", "Command lines (PORT: a free loopback port):", ""]
        lines += [f"- {k}: `{v}`" for k, v in a["commands"].items()]
    if a["problems"]:
        lines += ["", "Problems seen during the run:", ""]
        lines += [f"- {p}" for p in a["problems"]]
    return "\n".join(lines) + "\n"


def asgi_main(args, ap) -> int:
    """``--asgi-only``: the ASGI and WebSocket cells, their report, and (--update-docs) the
    ``bench:asgi`` section of docs/performance.md."""
    servers = args.servers.split(",") if args.servers else [*ASGI_SERVERS]
    for s in servers:
        if s not in ASGI_SERVERS:
            ap.error(
                f"{s!r} is not an ASGI server here: --asgi-only takes {','.join(ASGI_SERVERS)}"
            )
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    if not WSLOAD.exists():
        sys.exit(f"{WSLOAD} not found: cargo build --release -p wsload (or set BENCH_WSLOAD)")
    cfg = {
        "duration": args.duration or ASGI_DURATION,
        "ws_secs": args.duration or ASGI_WS_SECS,
        "warmup": args.warmup if args.warmup is not None else ASGI_WARMUP,
        "repeat": args.repeat or (1 if args.quick else ASGI_REPEAT),
        "idle": not args.no_extras,
    }
    cfg["dj_rounds"] = DJ_ROUNDS_PER_REP * cfg["repeat"]
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = RESULTS / f"logs-{stamp}"
    log_dir.mkdir()
    env = dict(os.environ)
    env.update(PYTHONDONTWRITEBYTECODE="1", PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
    env.pop("DJANGO_DEBUG", None)
    results: dict = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "config": {"mode": "asgi", "servers": servers, **cfg},
        "environment": environment(),
        "loadavg_start": os.getloadavg(),
    }
    t0 = time.monotonic()
    print(
        f"bourbon bench, ASGI cells: {', '.join(servers)}; {cfg['repeat']} rep; logs in"
        f" {log_dir.relative_to(REPO)}",
        flush=True,
    )
    prepare_django(env)
    results["asgi"] = asgi_cells(servers, env, log_dir, cfg)
    results["elapsed_s"] = time.monotonic() - t0
    results["loadavg_end"] = os.getloadavg()
    out = RESULTS / f"{stamp}-asgi.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    markdown = render_asgi(results)
    (RESULTS / f"{stamp}-asgi.md").write_text(markdown)
    print()
    print(markdown)
    print(f"results: {out.relative_to(REPO)} (+ .md)")
    if args.update_docs:
        update_doc(markdown, "asgi")
        print(f"updated {DOC.relative_to(REPO)}")
    return 0


# --------------------------------------------------------------------------- icount


def icount(server: Server, w: Workload, env: dict, log_dir: Path, n: int, warm: int) -> dict:
    """Instructions per request under callgrind, sequential keep-alive client, n requests.

    Two runs under ``valgrind --tool=callgrind``: one serves ``warm`` requests, the other
    ``warm + n``; each is stopped with SIGTERM so every process writes its totals at exit,
    and the difference of the largest per-process totals (the process that served, i.e.
    the worker when there is a master) over ``n`` is the cost of a request, start-up and
    shutdown cancelling out. This works whether or not the server forks workers
    (``callgrind_control`` cannot reach a forked child).
    """

    def measure(k: int) -> int:
        outdir = Path(tempfile.mkdtemp(prefix="cg-", dir=log_dir))
        wrap = [
            "valgrind", "--tool=callgrind",
            f"--callgrind-out-file={outdir}/callgrind.out.%p",
        ]  # fmt: skip
        run = Running(server, w.group, log_dir, env, wrap=wrap)
        try:
            run.wait_ready(240)
            conn = http.client.HTTPConnection(HOST, run.port, timeout=60)
            for _ in range(k):
                if w.post:
                    hdr = {"Content-Type": "application/octet-stream"}
                    conn.request("POST", w.path, body=POST_BODY, headers=hdr)
                else:
                    conn.request("GET", w.path)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"status {resp.status}")
                if resp.will_close:
                    conn.close()
            conn.close()
            os.killpg(run.popen.pid, signal.SIGTERM)
            run.popen.wait(120)
            best = 0
            for f in outdir.glob("callgrind.out.*"):
                counts = re.findall(r"^(?:totals|summary): (\d+)", f.read_text(), re.M)
                best = max([best, *map(int, counts)])
            return best
        finally:
            run.stop()
            shutil.rmtree(outdir, ignore_errors=True)

    try:
        base = measure(warm)
        total = measure(warm + n)
        if not base or not total:
            return {"error": "no callgrind totals", "requests": n}
        return {"instructions_per_request": (total - base) / n, "requests": n}
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        return {"error": repr(exc)}


# --------------------------------------------------------------------------- access log

# --access-log-only: hello over keep-alive with the access log off and on (the default
# format, to a file), for bourbon and gunicorn in the same run; reported as on/off ratios.
ACCESS_SERVERS = ["bourbon", "gunicorn-sync", "gunicorn-gthread"]
ACCESS_CELLS = [(64, "ka"), (1, "ka")]


@dataclass(frozen=True)
class Logged(Server):
    """A server of SERVERS with ``--access-logfile`` (bourbon and gunicorn spell it alike)."""

    log_file: str = ""

    def command(self, target: str, port: int) -> list[str]:
        return [*super().command(target, port), "--access-logfile", self.log_file]


def with_log(server: Server, log_file: Path | None) -> Server:
    if log_file is None:
        return server
    return Logged(server.name, server.note, server.package, str(log_file))


def access_log_cells(servers: list[str], env: dict, log_dir: Path, tmp: Path, cfg: dict) -> dict:
    """Requests/s of hello with the access log off and on, in paired rounds: both instances of
    a server (off and on) run at once, and the load alternates between them in short rounds,
    the order swapped each round. The verdict is the median of the rounds' on/off ratios, so
    the drift of this shared VM (it moves a cell by +-15% within a minute) falls on both sides
    of each pair instead of on whichever instance ran later. Then, unless --no-extras,
    bourbon's instructions per request off and on."""
    w = WORKLOADS["hello"]
    runs: dict = {}
    for sname in servers:
        log_file = tmp / f"access-{sname}.log"
        pair = {
            False: Running(SERVERS[sname], "micro", log_dir, env),
            True: Running(with_log(SERVERS[sname], log_file), "micro", log_dir, env),
        }
        try:
            for run in pair.values():
                run.wait_ready(60)
                if check(run, w) != "ok":
                    raise RuntimeError(f"hello check failed: {check(run, w)}")
                run_wrk(run.port, w, 64, "ka", cfg["warmup"])
            for rep in range(cfg["repeat"]):
                for conns, mode in ACCESS_CELLS:
                    cell: dict = {}
                    for on in (False, True) if rep % 2 == 0 else (True, False):
                        res = measure_cell(pair[on], w, conns, mode, cfg["duration"])
                        cell[on] = res
                        key = f"{sname} c={conns} {'on' if on else 'off'}"
                        runs.setdefault(key, []).append(res["rps"])
                        runs.setdefault(f"{key} cpu", []).append(res["cpu_us_per_req"])
                    ratio = cell[True]["rps"] / cell[False]["rps"] if cell[False]["rps"] else 0
                    cpu_ratio = cell[True]["cpu_us_per_req"] / cell[False]["cpu_us_per_req"]
                    runs.setdefault(f"{sname} c={conns} ratio", []).append(ratio)
                    runs.setdefault(f"{sname} c={conns} cpu ratio", []).append(cpu_ratio)
                    print(
                        f"  round{rep} {sname} c={conns}: off {cell[False]['rps']:>9,.0f},"
                        f" on {cell[True]['rps']:>9,.0f} req/s ({ratio:.3f});"
                        f" cpu/req {cell[False]['cpu_us_per_req']:.1f} ->"
                        f" {cell[True]['cpu_us_per_req']:.1f} us ({cpu_ratio:.3f})",
                        flush=True,
                    )
        finally:
            for run in pair.values():
                run.stop()
            lines = log_file.read_bytes().count(b"\n") if log_file.exists() else 0
            runs.setdefault(f"{sname} lines", []).append(lines)
            log_file.unlink(missing_ok=True)
    out: dict = {"runs": runs, "ratios": {}}
    for sname in servers:
        for conns, _ in ACCESS_CELLS:
            ratios = runs.get(f"{sname} c={conns} ratio", [])
            out["ratios"][f"{sname} c={conns}"] = {
                "off": med(runs.get(f"{sname} c={conns} off", [])),
                "on": med(runs.get(f"{sname} c={conns} on", [])),
                "on/off": med(ratios),
                "rounds": len(ratios),
                "rounds within 5%": sum(r >= 0.95 for r in ratios),
                "cpu_off": med(runs.get(f"{sname} c={conns} off cpu", [])),
                "cpu_on": med(runs.get(f"{sname} c={conns} on cpu", [])),
                "cpu on/off": med(runs.get(f"{sname} c={conns} cpu ratio", [])),
            }
    if cfg["icount"] and "bourbon" in servers:
        log_file = tmp / "access-icount.log"
        n = cfg["icount_requests"]
        out["icount"] = {
            "off": icount(SERVERS["bourbon"], w, env, log_dir, n, 200),
            "on": icount(with_log(SERVERS["bourbon"], log_file), w, env, log_dir, n, 200),
        }
        log_file.unlink(missing_ok=True)
    return out


def render_access_log(r: dict) -> str:
    lines = [
        "| server | cell | off req/s | on req/s | on/off (median of rounds) | rounds within 5%"
        " | CPU µs/req off | on | on/off |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, v in r["ratios"].items():
        sname, cell = key.split(" ")
        lines.append(
            f"| {sname} | hello {cell} keep-alive | {fmt(v['off'])} | {fmt(v['on'])} |"
            f" {v['on/off']:.3f} | {v['rounds within 5%']}/{v['rounds']} |"
            f" {fmt(v['cpu_off'], 1)} | {fmt(v['cpu_on'], 1)} |"
            f" {v['cpu on/off']:.3f} |"
        )
    ic = r.get("icount")
    if ic and "instructions_per_request" in ic["off"] and "instructions_per_request" in ic["on"]:
        off, on = ic["off"]["instructions_per_request"], ic["on"]["instructions_per_request"]
        lines += [
            "",
            f"bourbon hello under callgrind: {off:,.0f} instructions per request without the"
            f" access log, {on:,.0f} with it ({on / off:.3f}x, +{on - off:,.0f}).",
        ]
    return "\n".join(lines)


def access_log_main(args, ap) -> int:
    servers = args.servers.split(",") if args.servers else ACCESS_SERVERS
    for s in servers:
        if s not in SERVERS:
            ap.error(f"unknown server {s!r}")
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    cfg = {
        "duration": args.duration or 3.0,
        "repeat": args.repeat or (3 if args.quick else 12),
        "warmup": args.warmup if args.warmup is not None else 1.0,
        "icount": not args.no_extras and shutil.which("valgrind") is not None,
        "icount_requests": args.icount_requests,
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = RESULTS / f"logs-{stamp}"
    log_dir.mkdir()
    tmp = Path(tempfile.mkdtemp(prefix="bourbon-bench-"))
    env = dict(os.environ)
    env.update(PYTHONDONTWRITEBYTECODE="1", PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
    print(
        f"bourbon bench, access log: {', '.join(servers)}; hello c=64/c=1 off and on,"
        f" {cfg['repeat']} x {cfg['duration']:g} s; logs in {log_dir.relative_to(REPO)}",
        flush=True,
    )
    try:
        result = access_log_cells(servers, env, log_dir, tmp, cfg)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.update(config=cfg, environment=environment(), started=stamp)
    out = RESULTS / f"{stamp}-access-log.json"
    out.write_text(json.dumps(result, indent=1, default=str))
    markdown = render_access_log(result)
    (RESULTS / f"{stamp}-access-log.md").write_text(markdown + "\n")
    print()
    print(markdown)
    print(f"results: {out.relative_to(REPO)} (+ .md)")
    return 0


# --------------------------------------------------------------------------- reporting


def med(xs):
    xs = [x for x in xs if x == x]  # drop NaN
    return statistics.median(xs) if xs else float("nan")


@dataclass
class Agg:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    peak_rss_mib: float
    cpu_us_per_req: float
    runs: int
    notes: list = field(default_factory=list)


def aggregate(runs: list[dict]) -> Agg:
    return Agg(
        rps=med([r["rps"] for r in runs]),
        p50_ms=med([r["p50_ms"] for r in runs]),
        p99_ms=med([r["p99_ms"] for r in runs]),
        errors=sum(r["errors"] for r in runs),
        peak_rss_mib=max(r["peak_rss_mib"] for r in runs),
        cpu_us_per_req=med([r["cpu_us_per_req"] for r in runs]),
        runs=len(runs),
    )


def cell_key(w: str, c: int, mode: str) -> str:
    return f"{w} c={c} {'keep-alive' if mode == 'ka' else 'close'}"


def fmt(x: float, nd: int = 0) -> str:
    return "—" if x != x else f"{x:,.{nd}f}"


def table(results: dict, servers: list[str]) -> list[str]:
    """Markdown table: one row per (cell, server)."""
    lines = [
        "| workload | conns | conn | server | req/s | p50 ms | p99 ms | errors | peak RSS MiB"
        " | CPU µs/req | bourbon ÷ this |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, per in results["cells"].items():
        w, c, mode = per["workload"], per["conns"], per["mode"]
        bourbon = per["servers"].get("bourbon")
        for s in servers:
            a = per["servers"].get(s)
            if a is None:
                continue
            ratio = "—"
            if bourbon and a["rps"] and s != "bourbon":
                ratio = f"{bourbon['rps'] / a['rps']:.2f}×"
            name = f"**{s}**" if s == "bourbon" else s
            lines.append(
                f"| {w} | {c} | {'keep-alive' if mode == 'ka' else 'close'} | {name}"
                f" | {fmt(a['rps'])} | {fmt(a['p50_ms'], 2)} | {fmt(a['p99_ms'], 2)}"
                f" | {a['errors']} | {fmt(a['peak_rss_mib'], 1)} | {fmt(a['cpu_us_per_req'], 1)}"
                f" | {ratio} |"
            )
        del key
    return lines


def bars(results: dict) -> list[tuple[str, str, str, str]]:
    """(bar, verdict PASS/FAIL/n/a, detail, repetitions passing) for every line of the bar.

    The verdict compares the medians over repetitions. Each repetition also measures bourbon
    and the peer minutes apart, so the last column counts the repetitions that pass on their
    own: a line that passes in some and fails in others is within this machine's noise.
    """
    cells = results["cells"]
    out = []

    def get(w, c, s, mode="ka"):
        return cells.get(cell_key(w, c, mode), {}).get("servers", {}).get(s)

    def paired(w, c, peer):
        """(bourbon run, peer run) of each repetition that measured both."""
        per = results.get("runs", {}).get(cell_key(w, c, "ka"), {})
        peer_runs = {r["rep"]: r for r in per.get(peer, [])}
        return [(b, peer_runs[b["rep"]]) for b in per.get("bourbon", []) if b["rep"] in peer_runs]

    def reps(flags: list[bool]) -> str:
        return f"{sum(flags)} of {len(flags)}" if flags else "—"

    def ratio_bar(w, c, peer, factor):
        label = f"{w} c={c}: bourbon ≥ {factor:g}× {peer}"
        b, p = get(w, c, "bourbon"), get(w, c, peer)
        if not b or not p or not p["rps"]:
            return (label, "n/a", "not measured", "—")
        r = b["rps"] / p["rps"]
        detail = f"{r:.2f}× ({fmt(b['rps'])} vs {fmt(p['rps'])} req/s)"
        each = [x["rps"] / y["rps"] for x, y in paired(w, c, peer) if y["rps"]]
        if len(each) > 1:
            detail += f"; per repetition {min(each):.2f}–{max(each):.2f}×"
        return (label, "PASS" if r >= factor else "FAIL", detail, reps([x >= factor for x in each]))

    def best_bar(w, c):
        label = f"{w} c={c}: bourbon ≥ best peer req/s, p99 ≤ its p99"
        cell = cells.get(cell_key(w, c, "ka"), {}).get("servers", {})
        b = cell.get("bourbon")
        peers = {s: a for s, a in cell.items() if s != "bourbon" and a["rps"]}
        if not b or not peers:
            return (label, "n/a", "not measured", "—")
        best = max(peers, key=lambda s: peers[s]["rps"])
        p = peers[best]
        ok = b["rps"] >= p["rps"] and b["p99_ms"] <= p["p99_ms"]
        detail = (
            f"best peer {best}: {b['rps'] / p['rps']:.2f}× req/s, p99 {fmt(b['p99_ms'], 2)}"
            f" vs {fmt(p['p99_ms'], 2)} ms"
        )
        pairs = paired(w, c, best)
        each = [x["rps"] / y["rps"] for x, y in pairs if y["rps"]]
        if len(each) > 1:
            detail += f"; req/s per repetition {min(each):.2f}–{max(each):.2f}×"
        flags = [x["rps"] >= y["rps"] and x["p99_ms"] <= y["p99_ms"] for x, y in pairs]
        return (label, "PASS" if ok else "FAIL", detail, reps(flags))

    out.append(ratio_bar("hello", 64, "bjoern", 1.0))
    out.append(ratio_bar("hello", 64, "granian", 1.7))
    out.append(ratio_bar("hello", 1, "bjoern", 1.0))
    for w in ("dj-plain", "dj-json"):
        for c in (64, 1):
            out.append(ratio_bar(w, c, "bjoern", 1.1))
    for w in ("dj-template", "dj-orm", "dj-upload"):
        for c in (64, 1):
            out.append(best_bar(w, c))
    for w in ("body-1m", "file-1m"):
        for c in (64, 1):
            out.append(ratio_bar(w, c, "granian", 1.2))
    big = results.get("file_1g", {}).get("bourbon")
    label = "1 GiB file via wsgi.file_wrapper: bourbon RSS growth < 5 MiB"
    if big and "growth_mib" in big:
        ok = big["growth_mib"] < 5 and big.get("complete")
        detail = f"+{big['growth_mib']:.1f} MiB, {big['bytes']} bytes in {big['seconds']} s"
        out.append((label, "PASS" if ok else "FAIL", detail, "—"))
    else:
        out.append((label, "n/a", str(big.get("error")) if big else "not measured", "—"))
    idle = results.get("idle_rss_mib", {}).get("django", {})
    idle_runs = results.get("idle_rss_runs", {}).get("django", {})
    for peer in ("bjoern", "pyruvate"):
        label = f"idle RSS of one worker, Django site loaded: bourbon ≤ {peer}"
        if "bourbon" in idle and peer in idle:
            b, p = idle["bourbon"], idle[peer]
            verdict = "PASS" if b <= p else "FAIL"
            mine, theirs = idle_runs.get("bourbon", {}), idle_runs.get(peer, {})
            flags = [mine[rep] <= theirs[rep] for rep in mine if rep in theirs]
            out.append((label, verdict, f"{b:.1f} vs {p:.1f} MiB", reps(flags)))
        else:
            out.append((label, "n/a", "not measured", "—"))
    return out


def environment() -> dict:
    versions = {}
    for s in SERVERS.values():
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[s.package] = importlib.metadata.version(s.package)
    for pkg in ("django", "whitenoise", "psutil", *ASGI_PEER_PACKAGES):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[pkg] = importlib.metadata.version(pkg)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    if Path(NGINX).exists():
        out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=10).stderr
        if m := re.search(r"nginx/(\S+)", out):
            versions["nginx"] = m.group(1)
    versions["wrk"] = wrk.split("[")[0].replace("wrk", "").strip()
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "crates", "python"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "bourbon_commit": commit + ("+dirty" if dirty else ""),
        "versions": versions,
    }


def render_markdown(results: dict) -> str:
    env = results["environment"]
    cfg = results["config"]
    if cfg["mode"] == "slow-readers":
        what = f"slow readers only: {cfg['slow_duration']:g} s wrk runs"
    elif cfg["mode"] == "static":
        what = (
            f"static files only: {cfg['static_duration']:g} s cells after"
            f" {cfg['static_warmup']:g} s of warm-up, {cfg['static_repeat']} repetition(s)"
        )
    else:
        what = (
            f"{cfg['mode']}: {cfg['duration']:g} s cells, {cfg['repeat']} repetition(s),"
            f" {cfg['warmup']:g} s warm-up per workload"
        )
    lines = [
        f"Run {results['started']} ({what}; {results['elapsed_s'] / 60:.1f} min in all)."
        f" bourbon {env['bourbon_commit']}, CPython {env['python']}, Linux {env['kernel']},"
        f" {env['cpu']} ({env['cpus']} CPUs).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items())) + ".",
    ]
    if cfg["mode"] != "static":
        lines += [
            "",
            "Server configurations: "
            + "; ".join(f"{s} `{SERVERS[s].note}`" for s in cfg["servers"])
            + ".",
        ]
    if any(cell["servers"] for cell in results["cells"].values()):
        lines += [
            "",
            "### Bar",
            "",
            "| bar | verdict | detail | repetitions passing |",
            "| --- | --- | --- | --- |",
        ]
        lines += [f"| {b} | {v} | {d} | {n} |" for b, v, d, n in results["bars"]]
        lines += ["", "### Per cell (medians over repetitions)", ""]
        lines += table(results, cfg["servers"])
    for key, title in (
        ("idle_rss_mib", "Idle RSS of the worker (MiB, the largest process, after one request)"),
        ("idle_tree_rss_mib", "Idle RSS of the whole process tree (MiB, masters included)"),
    ):
        idle = results.get(key, {})
        if not idle:
            continue
        lines += ["", f"### {title}", ""]
        lines += ["| app | " + " | ".join(cfg["servers"]) + " |"]
        lines += ["| --- |" + " ---: |" * len(cfg["servers"])]
        for group, per in idle.items():
            row = " | ".join(fmt(per.get(s, float("nan")), 1) for s in cfg["servers"])
            lines.append(f"| {group} | {row} |")
    big = results.get("file_1g", {})
    if big:
        lines += ["", "### 1 GiB file through wsgi.file_wrapper (one download)", ""]
        lines += ["| server | complete | seconds | base RSS MiB | peak RSS MiB | growth MiB |"]
        lines += ["| --- | --- | ---: | ---: | ---: | ---: |"]
        for s, r in big.items():
            if "growth_mib" in r:
                lines.append(
                    f"| {s} | {r['complete']} | {r['seconds']} | {r['base_rss_mib']:.1f}"
                    f" | {r['peak_rss_mib']:.1f} | {r['growth_mib']:.1f} |"
                )
            else:
                lines.append(f"| {s} | error: {r.get('error')} | | | | |")
    lines += slow_readers_table(results)
    lines += static_table(results)
    fw = results.get("file_wrapper", {})
    if fw:
        lines += ["", "wsgi.file_wrapper offered: "]
        lines[-1] += "; ".join(f"{s}: `{v}`" for s, v in fw.items()) + "."
    ic = results.get("icount", {})
    if ic:
        lines += ["", "### Instructions per request (callgrind, sequential keep-alive client)", ""]
        lines += ["| server | workload | instructions / request |", "| --- | --- | ---: |"]
        for s, per in ic.items():
            for w, r in per.items():
                v = r.get("instructions_per_request")
                lines.append(f"| {s} | {w} | {fmt(v) if v else r.get('error', '—')} |")
    probs = results.get("problems", [])
    if probs:
        lines += ["", "### Problems seen during the run", ""]
        lines += [f"- {p}" for p in probs]
    return "\n".join(lines) + "\n"


def slow_readers_table(results: dict) -> list[str]:
    slow = results.get("slow_readers", {})
    if not slow:
        return []
    n = SLOW_CLIENTS
    lines = [
        "",
        f"### {n} slow readers of an 8 MiB stream; /hello at c={SLOW_WRK_CONNS} meanwhile",
        "",
        f"wrk `-c {SLOW_WRK_CONNS} --timeout {SLOW_WRK_TIMEOUT}` on /hello, first alone, then"
        f" while {n} clients that read nothing hold `GET {SLOW_PATH}` (a generator of 64 KiB"
        " chunks, no Content-Length); then those clients read their bodies to the end.",
        "",
        "| server | req/s alone | req/s with slow readers | bourbon ÷ this | p99 ms | wrk errors"
        " | new client's /hello | slow responses begun | RSS MiB before → peak"
        " | slow bodies complete |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    mine = slow.get("bourbon", {}).get("held", {}).get("rps")
    for s, r in slow.items():
        name = f"**{s}**" if s == "bourbon" else s
        if "error" in r:
            lines.append(f"| {name} | error: {r['error'][:120]} | | | | | | | | |")
            continue
        held = r["held"]
        ratio = "—"
        if s != "bourbon" and mine is not None:
            ratio = f"{mine / held['rps']:.2f}×" if held["rps"] else "peer served 0"
        errors = str(held["errors"])
        if held.get("error_detail"):
            errors += " (" + ", ".join(f"{k} {v}" for k, v in held["error_detail"].items()) + ")"
        p99 = fmt(held["p99_ms"], 2) if held["requests"] else "none answered"
        probe = r["probe_ms"]
        probe = f"{probe:.1f} ms" if probe is not None else f"none in {SLOW_PROBE_S:g} s"
        lines.append(
            f"| {name} | {fmt(r['alone']['rps'])} | {fmt(held['rps'])} | {ratio}"
            f" | {p99} | {errors} | {probe} | {r['begun']} of {r['clients']}"
            f" | {r['base_rss_mib']:.1f} → {r['peak_rss_mib']:.1f}"
            f" | {r['complete']} of {r['clients']} |"
        )
    return lines


def static_table(results: dict) -> list[str]:
    """The static cells: each repetition's figures, ratios to bourbon, how each ran."""
    st = results.get("static", {})
    if not st:
        return []
    lines = [
        "",
        "### Static files: one worker each, keep-alive",
        "",
        f"wrk `-t 1 -c C -d {st['duration']:g}s --timeout 5s` on each file, after"
        f" {st['warmup']:g} s of warm-up at the same c; {st['repeat']} repetition(s), servers"
        " visited in a rotated order. Each value is one repetition, in the order run; the"
        " ratios divide medians, with the range of the per-repetition ratios. MiB/s is wrk's"
        " Transfer/sec (response heads included). RSS is the server's whole process tree"
        f" (master and worker): before the warm-up → {STATIC_SETTLE_S:g} s after the cell"
        " (peak sampled every 50 ms in between). CPU µs/req: user + system time of the tree"
        " during the cell over its requests; when the client's CPU is the limit (the 3 MiB"
        " file), this is where the servers differ.",
        "",
        "| file | server | req/s | MiB/s | p99 ms | CPU µs/req | errors"
        " | RSS MiB before → after (peak) | bourbon ÷ this |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    runs, skipped = st.get("runs", {}), st.get("skipped", {})
    for w in STATIC_CELLS:
        per = runs.get(w.name, {})
        label = f"{w.name} c={w.conns[0]}"
        for s in st["servers"]:
            name = f"**{s}**" if s == "bourbon" else s
            rs = per.get(s)
            if not rs:
                why = "skipped" if s in skipped else "not measured (see problems)"
                lines.append(f"| {label} | {name} | {why} | | | | | | |")
                continue
            errors = sum(r["errors"] for r in rs)
            detail = {}
            for r in rs:
                for k, v in r.get("error_detail", {}).items():
                    detail[k] = detail.get(k, 0) + v
            if detail:
                errors = f"{errors} (" + ", ".join(f"{k} {v}" for k, v in detail.items()) + ")"
            rss = "; ".join(
                f"{r['rss_before_mib']:.1f} → {r['rss_after_mib']:.1f} ({r['peak_rss_mib']:.1f})"
                for r in rs
            )
            ratio = "—" if s == "bourbon" else static_ratio(per.get("bourbon", []), rs)
            lines.append(
                f"| {label} | {name} | {' / '.join(fmt(r['rps']) for r in rs)}"
                f" | {' / '.join(fmt(r['mib_s'], 1) for r in rs)}"
                f" | {' / '.join(fmt(r['p99_ms'], 2) for r in rs)}"
                f" | {' / '.join(fmt(r['cpu_us_per_req'], 1) for r in rs)} | {errors} | {rss}"
                f" | {ratio} |"
            )
    if "uwsgi" in st["servers"]:
        lines += [
            "",
            "uWSGI's `--http-socket` closes the connection after each response: wrk counts"
            " each close as a read error and reconnects, so its cells are connection-per-request.",
        ]
    if "bourbon" in skipped:
        lines += ["", f"bourbon was not measured: {skipped['bourbon']}."]
    elif "bourbon" in st["servers"]:
        lines += ["", "| file | bourbon ÷ nginx | bourbon ÷ granian |", "| --- | ---: | ---: |"]
        for w in STATIC_CELLS:
            per = runs.get(w.name, {})
            mine = per.get("bourbon", [])
            cols = [static_ratio(mine, per.get(p, [])) for p in ("nginx", "granian")]
            lines.append(f"| {w.name} c={w.conns[0]} | {cols[0]} | {cols[1]} |")
    for s, why in skipped.items():
        if s != "bourbon":
            lines += ["", f"{s} was not measured: {why}."]
    idle = st.get("idle_rss_mib", {})
    if idle:
        lines += [
            "",
            "RSS of the tree once serving, before any cell (MiB, per repetition): "
            + "; ".join(f"{s} {' / '.join(f'{v:.1f}' for v in vs)}" for s, vs in idle.items())
            + ".",
        ]
    headers = st.get("headers", {})
    if headers:
        lines += ["", f"Response header fields with the {STATIC_CELLS[0].desc}:", ""]
        shown = ("content-type", "cache-control")
        for s, per in headers.items():
            fields = per.get(STATIC_CELLS[0].name, {})
            names = [
                f"{k}: {v}" if k.lower() in shown else k
                for k, v in fields.items()
                if k.lower() != "date"
            ]
            lines.append(f"- {s}: " + (", ".join(f"`{n}`" for n in names) or "none"))
    commands = st.get("commands", {})
    if commands:
        lines += [
            "",
            "Command lines (each under `taskset -c 0`; DIR: the generated files; PORT: a free"
            " loopback port; PREFIX: nginx's own temporary directory):",
            "",
        ]
        lines += [f"- {s}: `{c}`" for s, c in commands.items()]
    if st.get("nginx_conf"):
        lines += ["", "nginx.conf:", "", "```nginx", st["nginx_conf"].rstrip("\n"), "```"]
    return lines


def static_ratio(mine: list[dict], theirs: list[dict]) -> str:
    """bourbon's median req/s over the peer's, and the range of the per-repetition ratios."""
    if not mine or not theirs:
        return "—"
    a, b = med([r["rps"] for r in mine]), med([r["rps"] for r in theirs])
    if not b:
        return "peer served 0"
    text = f"{a / b:.2f}×"
    by_rep = {r["rep"]: r["rps"] for r in theirs}
    each = [r["rps"] / by_rep[r["rep"]] for r in mine if by_rep.get(r["rep"])]
    if len(each) > 1:
        text += f" ({min(each):.2f}–{max(each):.2f})"
    return text


def update_doc(markdown: str, mode: str) -> None:
    begin, finish = DOC_MARKERS[mode]
    text = DOC.read_text()
    start, end = text.index(begin), text.index(finish)
    DOC.write_text(text[: start + len(begin)] + "\n\n" + markdown + "\n" + text[end:])


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="hello + dj-plain, c=64, 1 rep, 5 s")
    ap.add_argument("--bar", action="store_true",
                    help="only the bar's cells (keep-alive, c=1 and c=64) against the peers"
                    " it names, 5 reps of 5 s (~50 min)")  # fmt: skip
    ap.add_argument("--servers", help=f"comma list (default all): {','.join(SERVERS)}")
    ap.add_argument("--workloads", help=f"comma list (default all): {','.join(WORKLOADS)}")
    ap.add_argument("--duration", type=float,
                    help="seconds per cell (default 2; quick and bar 5; slow readers 5;"
                    f" static cells {STATIC_DURATION:g})")  # fmt: skip
    ap.add_argument(
        "--repeat",
        type=int,
        help=f"repetitions (default 3; quick 1; bar 5; static cells {STATIC_REPEAT})",
    )
    ap.add_argument("--warmup", type=float,
                    help="warm-up seconds per workload (default 1; before each static cell"
                    f" {STATIC_WARMUP:g})")  # fmt: skip
    ap.add_argument("--matrix", choices=["standard", "all"], default="standard",
                    help="all: Connection: close at every concurrency")  # fmt: skip
    ap.add_argument("--no-extras", action="store_true",
                    help="skip the 1 GiB file_wrapper download, the slow readers and the"
                    " callgrind counts")  # fmt: skip
    ap.add_argument("--icount-requests", type=int, default=2000)
    ap.add_argument("--icount-servers", default="bourbon,bjoern")
    ap.add_argument("--icount-only", action="store_true",
                    help="only the callgrind counts (hello, dj-plain), ~2 min")  # fmt: skip
    ap.add_argument("--slow-readers-only", action="store_true",
                    help=f"only the slow readers ({SLOW_CLIENTS} clients holding an 8 MiB"
                    " stream while wrk measures /hello), ~20 s per server")  # fmt: skip
    ap.add_argument("--static-only", action="store_true",
                    help="only the static-file cells (16 KiB at c=64, 3 MiB at c=16) of"
                    f" {', '.join(STATIC_SERVERS)}; {STATIC_REPEAT} x {STATIC_DURATION:g} s"
                    " per cell unless --repeat/--duration, ~1 min per server")  # fmt: skip
    ap.add_argument("--asgi-only", action="store_true",
                    help="only the ASGI and WebSocket cells (hello c=64/c=1, Django async view"
                    " c=64, echo 64/1 connections, 10,000 idle WebSockets) of"
                    f" {', '.join(ASGI_SERVERS)}; {ASGI_REPEAT} x ({ASGI_DURATION:g} s wrk,"
                    f" {ASGI_WS_SECS:g} s echo) unless --repeat/--duration; --quick: 1 rep;"
                    " --no-extras: no idle cell")  # fmt: skip
    ap.add_argument("--access-log-only", action="store_true",
                    help="only hello (keep-alive, c=64 and c=1) with the access log off and on"
                    f" for {', '.join(ACCESS_SERVERS)}, as on/off ratios, and bourbon's"
                    " instructions per request off and on (unless --no-extras); 5 x 5 s"
                    " unless --repeat/--duration, --quick: 1 rep")  # fmt: skip
    ap.add_argument("--update-docs", action="store_true", help="rewrite docs/performance.md")
    args = ap.parse_args(argv)
    if args.access_log_only:
        if args.bar or args.slow_readers_only or args.static_only or args.asgi_only:
            ap.error("--access-log-only is a run of its own")
        return access_log_main(args, ap)
    if args.asgi_only:
        if args.bar or args.slow_readers_only or args.static_only or args.icount_only:
            ap.error("--asgi-only is a run of its own: drop --bar/--slow-readers-only/"
                     "--static-only/--icount-only")  # fmt: skip
        return asgi_main(args, ap)

    quick, bar, slow_only = args.quick, args.bar, args.slow_readers_only
    static_only = args.static_only
    if quick and bar:
        ap.error("--quick and --bar are different runs: pick one")
    if slow_only and (quick or bar or args.icount_only or args.no_extras):
        ap.error("--slow-readers-only is a run of its own: drop --quick/--bar/--icount-only/"
                 "--no-extras")  # fmt: skip
    if static_only and (quick or bar or args.icount_only or args.no_extras or slow_only):
        ap.error("--static-only is a run of its own: drop --quick/--bar/--icount-only/"
                 "--no-extras/--slow-readers-only")  # fmt: skip
    default_servers = (
        STATIC_SERVERS if static_only else QUICK_SERVERS if quick else BAR_SERVERS if bar
        else [*SERVERS]
    )  # fmt: skip
    servers = args.servers.split(",") if args.servers else default_servers
    default_wl = QUICK_WORKLOADS if quick else BAR_WORKLOADS if bar else [*WORKLOADS]
    wl_names = args.workloads.split(",") if args.workloads else default_wl
    for s in servers:
        if static_only and s not in STATIC_SERVERS:
            ap.error(f"{s!r} has no static-file mode here: --static-only takes"
                     f" {','.join(STATIC_SERVERS)}")  # fmt: skip
        if not static_only and s not in SERVERS:
            ap.error(f"unknown server {s!r}")
    for w in wl_names:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r}")
    duration = args.duration or (5.0 if quick or bar else 2.0)
    repeat = args.repeat or (1 if quick else 5 if bar else 3)
    warmup = args.warmup if args.warmup is not None else 1.0
    extras = not (quick or args.no_extras)
    # The slow-reader cell's wrk runs: --duration when given, else 5 s; the hold (settle +
    # wrk) stays well under the servers' 30 s write/worker timeouts.
    slow_duration = args.duration or 5.0
    # The static cells: --duration/--repeat/--warmup when given, else their own defaults.
    static_duration = args.duration or STATIC_DURATION
    static_repeat = args.repeat or STATIC_REPEAT
    static_warmup = args.warmup if args.warmup is not None else STATIC_WARMUP
    # In a full or bar run, nginx and those of the chosen servers that serve files.
    static_servers = [s for s in STATIC_SERVERS if s in servers or s == "nginx"]
    if static_only:
        static_servers = servers
    workloads = [WORKLOADS[w] for w in wl_names]
    groups = [g for g in ("micro", "django") if any(w.group == g for w in workloads)]

    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    os.sched_setaffinity(0, {int(CLIENT_CPU)})  # the harness and wrk share CPU 1

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = RESULTS / f"logs-{stamp}"
    log_dir.mkdir()
    tmp = Path(tempfile.mkdtemp(prefix="bourbon-bench-"))
    env = dict(os.environ)
    env.update(
        BENCH_FILE_DIR=str(tmp),
        PYTHONDONTWRITEBYTECODE="1",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    env.pop("DJANGO_DEBUG", None)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t_start = time.monotonic()
    results: dict = {
        "started": started,
        "config": {
            "mode": "quick"
            if quick
            else "bar"
            if bar
            else "slow-readers"
            if slow_only
            else "static"
            if static_only
            else "full",
            "servers": servers,
            "workloads": wl_names,
            "duration": duration,
            "repeat": repeat,
            "warmup": warmup,
            "slow_duration": slow_duration,
            "static_duration": static_duration,
            "static_repeat": static_repeat,
            "static_warmup": static_warmup,
            "matrix": args.matrix,
            "server_cpu": SERVER_CPU,
            "client_cpu": CLIENT_CPU,
        },
        "environment": environment(),
        "runs": {},
        "idle_rss_mib": {},
        "file_1g": {},
        "file_wrapper": {},
        "slow_readers": {},
        "static": {},
        "problems": [],
    }
    raw_idle: dict = {}
    idle_by_rep: dict = {}  # group -> server -> {rep: MiB}, to compare within a repetition
    raw_idle_tree: dict = {}
    plan = {w.name: cells_for(w, args.matrix, quick, bar) for w in workloads}
    if args.icount_only or slow_only or static_only:
        repeat, extras = 0, True
    run_slow = slow_only or (
        extras and "micro" in groups and not args.icount_only and not static_only
    )
    run_icount = extras and not slow_only and not static_only
    run_static = static_only or (extras and not slow_only and not args.icount_only)
    n_cells = sum(len(c) for c in plan.values()) * len(servers) * repeat
    if static_only:
        print(
            f"bourbon bench, static files: {', '.join(servers)}; {len(STATIC_CELLS)} cells of"
            f" {static_duration:g} s after {static_warmup:g} s of warm-up ({static_repeat} rep);"
            f" logs in {log_dir.relative_to(REPO)}",
            flush=True,
        )
    else:
        print(
            f"bourbon bench: {len(servers)} servers x {len(workloads)} workloads, {n_cells}"
            f" cells of {duration:g} s ({repeat} rep); logs in {log_dir.relative_to(REPO)}",
            flush=True,
        )
    try:
        make_files(tmp, big=extras and "file-1m" in wl_names and repeat > 0)
        if "django" in groups and not slow_only and not static_only:
            prepare_django(env)
        done = 0
        for rep in range(repeat):
            order = servers[rep % len(servers) :] + servers[: rep % len(servers)]
            for group in groups:
                for sname in order:
                    server = SERVERS[sname]
                    run = Running(server, group, log_dir, env)
                    try:
                        run.wait_ready(60)
                        time.sleep(0.3)
                        idle_mib = largest_rss(run.proc) / MIB
                        raw_idle.setdefault(group, {}).setdefault(sname, []).append(idle_mib)
                        idle_by_rep.setdefault(group, {}).setdefault(sname, {})[rep] = idle_mib
                        raw_idle_tree.setdefault(group, {}).setdefault(sname, []).append(
                            tree_rss(run.proc) / MIB
                        )
                        if group == "micro" and rep == 0:
                            _, body = request(run.port, "/probe")
                            results["file_wrapper"][sname] = body.decode().strip().split("=")[1]
                        for w in (w for w in workloads if w.group == group):
                            verdict = check(run, w)
                            if verdict != "ok":
                                msg = f"{sname} {w.name}: {verdict}"
                                if msg not in results["problems"]:
                                    results["problems"].append(msg)
                                print(f"  ! {msg}", flush=True)
                            if warmup:
                                run_wrk(run.port, w, max(plan[w.name])[0], "ka", warmup)
                            for conns, mode in plan[w.name]:
                                res = measure_cell(run, w, conns, mode, duration)
                                res["rep"] = rep
                                key = cell_key(w.name, conns, mode)
                                results["runs"].setdefault(key, {}).setdefault(sname, [])
                                results["runs"][key][sname].append(res)
                                done += 1
                                err = f" errors={res['errors']}" if res["errors"] else ""
                                print(
                                    f"[{done}/{n_cells}] rep{rep} {sname:16} {key:30}"
                                    f" {res['rps']:>10,.0f} req/s p99 {res['p99_ms']:8.2f} ms"
                                    f" rss {res['peak_rss_mib']:6.1f} MiB"
                                    f" cpu {res['cpu_us_per_req']:7.1f} us/req{err}",
                                    flush=True,
                                )
                        if group == "micro" and rep == 0 and extras and "file-1m" in wl_names:
                            r = big_file_rss(run)
                            results["file_1g"][sname] = r
                            print(f"  1 GiB file: {sname}: {r}", flush=True)
                    except Exception as exc:  # noqa: BLE001 - a peer failing is a result
                        msg = f"{sname} ({group}, rep {rep}): {exc!r}; log: {run.log_tail(3)}"
                        results["problems"].append(msg)
                        print(f"  ! {msg}", flush=True)
                    finally:
                        run.stop()
        if run_slow:
            for sname in servers:
                r = slow_readers(SERVERS[sname], env, log_dir, slow_duration)
                results["slow_readers"][sname] = r
                if "error" in r:
                    results["problems"].append(f"{sname} slow readers: {r['error']}")
                print(f"  slow readers: {sname}: {slow_summary(r)}", flush=True)
        if run_static:
            results["static"] = static_extra(
                static_servers, env, log_dir, static_duration, static_warmup, static_repeat
            )
            results["problems"] += results["static"]["problems"]
        if run_icount:
            results["icount"] = {}
            for sname in args.icount_servers.split(","):
                if sname not in servers:
                    continue
                for wname in ("hello", "dj-plain"):
                    if wname not in wl_names:
                        continue
                    r = icount(
                        SERVERS[sname], WORKLOADS[wname], env, log_dir, args.icount_requests, 200
                    )
                    results["icount"].setdefault(sname, {})[wname] = r
                    print(f"  callgrind {sname} {wname}: {r}", flush=True)
    except KeyboardInterrupt:
        results["problems"].append("interrupted")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    results["elapsed_s"] = time.monotonic() - t_start
    results["idle_rss_mib"] = {
        g: {s: med(v) for s, v in per.items()} for g, per in raw_idle.items()
    }
    results["idle_rss_runs"] = idle_by_rep
    results["idle_tree_rss_mib"] = {
        g: {s: med(v) for s, v in per.items()} for g, per in raw_idle_tree.items()
    }
    results["cells"] = {}
    for w in workloads:
        for conns, mode in plan[w.name]:
            key = cell_key(w.name, conns, mode)
            per = results["runs"].get(key, {})
            results["cells"][key] = {
                "workload": w.name,
                "conns": conns,
                "mode": mode,
                "servers": {s: asdict(aggregate(per[s])) for s in servers if s in per},
            }
    results["bars"] = bars(results)

    suffix = {"quick": "-quick", "bar": "-bar", "slow-readers": "-slow", "static": "-static"}.get(
        results["config"]["mode"], ""
    )
    out = RESULTS / f"{stamp}{suffix}.json"
    out.write_text(json.dumps(results, indent=1, default=str))
    markdown = render_markdown(results)
    (RESULTS / f"{stamp}{suffix}.md").write_text(markdown)
    print()
    print(markdown)
    print(f"results: {out.relative_to(REPO)} (+ .md)")
    if args.update_docs and (slow_only or static_only or args.icount_only):
        print("not updating the docs: a partial run does not replace the full results")
    elif args.update_docs and not quick:
        update_doc(markdown, "bar" if bar else "full")
        print(f"updated {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
