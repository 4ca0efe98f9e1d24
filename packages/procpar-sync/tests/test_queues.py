"""Queue, JoinableQueue, SimpleQueue: order, sizes, errors in the feeder, subclasses, many producers and
consumers."""

from __future__ import annotations

import os
import queue
import time
from typing import Any

import pytest
import sync_targets as t

import procpar_sync as ps

pytestmark = pytest.mark.timeout(60)


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
