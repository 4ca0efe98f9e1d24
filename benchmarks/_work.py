"""The functions the benchmarks run in child processes and pool workers.

Kept apart from run.py so that a spawned child imports only this small module to find them (a spawn child of
run.py would otherwise re-import the harness as ``__mp_main__``).
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # not typing's: importing typing costs each spawned child ~6 ms, hiding the difference
if TYPE_CHECKING:
    from typing import Any


def noop() -> None:
    pass


def trivial(x: Any) -> Any:
    return x


def square(x: int) -> int:
    return x * x


def doubled(a: Any) -> Any:
    return a * 2  # a new array of the same size travels back


def sized(data: bytes) -> int:
    return len(data)


def make_bytes(size: int) -> bytes:
    return b"x" * size


def echo_bytes(conn: Any) -> None:
    while True:
        msg = conn.recv_bytes()
        if not msg:
            return
        conn.send_bytes(msg)


def sink(conn: Any, count: int) -> None:
    total = 0
    for _ in range(count):
        total += len(conn.recv_bytes())
    conn.send(total)


def sink_simplex(reader: Any, ack: Any, count: int) -> None:
    total = 0
    for _ in range(count):
        total += len(reader.recv_bytes())
    ack.send(total)


def queue_consumer(q: Any, count: int, done: Any) -> None:
    get = q.get
    for _ in range(count):
        get()
    done.put(count)


def queue_echo(inq: Any, outq: Any) -> None:
    while True:
        item = inq.get()
        if item is None:
            return
        outq.put(item)


def queue_worker(q: Any, done: Any, work: float) -> None:
    """The spec's worker pattern: take items until None, ``work`` seconds of CPU each; report how many."""
    taken = 0
    while True:
        item = q.get()
        if item is None:
            break
        taken += 1
        end = time.perf_counter() + work
        while time.perf_counter() < end:
            pass
    done.put(taken)


def locked_increments(v: Any, count: int) -> None:
    for _ in range(count):
        with v.get_lock():
            v.value += 1


def raw_echo(r: int, w: int, size: int) -> None:
    read, write = os.read, os.write
    while True:
        msg = read(r, size)
        if not msg:
            return
        write(w, msg)


def timed_consumers(ctx: Any, consumers: int, items: int, work: float) -> tuple[float, list[int]]:
    """(seconds, how many each took): ``consumers`` processes of ``ctx`` taking ``items`` ints from one Queue,
    ``work`` seconds of CPU each (the harness's, run.py and scaling.py; not run in a child)."""
    q, done = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=queue_worker, args=(q, done, work)) for _ in range(consumers)]
    for p in procs:
        p.start()
    t0 = time.perf_counter()
    for i in range(items):
        q.put(i)
    for _ in procs:
        q.put(None)
    taken = sorted(done.get() for _ in procs)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    assert sum(taken) == items, f"lost items: {sum(taken)} of {items}"
    return elapsed, taken
