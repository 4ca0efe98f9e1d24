"""Condition, Event and Barrier: their rules, and across processes."""

from __future__ import annotations

from typing import Any

import pytest
import sync_targets as t

import procpar_sync as ps

pytestmark = pytest.mark.timeout(60)


def test_condition_notify_across_processes(ctx: Any) -> None:
    cond = ps.Condition()
    ready = ps.Semaphore(0)
    out = ps.Queue()
    procs = [ctx.Process(target=t.wait_on_condition, args=(cond, ready, out)) for _ in range(2)]
    for p in procs:
        p.start()
    for _ in procs:
        assert ready.acquire(timeout=30)
    with cond:
        cond.notify()
    assert out.get(timeout=30) is True
    with cond:
        cond.notify_all()
    assert out.get(timeout=30) is True
    for p in procs:
        p.join(30)
        assert p.exitcode == 0


def test_condition_rules_and_wait_for() -> None:
    cond = ps.Condition(ps.Lock())
    with pytest.raises(AssertionError, match="acquire"):
        cond.wait(0)
    with pytest.raises(AssertionError, match="acquire"):
        cond.notify()
    with cond:
        assert cond.wait(0.01) is False
        assert cond.wait_for(lambda: False, timeout=0.05) is False
        assert cond.wait_for(lambda: 5) == 5
    assert "Condition" in repr(cond)


def test_event_across_processes(ctx: Any) -> None:
    event = ps.Event()
    out = ps.Queue()
    assert not event.is_set()
    assert event.wait(0.01) is False
    p = ctx.Process(target=t.wait_event, args=(event, out))
    p.start()
    event.set()
    assert out.get(timeout=30) is True
    assert event.is_set() and event.wait(0)
    event.clear()
    assert not event.is_set()
    p.join(30)


def test_barrier_across_processes(ctx: Any) -> None:
    barrier = ps.Barrier(3, action=None, timeout=30)
    out = ps.Queue()
    procs = [ctx.Process(target=t.barrier_wait, args=(barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    mine = barrier.wait()
    indices = sorted([mine, out.get(timeout=30), out.get(timeout=30)])
    assert indices == [0, 1, 2]
    for p in procs:
        p.join(30)
    assert barrier.parties == 3 and barrier.n_waiting == 0 and not barrier.broken


def test_barrier_action_abort_reset_timeout() -> None:
    calls: list[int] = []
    barrier = ps.Barrier(1, action=lambda: calls.append(1))
    assert barrier.wait() == 0 and calls == [1]
    b2 = ps.Barrier(2)
    with pytest.raises(ps.BrokenBarrierError):
        b2.wait(timeout=0.05)  # nobody else comes: the barrier breaks
    assert b2.broken
    b2.reset()
    assert not b2.broken
    b2.abort()
    with pytest.raises(ps.BrokenBarrierError):
        b2.wait()
    with pytest.raises(ValueError):
        ps.Barrier(0)
    failing = ps.Barrier(1, action=lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.wait()
    assert failing.broken
