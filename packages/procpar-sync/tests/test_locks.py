"""Lock, RLock, Semaphore, BoundedSemaphore: semantics, argument errors, sharing rules, across processes, Ctrl-C
and SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import sync_targets as t

import procpar_sync as ps
from procpar_sync import _psem

pytestmark = pytest.mark.timeout(60)


def test_lock_semantics() -> None:
    lock = ps.Lock()
    assert lock.acquire()
    assert not lock.acquire(False)
    assert not lock.acquire(True, 0.01)
    assert not lock.acquire(timeout=-1)  # a negative timeout means zero
    lock.release()
    with pytest.raises(ValueError, match="released too many times"):
        lock.release()
    with lock:
        assert "owner=MainProcess|MainThread" in repr(lock)
    assert "owner=None" in repr(lock)


def test_lock_timeout_is_honoured() -> None:
    lock = ps.Lock()
    lock.acquire()
    start = time.monotonic()
    assert not lock.acquire(timeout=0.2)
    assert 0.19 <= time.monotonic() - start < 5
    lock.release()


def test_rlock_semantics() -> None:
    rlock = ps.RLock()
    assert rlock.acquire() and rlock.acquire()
    assert "2" in repr(rlock)
    rlock.release()
    rlock.release()
    with pytest.raises(AssertionError, match="not owned"):
        rlock.release()


def test_rlock_owned_by_another_thread_cannot_be_released() -> None:
    import threading

    rlock = ps.RLock()
    rlock.acquire()
    errors: list[BaseException] = []

    def other() -> None:
        try:
            rlock.release()
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=other)
    th.start()
    th.join(30)
    assert len(errors) == 1 and isinstance(errors[0], AssertionError)
    rlock.release()


def test_semaphores() -> None:
    sem = ps.Semaphore(2)
    assert sem.get_value() == 2
    assert sem.acquire() and sem.acquire() and not sem.acquire(False)
    sem.release()
    sem.release()
    sem.release()  # an unbounded semaphore may grow
    assert sem.get_value() == 3
    bounded = ps.BoundedSemaphore(1)
    bounded.acquire()
    bounded.release()
    with pytest.raises(ValueError):
        bounded.release()
    with pytest.raises(ValueError):
        ps.Semaphore(-1)
    assert "value=" in repr(sem) and "maxvalue=1" in repr(bounded)


def test_acquire_argument_errors() -> None:
    lock = ps.Lock()
    with pytest.raises(TypeError):
        lock.acquire(True, 1, 2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        lock.acquire(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        lock.acquire(True, "soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        lock.acquire(True, float("nan"))


def test_compiled_semaphore_checks_its_slot() -> None:
    with pytest.raises(ValueError, match="8-aligned"):
        _psem.Semaphore(bytearray(16), 3, 1, 1)
    with pytest.raises(ValueError, match="8-aligned"):
        _psem.Semaphore(bytearray(16), 16, 1, 1)
    with pytest.raises(ValueError, match="maxvalue"):
        _psem.Semaphore(bytearray(16), 0, 2, 1)
    with pytest.raises(BufferError, match="not writable"):
        _psem.Semaphore(b"readonly", 0, 1, 1)


def test_sharing_outside_process_creation_is_refused() -> None:
    import pickle

    for obj in (ps.Lock(), ps.RLock(), ps.Semaphore(), ps.Condition(), ps.Event(), ps.Barrier(2), ps.Queue(),
                ps.SimpleQueue()):
        with pytest.raises(RuntimeError, match="through inheritance"):
            pickle.dumps(obj)


def test_lock_across_processes(ctx: Any) -> None:
    lock = ps.Lock()
    held, go = ps.Event(), ps.Event()
    result = ps.Queue()
    holder = ctx.Process(target=t.hold_then_release, args=(lock, held, go))
    holder.start()
    assert held.wait(30)
    assert not lock.acquire(False)
    other = ctx.Process(target=t.try_acquire, args=(lock, result))
    other.start()
    assert result.get(timeout=30) is False
    go.set()
    holder.join(30)
    other.join(30)
    assert lock.acquire(timeout=30)
    lock.release()


def test_semaphore_across_processes(ctx: Any) -> None:
    sem = ps.Semaphore(0)
    out = ps.Queue()
    p = ctx.Process(target=t.semaphore_user, args=(sem, out))
    p.start()
    sem.release()
    assert out.get(timeout=30) is True
    p.join(30)


def test_blocking_acquire_wakes_for_ctrl_c(run_script: Any) -> None:
    result = run_script(
        """
        import os, signal, threading, time, procpar_sync
        lock = procpar_sync.Lock()
        lock.acquire()
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        start = time.monotonic()
        try:
            lock.acquire()
        except KeyboardInterrupt:
            print("interrupted after", round(time.monotonic() - start, 1))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "interrupted after" in result.stdout


def test_sigkill_leaves_nothing_behind(run_script: Any) -> None:
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    result = run_script(
        """
        import os, signal, sys, procpar_core, procpar_sync
        def hold(lock, q):
            lock.acquire()
            q.put("holding")
            signal.pause()
        if __name__ == "__main__":
            procpar_core.set_start_method(sys.argv[1])
            ctx = procpar_core.get_context(sys.argv[1])
            lock, q = procpar_sync.Lock(), procpar_sync.Queue()
            children = [ctx.Process(target=hold, args=(procpar_sync.Lock(), q)) for _ in range(2)]
            for c in children:
                c.start()
            for c in children:
                q.get(timeout=30)
            for c in children:
                os.kill(c.pid, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        """,
        "spawn",
    )
    assert result.returncode == -signal.SIGKILL
    after = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    assert not {n for n in after - before if "procpar" in n}


def test_after_fork_the_child_does_not_own_the_parents_lock() -> None:
    import procpar_core

    lock = ps.RLock()
    lock.acquire()
    ctx = procpar_core.get_context("fork")
    out = ps.SimpleQueue()
    p = ctx.Process(target=t.report_ownership, args=(lock, out))
    p.start()
    assert out.get() == (False, 0)
    p.join(30)
    lock.release()


@pytest.mark.parametrize("kind", ["Lock", "RLock"])
def test_locked_is_seen_by_every_process(ctx: Any, kind: str) -> None:
    """3.14's ``Lock.locked()``/``RLock.locked()``: whether anyone holds it, seen from any process."""
    lock = getattr(ps, kind)()
    out = ps.Queue()
    assert lock.locked() is False
    with lock:
        assert lock.locked() is True
        p = ctx.Process(target=t.report_locked, args=(lock, out))
        p.start()
        assert out.get(timeout=60) is True
        p.join(60)
    assert lock.locked() is False
    p = ctx.Process(target=t.report_locked, args=(lock, out))
    p.start()
    assert out.get(timeout=60) is False
    p.join(60)
