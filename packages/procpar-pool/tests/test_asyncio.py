"""The asyncio face: awaitable results, ``async for`` over imap, awaitable executor futures, cancellation.

A task that must stay queued waits behind a worker held at a gate (an event given to the workers by their
initializer); ``prefetch=1`` keeps the engine from handing a busy worker a second task early.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from pytest_procpar import pool_targets as t

import procpar_pool
from procpar_pool import Pool, ThreadPool, WorkerLostError

pytestmark = pytest.mark.timeout(120)


def _gated(ctx: Any, processes: int = 1) -> tuple[Pool, Any]:
    gate = _event(ctx)
    pool = Pool(processes, context=ctx, prefetch=1, initializer=t.install_gate, initargs=(gate,))
    return pool, gate


def _event(ctx: Any) -> Any:
    import procpar_sync

    return procpar_sync.Event(ctx=ctx)


async def _cancel_while_awaited(awaitable: Any) -> None:
    """Await in a task, let it start waiting, cancel it: the await ends with CancelledError."""
    waiting = asyncio.ensure_future(awaitable)
    await asyncio.sleep(0)  # one turn of the loop: the task is now parked on the result
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


def test_await_apply_async_and_map_async(pool: Any) -> None:
    async def main() -> tuple[int, list[int]]:
        one = await pool.apply_async(t.add, (2, 3))
        many = await pool.map_async(t.square, range(5))
        return one, many

    assert asyncio.run(main()) == (5, [0, 1, 4, 9, 16])


def test_await_raises_the_task_error(pool: Any) -> None:
    async def main() -> None:
        await pool.apply_async(t.fail, (1,))

    with pytest.raises(ValueError):
        asyncio.run(main())


def test_async_for_over_imap_and_imap_unordered(pool: Any) -> None:
    async def main() -> tuple[list[int], list[int]]:
        ordered = [x async for x in pool.imap(t.square, range(20), chunksize=3)]
        unordered = [x async for x in pool.imap_unordered(t.square, range(20))]
        return ordered, unordered

    ordered, unordered = asyncio.run(main())
    assert ordered == [x * x for x in range(20)]
    assert sorted(unordered) == ordered


def test_an_error_in_async_for_is_raised_at_its_item(pool: Any) -> None:
    async def main() -> list[int]:
        got: list[int] = []
        with pytest.raises(ValueError):
            async for x in pool.imap(t.touch_or_fail, ["/nonexistent-dir/bad"]):
                got.append(x)
        return got

    assert asyncio.run(main()) == []


def test_the_event_loop_runs_while_a_result_is_awaited(ctx: Any) -> None:
    pool, gate = _gated(ctx)
    with pool:
        async def main() -> int:
            waiting = asyncio.ensure_future(pool.apply_async(t.through_gate, (7,)))
            # The loop must run this coroutine while the result is pending: it is what opens the gate.
            await asyncio.sleep(0)
            assert not waiting.done()
            gate.set()
            value: int = await waiting
            return value

        assert asyncio.run(main()) == 7


def test_cancelling_the_awaiting_task_cancels_a_task_not_started(ctx: Any, tmp_path: Any) -> None:
    pool, gate = _gated(ctx)
    marker = str(tmp_path / "ran")
    with pool:
        blocker = pool.apply_async(t.through_gate, (1,))
        queued = pool.apply_async(t.append_line, (marker, "queued"))

        asyncio.run(_cancel_while_awaited(queued))
        assert queued.ready()
        with pytest.raises(asyncio.CancelledError):
            queued.get(0)
        gate.set()
        assert blocker.get(30) == 1
        # One worker runs tasks in order: had the cancelled task been handed out, it would have run by now.
        assert pool.apply(t.square, (3,)) == 9
        assert not os.path.exists(marker)


def test_cancelling_an_awaited_map_drops_its_chunks_not_started(ctx: Any, tmp_path: Any) -> None:
    pool, gate = _gated(ctx)
    paths = [str(tmp_path / f"item{i}") for i in range(6)]
    with pool:
        blocker = pool.apply_async(t.through_gate, (1,))
        mapped = pool.map_async(t.touch_or_fail, paths, chunksize=1)

        asyncio.run(_cancel_while_awaited(mapped))
        gate.set()
        assert blocker.get(30) == 1
        assert pool.apply(t.square, (2,)) == 4
        assert os.listdir(tmp_path) == []


def test_cancelling_async_for_stops_reading_the_iterable(ctx: Any) -> None:
    pulled: list[int] = []
    pool = Pool(2, context=ctx)

    async def main() -> None:
        got: list[int] = []

        async def consume() -> None:
            async for x in pool.imap(t.square, t.endless(pulled)):
                got.append(x)
                if len(got) == 5:
                    reached.set()

        reached = asyncio.Event()
        consumer = asyncio.ensure_future(consume())
        await reached.wait()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer

    asyncio.run(main())
    seen = len(pulled)
    pool.close()
    pool.join(60)  # the endless iterable is no longer read: close() has a finite backlog to finish
    assert len(pulled) == seen


def test_a_worker_dying_while_awaited_fails_the_await(ctx: Any) -> None:
    with Pool(2, context=ctx) as pool:
        async def main() -> Any:
            return await pool.apply_async(t.die, ("sigkill",))

        with pytest.raises(WorkerLostError):
            asyncio.run(main())
        # The pool goes on with a new worker, awaited as well.
        assert asyncio.run(_await(pool.apply_async(t.square, (6,)))) == 36


async def _await(awaitable: Any) -> Any:
    value: Any = await awaitable
    return value


def test_await_on_a_thread_pool() -> None:
    with ThreadPool(2) as pool:
        async def main() -> tuple[int, list[int], list[int]]:
            return (await pool.apply_async(t.add, (1, 2)), await pool.map_async(t.square, [1, 2]),
                    [x async for x in pool.imap(t.square, [3, 4])])

        assert asyncio.run(main()) == (3, [1, 4], [9, 16])


def test_await_an_executor_future_and_cancel_one_not_started(ctx: Any) -> None:
    gate = _event(ctx)
    with procpar_pool.Executor(1, mp_context=ctx, initializer=t.install_gate, initargs=(gate,)) as executor:
        assert asyncio.run(_await(executor.submit(t.add, 4, 5))) == 9
        # One worker: two calls RUNNING fill the executor; a third stays PENDING, so it can be cancelled.
        running = [executor.submit(t.through_gate, i) for i in range(2)]
        queued = executor.submit(t.square, 5)

        asyncio.run(_cancel_while_awaited(_await(queued)))
        assert queued.cancelled()
        gate.set()
        assert [f.result(30) for f in running] == [0, 1]


def test_awaiting_costs_nothing_to_a_result_nobody_awaits(pool: Any) -> None:
    result = pool.apply_async(t.square, (4,))
    assert result.get(30) == 16
    assert result._wakers is None
