"""What a user's type checker sees of procpar: checked by ``nox -s typing`` with mypy --strict and pyright
(strict), never run.

Each ``assert_type`` states what a checker must infer. Each line marked ``# type: ignore[code]`` and
``# pyright: ignore[rule]`` is code both checkers must reject: mypy (``warn_unused_ignores``) and pyright
(``reportUnnecessaryTypeIgnoreComment``) fail the session if such a line is accepted.
"""

from __future__ import annotations

import asyncio
import ctypes
from typing import Any

from typing_extensions import assert_type

import procpar
import procpar_pool
from procpar.managers import DictProxy, ListProxy, SyncManager, ValueProxy
from procpar.pool import ApplyResult, AsyncResult, IMapIterator
from procpar.sharedctypes import Synchronized, SynchronizedArray, SynchronizedString


def square(x: int) -> int:
    return x * x


def add(x: int, y: int) -> int:
    return x + y


def name_of(x: int) -> str:
    return str(x)


def pools() -> None:
    with procpar.Pool(2) as pool:
        assert_type(pool, procpar_pool.Pool)
        assert_type(pool.map(square, [1, 2]), list[int])
        assert_type(pool.map(name_of, range(3)), list[str])
        assert_type(pool.starmap(add, [(1, 2)]), list[int])
        assert_type(pool.apply(add, (1, 2)), int)
        assert_type(pool.apply_async(square, (3,)), ApplyResult[int])
        assert_type(pool.apply_async(square, (3,)).get(), int)
        assert_type(pool.map_async(square, [1]).get(), list[int])
        assert_type(pool.imap(square, [1]), IMapIterator[int])
        for item in pool.imap_unordered(name_of, [1]):
            assert_type(item, str)
        result: AsyncResult[int] = pool.apply_async(square, (1,))
        assert_type(result.ready(), bool)
        pool.map(square, ["not an int"])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        pool.imap(square, [b"bytes"])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        _wrong: list[str] = pool.map(square, [1])  # type: ignore[arg-type]  # pyright: ignore[reportAssignmentType]
    with procpar.pool.ThreadPool(2) as threads:
        assert_type(threads.map(square, [1]), list[int])


def executors() -> None:
    with procpar_pool.Executor(max_workers=2) as executor:
        future = executor.submit(add, 1, 2)
        assert_type(future, procpar_pool.Future[int])
        assert_type(future.result(), int)
        assert_type(list(executor.map(square, [1, 2])), list[int])
        executor.submit(add, 1, "2")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    reusable = procpar.get_reusable_pool(2)
    assert_type(reusable.map(square, [1]), list[int])


async def awaiting(pool: procpar_pool.Pool) -> None:
    assert_type(await pool.apply_async(square, (2,)), int)
    assert_type(await pool.map_async(square, [1, 2]), list[int])
    async for item in pool.imap(name_of, [1, 2]):
        assert_type(item, str)
    async for number in pool.imap_unordered(square, [1, 2]):
        assert_type(number, int)
    with procpar_pool.Executor(max_workers=1) as executor:
        assert_type(await executor.submit(square, 1), int)
        assert_type(await asyncio.wrap_future(executor.submit(square, 1)), int)


def managers() -> None:
    with procpar.Manager() as manager:
        assert_type(manager, SyncManager)
        assert_type(manager.dict(), DictProxy[Any, Any])
        counts = manager.dict({"a": 1})
        assert_type(counts, DictProxy[str, int])
        assert_type(counts["a"], int)
        items = manager.list([1, 2])
        assert_type(items, ListProxy[int])
        assert_type(items[0], int)
        value = manager.Value("i", 3)
        assert_type(value, ValueProxy[int])
        assert_type(value.value, int)
        assert_type(manager.Lock().acquire(), bool)
        assert_type(manager.Array("d", [1.0])[0], float)
        counts["b"] = "two"  # type: ignore[assignment]  # pyright: ignore[reportArgumentType]
        items.append("three")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def shared_ctypes() -> None:
    assert_type(procpar.Value("i", 1), Synchronized[int])
    assert_type(procpar.Value("i", 1).value, int)
    assert_type(procpar.Value("d", 1.0).value, float)
    assert_type(procpar.Value(ctypes.c_double, 1.0), Synchronized[float])
    assert_type(procpar.Value(ctypes.c_int, 1, lock=False), ctypes.c_int)
    assert_type(procpar.Array("d", 3), SynchronizedArray[float])
    assert_type(procpar.Array("i", [1, 2])[0], int)
    assert_type(procpar.Array("i", [1, 2])[0:1], list[int])
    assert_type(procpar.Array("c", b"abc"), SynchronizedString)
    assert_type(procpar.Array("c", b"abc").value, bytes)
    assert_type(procpar.RawArray(ctypes.c_int, 3), ctypes.Array[ctypes.c_int])
    procpar.Value("i", 1).value = "one"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]


def synchronisation_and_queues() -> None:
    assert_type(procpar.Lock().acquire(), bool)
    assert_type(procpar.Lock().acquire(timeout=1), bool)
    assert_type(procpar.Event().wait(1), bool)
    assert_type(procpar.Condition().wait_for(lambda: 3), int)
    queue: procpar.Queue[int] = procpar.Queue()
    assert_type(queue.get(), int)
    queue.put("x")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    simple: procpar.SimpleQueue[str] = procpar.SimpleQueue()
    assert_type(simple.get(), str)
    left, right = procpar.Pipe()
    assert_type(left, procpar.connection.Connection)
    assert_type(procpar.connection.wait([left, right]), list[procpar.connection.Connection])


def contexts() -> None:
    ctx = procpar.get_context("spawn")
    assert_type(ctx.Lock(), procpar.synchronize.Lock)
    assert_type(ctx.Value("d", 1.0), Synchronized[float])
    assert_type(ctx.Pool(2).map(square, [1]), list[int])
    assert_type(ctx.Manager(), SyncManager)
    ctx_queue: procpar.Queue[bytes] = ctx.Queue()
    assert_type(ctx_queue.get(), bytes)
    process = ctx.Process(target=square, args=(1,))
    assert_type(process.exitcode, int | None)
    ctx.Pool("two")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def threads_with_the_same_api() -> None:
    import procpar.dummy as dummy

    assert_type(dummy.Pool(2).map(square, [1]), list[int])
    assert_type(dummy.Value("i", 1).value, int)
    dummy.Value("i", 1).value = "one"  # type: ignore[assignment]  # pyright: ignore[reportAttributeAccessIssue]
    dummy.Pool(2).map(square, ["x"])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
