from __future__ import annotations

import os
import queue
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


def test_queue_basics() -> None:
    q = ps.Queue(maxsize=2)
    assert q.empty() and not q.full()
    q.put(1)
    q.put_nowait({"two": 2})
    assert q.full()
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    assert q.get() == 1
    assert q.get(timeout=30) == {"two": 2}
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.put(1)
    with pytest.raises(ValueError, match="closed"):
        q.get()
    q.join_thread()


def test_queue_put_of_unpicklable_reports_and_keeps_working(capfd: pytest.CaptureFixture[str]) -> None:
    q = ps.Queue(maxsize=1)
    q.put(lambda: None)  # like the stdlib: reported, dropped, no exception in the producer
    assert "test_queue_put_of_unpicklable_reports_and_keeps_working.<locals>.<lambda>" in capfd.readouterr().err
    q.put("still works")
    assert q.qsize() == 1
    assert q.get(timeout=30) == "still works"
    assert q.empty()


def test_queue_feeder_error_hook_can_be_overridden() -> None:
    seen: list[Any] = []

    class Recording(ps.Queue):
        def _on_queue_feeder_error(self, e: BaseException, obj: Any) -> None:  # type: ignore[override]
            seen.append((type(e), obj))

    q = Recording()
    bad = lambda: None
    q.put(bad)
    assert len(seen) == 1 and seen[0][1] is bad


def test_queue_join_thread_requires_close() -> None:
    q = ps.Queue()
    with pytest.raises(AssertionError, match="not closed"):
        q.join_thread()
    q.cancel_join_thread()


def test_queue_order_many_producers_consumers(ctx: Any) -> None:
    q = ps.Queue()
    out = ps.Queue()
    producers = [ctx.Process(target=t.produce, args=(q, k * 1000, 200)) for k in range(2)]
    consumers = [ctx.Process(target=t.consume, args=(q, out, 200)) for _ in range(2)]
    for p in producers + consumers:
        p.start()
    results = [out.get(timeout=30) for _ in consumers]
    for p in producers + consumers:
        p.join(30)
        assert p.exitcode == 0
    everything = sorted(x for r in results for x in r)
    assert everything == sorted(list(range(200)) + list(range(1000, 1200)))
    # items from one producer arrive in order at each consumer
    for r in results:
        for base in (0, 1000):
            mine = [x for x in r if base <= x < base + 1000]
            assert mine == sorted(mine)


def test_queue_qsize_and_large_items() -> None:
    q = ps.Queue()
    big = os.urandom(3 << 20)
    for i in range(5):
        q.put((i, big))
    assert q.qsize() == 5
    for i in range(5):
        assert q.get(timeout=30) == (i, big)


def test_joinable_queue(ctx: Any) -> None:
    q = ps.JoinableQueue()
    p = ctx.Process(target=t.joinable_worker, args=(q,))
    p.start()
    for i in range(10):
        q.put(i)
    q.put(None)
    q.join()
    p.join(30)
    assert p.exitcode == 0
    with pytest.raises(ValueError, match="too many times"):
        q.task_done()


def test_simple_queue(ctx: Any) -> None:
    q = ps.SimpleQueue()
    out = ps.SimpleQueue()
    assert q.empty()
    p = ctx.Process(target=t.consume_simple, args=(q, out, 3))
    p.start()
    for i in range(3):
        q.put(i)
    assert out.get() == [0, 1, 2]
    p.join(30)
    q.close()
    with pytest.raises(OSError):
        q.put(1)


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


class DerivedQueue(ps.Queue):
    """A library-style subclass that passes ctx= on."""

    def __init__(self, maxsize: int = 0, *, ctx: Any = None) -> None:
        super().__init__(maxsize, ctx=ctx)
        self.label = "derived"

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(("wrapped", obj), block, timeout)


def test_queue_subclass_with_ctx_travels_to_children(ctx: Any) -> None:
    q = DerivedQueue(ctx=ctx)
    p = ctx.Process(target=t.produce, args=(q, 5, 2))
    p.start()
    assert [q.get(timeout=30), q.get(timeout=30)] == [("wrapped", 5), ("wrapped", 6)]
    p.join(30)
    assert p.exitcode == 0


def test_queue_order_mixing_direct_writes_and_feeder_batches() -> None:
    # Small items on an idle queue are written by put() itself, large ones and backlogs by the feeder:
    # one producer's items must still come out in order.
    q = ps.Queue()
    items = [(i, b"x" * (100_000 if i % 7 == 0 else i % 50)) for i in range(300)]
    got = []
    for n, item in enumerate(items):
        q.put(item)
        if n % 3 == 0:  # drain now and then, so the pipe is sometimes empty (direct path) and sometimes not
            got.append(q.get(timeout=30))
    got.extend(q.get(timeout=30) for _ in range(len(items) - len(got)))
    assert got == items


def test_queue_filled_beyond_the_pipe_then_drained_by_the_same_thread() -> None:
    # put() never blocks on a full pipe (the feeder does): filling past the pipe's capacity and then
    # draining from the same thread must not deadlock.
    q = ps.Queue()
    count = 150_000  # ~2 MiB of framed messages, more than the 1 MiB pipe
    for i in range(count):
        q.put(i)
    assert [q.get(timeout=30) for _ in range(count)] == list(range(count))


def test_queue_items_stashed_by_one_get_serve_the_next_without_the_pipe() -> None:
    from procpar_core.reduction import dumps
    from procpar_sync import _wire

    q = ps.Queue()
    for i in range(3):
        q.put(i)
    expected = sum(4 + len(dumps(i)) for i in range(3))
    deadline = time.monotonic() + 30
    while _wire.unread(q._reader.fileno()) < expected:
        assert time.monotonic() < deadline, "the feeder did not write the items"
        time.sleep(0.001)
    assert q.get(timeout=30) == 0
    # The other two left the pipe with the first one, into the queue's shared read-ahead buffer; they still
    # count for empty(), get_nowait() and get(timeout).
    assert not q._reader.poll()
    assert not q.empty()
    assert q.get_nowait() == 1
    assert q.get(timeout=0.5) == 2
    assert q.empty()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)


def test_queue_mixed_sizes_across_consumers_arrive_once(ctx: Any) -> None:
    # Small items go through the shared read-ahead buffer, big ones (larger than it) straight from the pipe;
    # several consumer processes share both.
    q = ps.Queue()
    out = ps.Queue()
    consumers = [ctx.Process(target=t.consume_mixed, args=(q, out)) for _ in range(3)]
    for p in consumers:
        p.start()
    sizes = [(i, 10 if i % 7 else 200_000 + i) for i in range(300)]
    for i, size in sizes:
        q.put((i, b"z" * size))
    for _ in consumers:
        q.put(None)
    got = [pair for _ in consumers for pair in out.get(timeout=60)]
    for p in consumers:
        p.join(30)
        assert p.exitcode == 0
    assert sorted(got) == sizes


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
