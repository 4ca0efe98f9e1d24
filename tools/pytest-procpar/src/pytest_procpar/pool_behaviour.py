"""The pool's behaviour, whatever engine runs it: one set of tests for procpar-pool's process pools and
procpar-dask's pools on a cluster.

A package runs them by importing them into one of its test modules (``from pytest_procpar.pool_behaviour
import *``) and defining the ``pools`` fixture: a ``PoolMaker`` for its engine (parametrise the fixture to cover
several: start methods, a local or a remote cluster). What differs between engines by design (the words of a
dead worker's error, where large buffers travel) stays in each package's own tests.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Executor
from typing import Any, Protocol

import pytest

from . import pool_targets as t

pytestmark = pytest.mark.timeout(120)


class PoolMaker(Protocol):
    """Makes the pools of one engine; each is terminated when the test ends."""

    #: which engine: "process" (procpar-pool) or "dask" (procpar-dask)
    kind: str

    def pool(self, processes: int = 2, **kwargs: Any) -> Any:
        """A started pool: ``processes``, then ``initializer``, ``initargs``, ``maxtasksperchild``,
        ``task_timeout``, ``progress`` by keyword."""
        ...

    def executor(self, max_workers: int = 2, **kwargs: Any) -> Executor:
        """A ``concurrent.futures`` executor on the same engine."""
        ...


def _wait_until(condition: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_documented_api(pool: Any) -> None:
    import procpar_pool

    assert pool.map(t.square, range(10)) == [x * x for x in range(10)]
    assert pool.map(t.square, range(10), chunksize=3) == [x * x for x in range(10)]
    assert pool.map(t.square, []) == []
    assert pool.starmap(t.add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.apply(t.add, (1,), {"b": 5}) == 6
    assert list(pool.imap(t.square, range(7), chunksize=2)) == [x * x for x in range(7)]
    assert sorted(pool.imap_unordered(t.square, range(7))) == [x * x for x in range(7)]
    assert pool.map_async(t.square, [3]).get(30) == [9]
    assert pool.starmap_async(t.add, [(1, 1)]).get(30) == [2]
    r = pool.apply_async(t.square, (4,))
    r.wait(30)
    assert r.ready() and r.successful() and r.get() == 16
    assert isinstance(r, procpar_pool.AsyncResult)


def test_many_items_come_back_in_order(pool: Any) -> None:
    n = 20_000
    assert pool.map(t.square, range(n)) == [x * x for x in range(n)]
    assert list(pool.imap(t.square, range(n))) == [x * x for x in range(n)]
    assert sorted(pool.imap_unordered(t.square, range(n), chunksize=7)) == [x * x for x in range(n)]
    assert pool.starmap(t.add, [(i, i) for i in range(n)]) == [2 * i for i in range(n)]


def test_every_call_runs(pool: Any, tmp_path: Any) -> None:
    """Two identical calls are two calls (no caching of 'pure' functions)."""
    path = str(tmp_path / "log")
    results = [pool.apply_async(t.append_line, (path, "x")) for _ in range(5)]
    assert [r.get(30) for r in results] == [None] * 5
    with open(path) as f:
        assert f.read() == "x\n" * 5


def test_results_timeouts(pool: Any) -> None:
    import procpar_pool

    r = pool.apply_async(t.sleep_then, (1, 5))
    with pytest.raises(procpar_pool.TimeoutError):
        r.get(0.05)
    with pytest.raises(ValueError, match="not ready"):
        r.successful()
    it = pool.imap(time.sleep, [5])
    with pytest.raises(procpar_pool.TimeoutError):
        it.next(0.05)


def test_exceptions_carry_the_worker_traceback(pool: Any) -> None:
    import procpar_pool

    with pytest.raises(ValueError, match="bad 3") as info:
        pool.apply(t.fail, (3,))
    assert isinstance(info.value.__cause__, procpar_pool.RemoteTraceback)
    assert "in fail" in str(info.value.__cause__)
    with pytest.raises(ValueError, match="bad"):
        pool.map(t.fail, range(4))
    it = pool.imap(t.fail, [1, 2])
    with pytest.raises(ValueError, match="bad 1"):
        next(it)
    with pytest.raises(ValueError, match="bad 2"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_callbacks_run_in_the_callers_process(pool: Any) -> None:
    seen: list[tuple[str, Any, int]] = []
    done = threading.Event()
    pool.apply_async(t.square, (3,), callback=lambda v: seen.append(("ok", v, os.getpid())))

    def failed(e: BaseException) -> None:
        seen.append(("err", str(e), os.getpid()))
        done.set()

    pool.apply_async(t.fail, (1,), error_callback=failed)
    pool.map_async(t.square, [1, 2], callback=lambda v: seen.append(("map", v, os.getpid())))
    assert done.wait(30)
    assert _wait_until(lambda: len(seen) >= 3)
    assert sorted(seen) == sorted([("ok", 9, os.getpid()), ("err", "bad 1", os.getpid()),
                                   ("map", [1, 4], os.getpid())])


def test_a_failing_callback_does_not_stop_the_pool(pool: Any, capfd: pytest.CaptureFixture[str]) -> None:
    r = pool.apply_async(t.square, (2,), callback=lambda v: 1 / 0)
    assert r.get(30) == 4
    assert pool.apply(t.square, (3,)) == 9
    assert "ZeroDivisionError" in capfd.readouterr().err


def test_close_join_terminate(pools: PoolMaker) -> None:
    import procpar_pool

    p = pools.pool(2)
    with pytest.raises(ValueError, match="still running"):
        p.join()
    r = p.map_async(t.square, range(5))
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply(t.square, (1,))
    p.join(60)
    assert r.get(0) == [x * x for x in range(5)]

    p = pools.pool(1)
    slow = p.apply_async(t.sleep_then, (1, 60))
    queued = p.map_async(t.square, range(3))
    p.terminate()
    with pytest.raises(procpar_pool.PoolClosedError):
        slow.get(30)
    with pytest.raises(procpar_pool.PoolClosedError):
        queued.get(30)
    p.join(60)
    assert "state=TERMINATE" in repr(p)


def test_the_with_block_terminates(pools: PoolMaker) -> None:
    import procpar_pool

    with pools.pool(1) as p:
        slow = p.apply_async(t.sleep_then, (1, 60))
    with pytest.raises(procpar_pool.PoolClosedError, match="terminated"):
        slow.get(30)


def test_apply_from_many_threads_while_a_map_runs(pool: Any) -> None:
    results: dict[int, Any] = {}

    def caller(i: int) -> None:
        results[i] = [pool.apply(t.add, (i, j)) for j in range(10)]

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    squares = pool.map(t.square, range(2000), chunksize=7)
    for th in threads:
        th.join(90)
    assert squares == [x * x for x in range(2000)]
    assert results == {i: [i + j for j in range(10)] for i in range(4)}


def test_maxtasksperchild_replaces_workers(pools: PoolMaker) -> None:
    with pools.pool(1, maxtasksperchild=2) as p:
        pids = [p.apply(t.pid) for _ in range(6)]
    assert max(Counter(pids).values()) <= 2, pids
    assert len(set(pids)) >= 3


def test_initializer_runs_in_every_worker(pools: PoolMaker) -> None:
    token = random.randrange(1 << 30)
    with pools.pool(2, initializer=t.remember, initargs=(token,)) as p:
        seen = p.map(t.initialized, range(8), chunksize=1)
    assert all(noted.count(token) == 1 for noted in seen), seen


def test_a_failing_initializer_fails_the_tasks_with_its_error(pools: PoolMaker) -> None:
    with pools.pool(1, initializer=t.failing_initializer) as p:
        with pytest.raises(RuntimeError, match=r"initializer raised.*no database"):
            p.apply(t.square, (1,))
        with pytest.raises(RuntimeError, match="initializer"):
            p.map(t.square, range(3))


def test_a_failed_map_still_runs_its_other_tasks(pool: Any, tmp_path: Any) -> None:
    """No fail-fast (the stdlib's issue 23992): map() raises the first error, but every other task runs."""
    paths = [str(tmp_path / "bad")] + [str(tmp_path / f"item{i}") for i in range(20)]
    with pytest.raises(ValueError, match="bad item"):
        pool.map(t.touch_or_fail, paths, chunksize=1)
    assert _wait_until(lambda: len(os.listdir(tmp_path)) == 20)
    assert sorted(os.listdir(tmp_path)) == sorted(f"item{i}" for i in range(20))


@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_a_dead_worker_fails_its_task_and_the_pool_goes_on(pool: Any, how: str) -> None:
    import procpar_pool

    with pytest.raises(procpar_pool.WorkerLostError):
        pool.apply(t.die, (how,))
    assert pool.map(t.square, range(6)) == [x * x for x in range(6)]
    assert pool.apply(t.square, (7,)) == 49


def test_map_with_a_dying_item_fails_instead_of_hanging(pool: Any) -> None:
    import procpar_pool

    with pytest.raises(procpar_pool.WorkerLostError):
        pool.map(t.die_on_three, range(20), chunksize=1)
    assert pool.map(t.square, range(4)) == [0, 1, 4, 9]


def test_unpicklable_argument_result_and_exception_fail_one_task(pool: Any) -> None:
    import procpar_pool

    with pytest.raises(procpar_pool.PicklingFailedError):
        pool.apply(t.add, (1, threading.Lock()))
    with pytest.raises(procpar_pool.PicklingFailedError):
        pool.map(t.unpicklable_result, range(4), chunksize=4)
    with pytest.raises(procpar_pool.PicklingFailedError, match="cannot travel"):
        pool.apply(t.raise_unpicklable)
    with pytest.raises(procpar_pool.PicklingFailedError, match="could not be unpickled"):
        pool.apply(t.raise_needs_two)
    assert pool.apply(t.square, (5,)) == 25


def test_lambdas_and_closures_go_by_value(pool: Any) -> None:
    offset = 10
    assert pool.map(lambda x: x + offset, [1, 2]) == [11, 12]
    assert pool.apply(lambda: offset * 2) == 20


def test_task_time_limit_stops_the_task_only(pool: Any) -> None:
    import procpar_pool

    start = time.monotonic()
    with pytest.raises(procpar_pool.TaskTimeoutError, match=r"time limit of 0\.5 s"):
        pool.apply(t.sleep_then, (1, 60), task_timeout=0.5)
    assert time.monotonic() - start < 30
    assert pool.starmap(t.sleep_then, [(1, 0), (2, 0)], task_timeout=30) == [1, 2]
    with pytest.raises(procpar_pool.TaskTimeoutError):
        pool.starmap(t.sleep_then, [(1, 0), (2, 60)], chunksize=1, task_timeout=0.5)
    assert pool.apply(t.square, (2,)) == 4
    with pytest.raises(ValueError, match="task_timeout must be a positive number"):
        pool.apply(t.square, (2,), task_timeout=-1)


def test_progress_bar_without_tqdm(pool: Any, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed
    assert pool.map(t.square, range(20), progress=True) == [x * x for x in range(20)]
    assert list(pool.imap(t.square, range(5), progress=True)) == [0, 1, 4, 9, 16]
    err = capsys.readouterr().err
    assert "20/20" in err and "5/5" in err


def test_progress_given_to_the_pool_is_the_calls_default(pools: PoolMaker,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pools.pool(2, progress=True) as p:
        assert p.map(t.square, range(12)) == [x * x for x in range(12)]
        assert p.map(t.square, range(3), progress=False) == [0, 1, 4]
    err = capsys.readouterr().err
    assert "12/12" in err and "3/3" not in err


def test_imap_reads_a_generator_lazily_and_only_so_far(pool: Any) -> None:
    pulled: list[int] = []
    it = pool.imap(t.square, t.endless(pulled), max_ahead=8)
    assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]
    assert len(pulled) <= 5 + 8 + 1
    unordered = pool.imap_unordered(t.square, t.endless(pulled), chunksize=2, max_ahead=3)
    assert len([next(unordered) for _ in range(6)]) == 6


def test_imap_default_read_ahead_stays_bounded(pool: Any) -> None:
    pulled: list[int] = []
    it = pool.imap(t.square, t.endless(pulled))
    assert [next(it) for _ in range(3000)] == [x * x for x in range(3000)]
    assert len(pulled) < 3000 + 20_000


def test_big_arguments_and_results(pool: Any) -> None:
    big = os.urandom(3 << 20)
    assert pool.apply(t.sleep_then, (big, 0)) == big
    assert pool.map(len, [big] * 4) == [len(big)] * 4


def test_executor(pools: PoolMaker) -> None:
    from concurrent.futures import wait

    import procpar_pool

    with pools.executor(2) as ex:
        futures = [ex.submit(t.square, i) for i in range(5)]
        wait(futures, timeout=30)
        assert [f.result() for f in futures] == [0, 1, 4, 9, 16]
        assert list(ex.map(t.add, [1, 2], [3, 4])) == [4, 6]
        assert list(ex.map(t.square, range(5), chunksize=2)) == [0, 1, 4, 9, 16]
        doomed = ex.submit(t.die, "sigkill")
        with pytest.raises(procpar_pool.WorkerLostError):
            doomed.result(60)
        assert ex.submit(t.square, 6).result(60) == 36  # still usable, unlike ProcessPoolExecutor
        with pytest.raises(ValueError, match="bad 2"):
            ex.submit(t.fail, 2).result(30)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(t.square, 1)
