"""Memory of bourbon's workers serving the example Django site, with and without --preload.

    .venv-3.11/bin/python bench/preload_memory.py [--workers 4] [--requests 200]

For each mode it starts ``bourbon mysite.wsgi:application --chdir examples/mysite -w N`` on
a free loopback port, sends the same requests (a few pages, the ORM, the admin login) so that
every worker has served, then reads ``/proc/PID/smaps_rollup`` of the master and each worker:
RSS, PSS (shared pages divided among the processes sharing them) and USS (the private pages:
``Private_Clean + Private_Dirty``). It prints one line per mode and the difference. It is a
measurement, not a test: it never fails on a number. Run ``manage.py migrate`` once first.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "examples" / "mysite"
PATHS = ["/", "/plain", "/json", "/orm", "/1/", "/admin/login/"]


def smaps(pid: int) -> dict[str, int]:
    """The smaps_rollup fields of ``pid``, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        out[key] = int(value.split()[0])
    return out


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def measure(bourbon: str, workers: int, requests: int, preload: bool) -> dict:
    args = [bourbon, "mysite.wsgi:application", "--chdir", str(SITE), "-w", str(workers)]
    args += ["-b", "127.0.0.1:0"] + (["--preload"] if preload else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOURBON_")}
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("bourbon exited before listening")
            m = re.search(r"Listening at: (http://\S+) ", line)
            url = m.group(1) if m else None
        if url is None:
            raise RuntimeError("bourbon did not listen in time")
        while len(children(proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        # Enough requests, over new connections, that every worker served each page.
        for i in range(requests):
            path = PATHS[i % len(PATHS)]
            with urllib.request.urlopen(url + path, timeout=10) as resp:
                resp.read()
        time.sleep(0.5)  # let the workers settle (a measurement, not a readiness wait)
        kids = children(proc.pid)
        per = [smaps(pid) for pid in kids]
        master = smaps(proc.pid)
        return {
            "workers": len(kids),
            "rss": sum(p["Rss"] for p in per) / len(per),
            "pss": sum(p["Pss"] for p in per) / len(per),
            "uss": sum(p["Private_Clean"] + p["Private_Dirty"] for p in per) / len(per),
            "master_pss": master["Pss"],
            "total_pss": master["Pss"] + sum(p["Pss"] for p in per),
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--bourbon", default=str(Path(sys.executable).parent / "bourbon"))
    opts = ap.parse_args()
    results = {}
    for preload in (False, True):
        r = measure(opts.bourbon, opts.workers, opts.requests, preload)
        results[preload] = r
        name = "--preload" if preload else "no preload"
        print(
            f"{name:>11}: {r['workers']} workers; per worker RSS {r['rss'] / 1024:.1f} MiB, "
            f"PSS {r['pss'] / 1024:.1f} MiB, USS {r['uss'] / 1024:.1f} MiB; "
            f"master PSS {r['master_pss'] / 1024:.1f} MiB; "
            f"total PSS {r['total_pss'] / 1024:.1f} MiB"
        )
    a, b = results[False], results[True]
    print(
        f"  difference: per worker PSS {(b['pss'] - a['pss']) / 1024:+.1f} MiB, "
        f"USS {(b['uss'] - a['uss']) / 1024:+.1f} MiB; "
        f"total PSS {(b['total_pss'] - a['total_pss']) / 1024:+.1f} MiB"
    )


if __name__ == "__main__":
    main()
