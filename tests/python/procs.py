"""Process helpers shared by the tests that watch a master and its workers through /proc.

Every wait here is bounded in time and polls a condition; none sleeps for readiness.
"""

from __future__ import annotations

import time
from pathlib import Path

TIMEOUT = 15.0


def children(pid: int) -> set[int]:
    """The live children of ``pid`` (of all its threads), from /proc."""
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids |= {int(p) for p in (task / "children").read_text().split()}
        except FileNotFoundError:
            pass
    return kids


def wait_children(pid: int, predicate, what: str = "", timeout: float = TIMEOUT) -> set[int]:
    """Poll the children of ``pid`` until ``predicate(children)`` holds; return them."""
    deadline = time.monotonic() + timeout
    while True:
        kids = children(pid)
        if predicate(kids):
            return kids
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'waiting'}: children of {pid} stayed {sorted(kids)}")
        time.sleep(0.02)


def wait_until(predicate, timeout: float = TIMEOUT, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] != "Z"
