"""Running the Autobahn|Testsuite fuzzing client (``wstest -m fuzzingclient``) against a
WebSocket server on loopback and judging its report.

The client runs on Python 2.7 from ``.venv-autobahn`` (``make autobahn-venv``). It is given a
spec written here at run time, runs in its own process group under a deadline, and leaves
``<outdir>/index.json`` (``{agent: {case_id: {"behavior", "behaviorClose", "remoteCloseCode",
"reportfile", ...}}}``) plus one JSON and one HTML file per case and an ``index.html``.

A run passes when every requested case ran (the set of case ids in the report equals the
requested set), every ``behavior`` is OK, NON-STRICT or INFORMATIONAL (the issue's bar: none
FAILED or UNIMPLEMENTED) and every ``behaviorClose`` is OK or INFORMATIONAL (this keeps
UNCLEAN, WRONG CODE and FAILED BY CLIENT out).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-autobahn"
WSTEST = VENV / "bin" / "wstest"

# Every section that is not a performance test, one case per permessage-deflate parameter set
# (12.x/13.x differ by message size and count within a set), and the 9.x limits at their first
# (smallest) step. About 260 cases; it runs in `make test`.
SUBSET = [
    "1.*",
    "2.*",
    "3.*",
    "4.*",
    "5.*",
    "6.*",
    "7.*",
    "10.*",
    "9.1.1",
    "9.2.1",
    "9.7.1",
    "9.8.1",
    "12.1.1",
    "12.2.5",
    "12.5.10",
    "13.1.1",
    "13.2.1",
    "13.3.1",
    "13.4.1",
    "13.5.1",
    "13.6.1",
    "13.7.1",
]
ALL = ["*"]
N_ALL = 517  # cases in autobahntestsuite 25.10.1

BEHAVIOR_OK = {"OK", "NON-STRICT", "INFORMATIONAL"}
BEHAVIOR_CLOSE_OK = {"OK", "INFORMATIONAL"}


def missing_client() -> str | None:
    """One line saying why the fuzzing client cannot run, or None when it can."""
    if not os.access(WSTEST, os.X_OK):
        return (
            f"the Autobahn fuzzing client {WSTEST.relative_to(ROOT)} is missing: run "
            "`make autobahn-venv` (it needs Python 2.7: `pyenv install 2.7.18`)"
        )
    return None


def all_case_ids() -> list[str]:
    """Every case id the installed suite knows, in its order ("1.1.1", ..., "13.7.18")."""
    proc = subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-c",
            "from autobahntestsuite.case import Cases\nfor c in Cases: print(c.__name__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise AssertionError(f"cannot list the suite's cases:\n{proc.stderr}")
    ids = []
    for name in proc.stdout.split():
        assert name.startswith("Case"), name
        ids.append(name[len("Case") :].replace("_", "."))
    return ids


def expand(patterns: list[str], known: list[str]) -> set[str]:
    """The case ids ``patterns`` select, by the suite's own rule: a pattern with ``*`` is a
    regular expression (``.`` literal, ``*`` any run) matched at the start of an id; any
    other pattern is one id, taken as given (so a mistyped id shows up as a case that never
    ran)."""
    out: set[str] = set()
    for pat in patterns:
        if "*" in pat:
            rx = re.compile(re.escape(pat).replace(r"\*", ".*"))
            out |= {c for c in known if rx.match(c)}
        else:
            out.add(pat)
    return out


@dataclass
class Run:
    """One finished fuzzing-client run."""

    outdir: Path
    output: str
    seconds: float
    results: dict[str, dict]  # case id -> the index.json entry


def run_fuzzingclient(
    url: str, patterns: list[str], workdir: Path, outdir: Path, deadline: float, agent: str
) -> Run:
    """Run ``wstest -m fuzzingclient`` against ``url`` in ``workdir`` for the cases
    ``patterns`` select, writing the report to ``outdir``; fail (after killing the client's
    process group) when it has not finished within ``deadline`` seconds or exits non-zero."""
    workdir.mkdir(parents=True, exist_ok=True)
    outdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": url}],
        "cases": patterns,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    (workdir / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    log_path = workdir / "wstest.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(WSTEST), "-m", "fuzzingclient", "-s", "spec.json"],
            cwd=str(workdir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(deadline)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            # The client is a single process, but stop its whole group in any case.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
    seconds = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    if code is None:
        raise AssertionError(
            f"wstest did not finish within {deadline:.0f} s; last output:\n{tail(output)}"
        )
    if code != 0:
        raise AssertionError(f"wstest exited with {code}:\n{tail(output)}")
    index = outdir / "index.json"
    if not index.exists():
        raise AssertionError(f"wstest wrote no {index}:\n{tail(output)}")
    report = json.loads(index.read_text())
    return Run(outdir, output, seconds, report.get(agent, {}))


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def sort_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(x) for x in case_id.split("."))


def tally(results: dict[str, dict]) -> str:
    """Counts per ``behavior`` and per ``behaviorClose``, e.g. ``behavior: OK 250,
    NON-STRICT 3; behaviorClose: OK 253``."""
    parts = []
    for key in ("behavior", "behaviorClose"):
        counts = Counter(r.get(key) for r in results.values())
        parts.append(f"{key}: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=str)))
    return "; ".join(parts)


def problems(run: Run, expected: set[str]) -> list[str]:
    """One paragraph per failing case (and one per requested case that never ran, or
    reported case that was not requested); empty when the run passes."""
    out = []
    for case_id in sorted(expected - run.results.keys(), key=sort_key):
        out.append(f"{case_id}: never ran (not in the report)")
    for case_id in sorted(run.results.keys() - expected, key=sort_key):
        out.append(f"{case_id}: in the report but not requested")
    for case_id in sorted(run.results.keys() & expected, key=sort_key):
        r = run.results[case_id]
        if r.get("behavior") in BEHAVIOR_OK and r.get("behaviorClose") in BEHAVIOR_CLOSE_OK:
            continue
        detail = case_detail(run.outdir, r.get("reportfile"))
        out.append(
            f"{case_id}: behavior {r.get('behavior')}, behaviorClose {r.get('behaviorClose')}, "
            f"remoteCloseCode {r.get('remoteCloseCode')}\n"
            f"    result: {detail.get('result')}\n"
            f"    resultClose: {detail.get('resultClose')}"
        )
    return out


def case_detail(outdir: Path, reportfile: str | None) -> dict:
    if not reportfile:
        return {}
    try:
        return json.loads((outdir / reportfile).read_text())
    except (OSError, ValueError) as e:
        return {"result": f"(cannot read {reportfile}: {e})"}


def verdict(run: Run, expected: set[str]) -> tuple[bool, str]:
    """(passed, text): the text has the tally, the time and every problem."""
    bad = problems(run, expected)
    head = (
        f"{len(run.results)} of {len(expected)} cases reported in {run.seconds:.1f} s; "
        f"{tally(run.results)}; report: {run.outdir / 'index.html'}"
    )
    if not bad:
        return True, head
    return False, head + f"\n{len(bad)} problem(s):\n" + "\n".join(bad)
