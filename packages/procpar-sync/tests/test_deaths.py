"""What a process's death (or a Ctrl-C) costs the primitives it shared: never a wedge, at most its own item.

See docs/reliability.md. Each test kills a real process at a point it observes (a lock held, a pipe drained),
never at a guessed moment, and waits on events and queues with timeouts.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import termios
import threading
import time
import warnings
from typing import Any, Callable

import pytest
import sync_targets as t

import procpar_sync as ps
from procpar_sync import AbandonedLockWarning

pytestmark = pytest.mark.timeout(120)

PIPE = 1 << 20  # procpar's pipes hold 1 MiB


def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.005)


def _unread(fd: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


def _start(ctx: Any, target: Callable[..., None], *args: Any) -> Any:
    p = ctx.Process(target=target, args=args, daemon=True)
    p.start()
    return p


def _kill(p: Any, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(p.pid, sig)
    except ProcessLookupError:
        # Already gone (a barrier party that left wait() exits on its own; a forkserver child is reaped by the
        # server): what the kill was for.
        pass
    if sig == signal.SIGKILL:
        p.join(30)


class TestLocksWhoseHolderDied:
    @pytest.mark.parametrize("kind", ["Lock", "RLock"])
    def test_the_next_acquire_takes_it_over_and_warns(self, ctx: Any, kind: str) -> None:
        lock, held = getattr(ps, kind)(), ps.Event()
        p = _start(ctx, t.hold_lock, lock, held)
        assert held.wait(30)
        assert not lock.acquire(timeout=0.05)
        _kill(p)
        with pytest.warns(AbandonedLockWarning, match=f"process {p.pid}, which died"):
            assert lock.acquire(timeout=30)
        lock.release()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert lock.acquire(timeout=5)  # taken over once: an ordinary lock again
        lock.release()

    def test_recover_is_silent_and_wait_keeps_the_stdlib_behaviour(self, ctx: Any) -> None:
        quiet, stubborn, held = ps.Lock(on_owner_death="recover"), ps.Lock(on_owner_death="wait"), ps.Event()
        p = _start(ctx, t.hold_lock, quiet, held)
        assert held.wait(30)
        held.clear()
        q = _start(ctx, t.hold_lock, stubborn, held)
        assert held.wait(30)
        _kill(p)
        _kill(q)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert quiet.acquire(timeout=30)
        assert not stubborn.acquire(timeout=0.5)  # as the stdlib: its dead holder keeps it

    def test_a_warning_turned_into_an_error_leaves_the_lock_free(self, ctx: Any) -> None:
        lock, held = ps.Lock(), ps.Event()
        p = _start(ctx, t.hold_lock, lock, held)
        assert held.wait(30)
        _kill(p)
        with warnings.catch_warnings():
            warnings.simplefilter("error", AbandonedLockWarning)
            with pytest.raises(AbandonedLockWarning):
                lock.acquire(timeout=30)
        assert lock.acquire(timeout=5)  # not left held by the raising acquire
        lock.release()

    def test_a_try_acquire_also_takes_over_a_dead_holders_lock(self, ctx: Any) -> None:
        lock, held = ps.Lock(on_owner_death="recover"), ps.Event()
        p = _start(ctx, t.hold_lock, lock, held)
        assert held.wait(30)
        _kill(p)
        _until(lambda: lock.acquire(False))

    def test_the_default_policy_can_be_changed(self) -> None:
        assert ps.get_owner_death_policy() == "warn"
        with pytest.raises(ValueError, match="on_owner_death must be one of"):
            ps.set_owner_death_policy("sometimes")
        with pytest.raises(ValueError, match="on_owner_death must be one of"):
            ps.Lock(on_owner_death="never")
        ps.set_owner_death_policy("wait")
        try:
            assert ps.Lock()._semlock.policy == 0
        finally:
            ps.set_owner_death_policy("warn")


class TestSemaphoreUnitsOfTheDead:
    @pytest.mark.parametrize("kind", ["Semaphore", "BoundedSemaphore"])
    def test_units_taken_in_a_with_block_come_back(self, ctx: Any, kind: str) -> None:
        sem, held = getattr(ps, kind)(1), ps.Event()
        p = _start(ctx, t.hold_with, sem, held)
        assert held.wait(30)
        assert not sem.acquire(timeout=0.05)
        _kill(p)
        with pytest.warns(AbandonedLockWarning, match=f"process {p.pid} died holding units"):
            assert sem.acquire(timeout=30)
        assert sem.get_value() == 0

    def test_units_taken_with_acquire_are_a_counter_nobody_gives_back(self, ctx: Any) -> None:
        sem, held = ps.Semaphore(1), ps.Event()
        p = _start(ctx, t.take_without_with, sem, held)
        assert held.wait(30)
        _kill(p)
        assert not sem.acquire(timeout=0.5)  # another process may be meant to release it


class TestConditionsAndBarriers:
    def test_notify_skips_a_waiter_that_died(self, ctx: Any) -> None:
        cond, ready = ps.Condition(), ps.Semaphore(0)
        p = _start(ctx, t.wait_forever_on, cond, ready)
        assert ready.acquire(timeout=30)
        with cond:  # it is asleep once it gave the lock back
            pass
        _kill(p)
        woken: list[bool] = []

        def wait_here() -> None:
            with cond:
                ready.release()
                woken.append(cond.wait(30))

        thread = threading.Thread(target=wait_here)
        thread.start()
        assert ready.acquire(timeout=30)
        with cond:
            cond.notify()  # the oldest waiter is dead: the wake-up goes to the live one
        thread.join(30)
        assert woken == [True]

    def test_a_party_that_dies_inside_wait_does_not_wedge_the_barrier(self, ctx: Any) -> None:
        barrier, arrived = ps.Barrier(2), ps.Semaphore(0)
        p = _start(ctx, t.barrier_party, barrier, arrived)
        assert arrived.acquire(timeout=30)
        _until(lambda: barrier.n_waiting == 1)
        assert barrier.wait(30) in (0, 1)  # it arrived (it counts), then it died
        _kill(p)
        results: list[int] = []
        thread = threading.Thread(target=lambda: results.append(barrier.wait(30)))
        thread.start()
        assert barrier.wait(30) in (0, 1)  # the next round fills: the dead one no longer holds it draining
        thread.join(30)
        assert len(results) == 1

    def test_a_party_killed_on_its_way_out_of_a_released_barrier_does_not_wedge_it(self, ctx: Any) -> None:
        # The moment between being released and giving up its place cannot be hit from outside, so it is set
        # up: the slot of a process that has since died, in a barrier that is draining.
        tags = ps.SimpleQueue()
        p = _start(ctx, t.report_process_tag, tags)
        dead_tag = tags.get()
        p.join(30)
        barrier = ps.Barrier(2)
        with barrier._cond:
            barrier._inside[0] = dead_tag
            barrier._state = 1  # draining
        results: list[int] = []
        thread = threading.Thread(target=lambda: results.append(barrier.wait(30)))
        thread.start()
        assert barrier.wait(30) in (0, 1)
        thread.join(30)
        assert len(results) == 1
        assert barrier.n_waiting == 0 and not barrier.broken


class TestQueuesLoseOnlyWhatTheDeadHeld:
    def test_a_consumer_killed_inside_get_does_not_wedge_its_sibling(self, ctx: Any) -> None:
        q, started = ps.Queue(), ps.Event()
        p = _start(ctx, t.get_forever, q, started)
        assert started.wait(30)
        _until(lambda: q._rlock._semlock.holder() == p.pid)  # it waits in get(), holding the read lock
        _kill(p)
        q.put("item")
        assert q.get(timeout=30) == "item"
        assert q._lost() == 0

    @pytest.mark.parametrize("queue_type", ["Queue", "SimpleQueue"])
    def test_a_producer_killed_half_way_through_an_item_loses_that_item_only(self, ctx: Any,
                                                                           queue_type: str) -> None:
        q, started = getattr(ps, queue_type)(), ps.Event()
        target = t.put_big_then if queue_type == "Queue" else t.simple_put_big
        p = _start(ctx, target, q, started, 8 * PIPE)
        assert started.wait(30)
        _until(lambda: _unread(q._reader.fileno()) >= PIPE - 4096)  # blocked on the full pipe, mid-item
        _kill(p)
        q.put("after")
        got = q.get(timeout=30) if queue_type == "Queue" else q.get()  # (the test's timeout bounds SimpleQueue's)
        assert got == "after"  # the half item is dropped, the stream goes on
        assert q._lost() == 1

    def test_a_consumer_killed_inside_a_large_item_loses_that_item_only(self, ctx: Any) -> None:
        q, started, out = ps.Queue(), ps.Event(), ps.Queue()
        producer = _start(ctx, t.put_big_then, q, started, 8 * PIPE)
        assert started.wait(30)
        fd = q._reader.fileno()
        _until(lambda: _unread(fd) >= PIPE - 4096)
        os.kill(producer.pid, signal.SIGSTOP)  # so that the consumer stalls in the middle of the item
        try:
            consumer = _start(ctx, t.get_length, q, out)
            _until(lambda: _unread(fd) == 0)  # it has read all there is: it is inside the item
            _kill(consumer)
        finally:
            os.kill(producer.pid, signal.SIGCONT)
        assert q.get(timeout=30) == "after"  # the rest of the item was skipped
        assert q._lost() == 1
        assert out.empty()
        _kill(producer)

    def test_a_lost_item_does_not_hold_up_join(self, ctx: Any) -> None:
        q, started = ps.JoinableQueue(), ps.Event()
        # (Only the big item: one the producer buffered behind it would die with it, and join() wait for it.)
        p = _start(ctx, t.simple_put_big, q, started, 8 * PIPE)
        assert started.wait(30)
        _until(lambda: _unread(q._reader.fileno()) >= PIPE - 4096)
        _kill(p)
        q.put("mine")
        assert q.get(timeout=30) == "mine"
        q.task_done()
        done = threading.Event()
        def join_then_signal() -> None:
            q.join()
            done.set()

        threading.Thread(target=join_then_signal, daemon=True).start()
        assert done.wait(30)  # the lost item was discounted

    def test_nothing_is_lost_or_duplicated_when_consumers_are_killed(self, ctx: Any) -> None:
        q, results, started = ps.Queue(), ps.Queue(), ps.Event()
        consumers = [_start(ctx, t.consume, q, results, 10**6) for _ in range(2)]
        # The victim never returns by itself (a single get() could take an item and exit before the kill).
        victim = _start(ctx, t.get_until_killed, q, started)
        assert started.wait(30)
        _until(lambda: q._rlock._semlock.holder() in {c.pid for c in [victim, *consumers]})
        for i in range(200):
            q.put(i)
        _kill(victim)
        for i in range(200, 400):
            q.put(i)
        got: set[int] = set()
        for c in consumers:
            c.kill()
            c.join(30)
        # Whatever the consumers took before they died is theirs; the rest is still there, once each.
        while True:
            try:
                item = q.get(timeout=1)
            except Exception:
                break
            assert item not in got
            got.add(item)
        assert got <= set(range(400))


SIGNAL_ELSEWHERE = """
import os, signal, threading, time, sys
import procpar_core, procpar_sync as ps
def later():
    time.sleep(0.3)
    # Delivered to another thread: the main thread's sleep is never interrupted, only its next look at
    # pending signals can see it (as with a Ctrl-C that lands just before a sleep begins).
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
waits = {
    "lock": lambda: (lambda l: (l.acquire(), l.acquire()))(ps.Lock()),
    "rlock_other_thread": lambda: (lambda l: (threading.Thread(target=l.acquire).start(), time.sleep(0.1),
                                              l.acquire()))(ps.RLock()),
    "semaphore": lambda: ps.Semaphore(0).acquire(),
    "condition": lambda: (lambda c: (c.acquire(), c.wait()))(ps.Condition()),
    "event": lambda: ps.Event().wait(),
    "barrier": lambda: ps.Barrier(2).wait(),
    "queue": lambda: ps.Queue().get(),
    "queue_timeout": lambda: ps.Queue().get(timeout=60),
    "simple_queue": lambda: ps.SimpleQueue().get(),
    "joinable_join": lambda: (lambda q: (q.put(1), q.join()))(ps.JoinableQueue()),
}
threading.Thread(target=later, daemon=True).start()
start = time.monotonic()
try:
    waits[sys.argv[1]]()
except KeyboardInterrupt:
    print("interrupted after", round(time.monotonic() - start, 2))
"""


@pytest.mark.parametrize("wait", ["lock", "rlock_other_thread", "semaphore", "condition", "event", "barrier",
                                  "queue", "queue_timeout", "simple_queue", "joinable_join"])
def test_every_blocking_wait_sees_a_signal_whenever_it_comes(run_script: Any, wait: str) -> None:
    result = run_script(SIGNAL_ELSEWHERE, wait, timeout=30)
    assert result.returncode == 0, result.stderr
    seconds = float(result.stdout.split()[-1])
    assert seconds < 5, result.stdout


CTRL_C_MID_ITEM = """
import os, signal, sys, time, threading
import procpar_core, procpar_sync as ps
def put_big(q, started):
    started.set()
    q.put(b"x" * (8 << 20))
    time.sleep(600)
if __name__ == "__main__":
    procpar_core.set_start_method(sys.argv[1])
    ctx = procpar_core.get_context(sys.argv[1])
    q, started = ps.Queue(), ps.Event()
    p = ctx.Process(target=put_big, args=(q, started), daemon=True)
    p.start()
    started.wait(30)
    os.kill(p.pid, signal.SIGSTOP)  # the producer stalls: the item stays half written
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    try:
        q.get()
    except KeyboardInterrupt:
        print("interrupted after", round(time.monotonic() - start, 2))
    p.kill()
"""


def test_ctrl_c_reaches_a_get_stuck_in_the_middle_of_an_item(ctx: Any, run_script: Any) -> None:
    result = run_script(CTRL_C_MID_ITEM, ctx.get_start_method(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert 0.9 < float(result.stdout.split()[-1]) < 5, result.stdout


def test_an_interrupted_child_does_not_wait_for_a_blocked_feeder(ctx: Any) -> None:
    q, started = ps.Queue(), ps.Event()
    p = ctx.Process(target=t.fill_then_sleep, args=(q, started))
    p.start()
    assert started.wait(30)
    _until(lambda: _unread(q._reader.fileno()) >= PIPE - 4096)  # the feeder is stuck on the full pipe
    os.kill(p.pid, signal.SIGINT)
    p.join(30)
    assert p.exitcode == 1  # KeyboardInterrupt, and out: the feeder's item is lost with it
