"""Child-process functions for procpar-sync's tests (importable by spawn and forkserver children)."""

from __future__ import annotations

import os
import time
from typing import Any


def hold_then_release(lock: Any, held: Any, go: Any) -> None:
    lock.acquire()
    held.set()
    go.wait(30)
    lock.release()


def try_acquire(lock: Any, result: Any) -> None:
    result.put(lock.acquire(timeout=0.05))


def increment(counter_lock: Any, queue: Any, n: int) -> None:
    for _ in range(n):
        with counter_lock:
            queue.put(os.getpid())


def wait_on_condition(cond: Any, ready: Any, out: Any) -> None:
    with cond:
        ready.release()
        out.put(cond.wait(30))


def wait_event(event: Any, out: Any) -> None:
    out.put(event.wait(30))


def barrier_wait(barrier: Any, out: Any) -> None:
    out.put(barrier.wait(30))


def produce(queue: Any, start: int, count: int) -> None:
    for i in range(start, start + count):
        queue.put(i)


def consume(queue: Any, out: Any, count: int) -> None:
    total = [queue.get(timeout=30) for _ in range(count)]
    out.put(total)


def joinable_worker(queue: Any) -> None:
    while True:
        item = queue.get(timeout=30)
        queue.task_done()
        if item is None:
            return


def semaphore_user(sem: Any, out: Any) -> None:
    got = sem.acquire(timeout=30)
    out.put(got)
    time.sleep(0)


def consume_simple(queue: Any, out: Any, count: int) -> None:
    out.put([queue.get() for _ in range(count)])


def report_ownership(lock: Any, out: Any) -> None:
    out.put((lock._semlock.is_mine(), lock._semlock.count()))


def consume_mixed(queue: Any, out: Any) -> None:
    """Take items until None; report (item index, payload length) pairs."""
    got = []
    while True:
        item = queue.get(timeout=30)
        if item is None:
            break
        got.append((item[0], len(item[1])))
    out.put(got)


def hold_lock(lock: Any, held: Any) -> None:
    """Take the lock, say so, and wait to be killed."""
    lock.acquire()
    held.set()
    time.sleep(600)


def hold_with(sem: Any, held: Any) -> None:
    """Take a unit in a with block, say so, and wait to be killed."""
    with sem:
        held.set()
        time.sleep(600)


def take_without_with(sem: Any, held: Any) -> None:
    sem.acquire()
    held.set()
    time.sleep(600)


def wait_forever_on(cond: Any, ready: Any) -> None:
    with cond:
        ready.release()
        cond.wait()


def get_forever(queue: Any, started: Any) -> None:
    started.set()
    queue.get()


def get_until_killed(queue: Any, started: Any) -> None:
    """Take items for as long as it lives: killed at a random point of a get()."""
    started.set()
    while True:
        queue.get()


def put_big_then(queue: Any, started: Any, size: int) -> None:
    """Put an item larger than the pipe (the feeder blocks half-way while nobody reads), then a marker."""
    started.set()
    queue.put(b"x" * size)
    queue.put("after")
    time.sleep(600)


def simple_put_big(queue: Any, started: Any, size: int) -> None:
    started.set()
    queue.put(b"x" * size)
    time.sleep(600)


def get_length(queue: Any, out: Any) -> None:
    out.put(len(queue.get()))


def report_process_tag(out: Any) -> None:
    from procpar_sync._psem import process_tag

    out.put(process_tag())


def barrier_party(barrier: Any, arrived: Any) -> None:
    arrived.release()
    barrier.wait()


def fill_then_sleep(queue: Any, started: Any) -> None:
    """Put more than the pipe holds with nobody reading (the feeder blocks), then wait to be interrupted."""
    queue.put(b"x" * (8 << 20))
    started.set()
    time.sleep(600)


def report_locked(lock: Any, out: Any) -> None:
    out.put(lock.locked())
