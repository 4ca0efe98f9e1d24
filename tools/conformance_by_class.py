"""Per-area pass counts of the public-API tests in conformance results (../shared/conformance JSON).

    python tools/conformance_by_class.py PROCPAR_RESULTS.json [STDLIB_RESULTS.json]

Areas group the suite's classes by what they test (process, connection, lock, queue, ...), so an issue's
closing note can report its own classes against the stdlib's count.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from typing import Any

AREAS = [
    ("process", r"TestProcess|TestSubclassingProcess|TestNoForkBomb|TestForkAwareThreadLock|TestCloseFds"
                r"|TestStdinBad|TestFlags|TestIgnoreEINTR|_TestProcess|TestSpawn"),
    ("start-method", r"TestStartMethod|MiscTestCase"),
    ("connection", r"TestConnection|TestPicklingConnections|TestInvalidHandle|OtherTest|TestInvalidFamily"),
    ("listener", r"TestListener"),
    ("poll/wait", r"TestPoll|TestWait"),
    ("logging", r"TestLogging"),
    ("lock/semaphore", r"TestLock|TestSemaphore|SemLock"),
    ("condition/event/barrier", r"TestCondition|TestEvent|TestBarrier"),
    ("queue", r"TestQueue|TestSimpleQueue|TestJoinable"),
    ("value/array", r"TestValue|TestArray"),
    ("pool", r"Pool"),
    ("manager", r"Manager|Proxy|Namespace|TestSyncManagerTypes"),
    ("shared memory/heap", r"SharedMemory|Heap|TestShared"),
]


def load(path: str) -> dict[str, dict[str, str]]:
    with open(path) as f:
        data = json.load(f)
    out: dict[str, dict[str, str]] = {}
    for run in data["runs"]:
        out[run["start_method"]] = {t["id"]: t for t in run["tests"]}
    return out


def area_of(name: str) -> str:
    # The WithManager* and WithThreads* variants exercise the managers and procpar.dummy, whatever the class.
    if name.startswith("WithManager"):
        return "manager"
    if name.startswith("WithThreads"):
        return "threads (dummy)"
    for area, pattern in AREAS:
        if re.search(pattern, name):
            return area
    return "other"


def summarise(tests: dict[str, Any]) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, t in tests.items():
        if t.get("tag") != "public":
            continue
        area = area_of(name)
        counts[area][1] += 1
        if t.get("outcome") == "pass":
            counts[area][0] += 1
    return counts


def main() -> None:
    ours = load(sys.argv[1])
    ref = load(sys.argv[2]) if len(sys.argv) > 2 else {}
    for method, tests in ours.items():
        mine = summarise(tests)
        theirs = summarise(ref.get(method, {}))
        print(f"== {method}")
        for area in [a for a, _ in AREAS] + ["threads (dummy)", "other"]:
            if area in mine:
                p, n = mine[area]
                r = theirs.get(area, [None, None])[0]
                extra = f"  stdlib {r}" if r is not None else ""
                print(f"  {area:<26} {p:>3}/{n:<3}{extra}")


if __name__ == "__main__":
    main()
