"""Pool's documented API: results, timeouts, exceptions, callbacks, arguments, close/join/terminate, the spec's
examples."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pool_targets as t
import pytest

import procpar_pool
from procpar_pool import (
    Pool,
    PoolClosedError,
    RemoteTraceback,
    TimeoutError,
    WorkerLostError,
)
from procpar_pool._handle import WorkerState

pytestmark = pytest.mark.timeout(90)


def test_documented_api(pool: Any) -> None:
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


def test_results_timeouts(pool: Any) -> None:
    r = pool.apply_async(t.sleep_then, (1, 5))
    with pytest.raises(TimeoutError):
        r.get(0.05)
    with pytest.raises(ValueError, match="not ready"):
        r.successful()
    it = pool.imap(time.sleep, [5])
    with pytest.raises(TimeoutError):
        it.next(0.05)


def test_exceptions_carry_the_worker_traceback(pool: Any) -> None:
    with pytest.raises(ValueError, match="bad 3") as info:
        pool.apply(t.fail, (3,))
    assert isinstance(info.value.__cause__, RemoteTraceback)
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


def test_callbacks_run_in_the_parent(pool: Any) -> None:
    seen: list[tuple[str, Any, int]] = []
    done = threading.Event()
    pool.apply_async(t.square, (3,), callback=lambda v: seen.append(("ok", v, os.getpid())))
    def failed(e: BaseException) -> None:
        seen.append(("err", str(e), os.getpid()))
        done.set()

    pool.apply_async(t.fail, (1,), error_callback=failed)
    pool.map_async(t.square, [1, 2], callback=lambda v: seen.append(("map", v, os.getpid())))
    assert done.wait(30)
    pool.apply(t.square, (1,))
    deadline = time.monotonic() + 30
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(seen) == sorted([("ok", 9, os.getpid()), ("err", "bad 1", os.getpid()),
                                   ("map", [1, 4], os.getpid())])


def test_a_failing_callback_does_not_stop_the_pool(pool: Any, capfd: pytest.CaptureFixture[str]) -> None:
    r = pool.apply_async(t.square, (2,), callback=lambda v: 1 / 0)
    assert r.get(30) == 4
    assert pool.apply(t.square, (3,)) == 9
    assert "ZeroDivisionError" in capfd.readouterr().err


def test_close_join_terminate(ctx: Any) -> None:
    p = Pool(2, context=ctx)
    with pytest.raises(ValueError, match="still running"):
        p.join()
    r = p.map_async(t.square, range(5))
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply(t.square, (1,))
    p.join(30)
    assert r.get(0) == [x * x for x in range(5)]
    assert all(not w.is_alive() for w in p._pool)

    p = Pool(1, context=ctx)
    slow = p.apply_async(t.sleep_then, (1, 60))
    queued = p.map_async(t.square, range(3))
    p.terminate()
    with pytest.raises(PoolClosedError):
        slow.get(30)
    with pytest.raises(PoolClosedError):
        queued.get(30)
    p.join(30)
    assert "state=TERMINATE" in repr(p)


def test_apply_from_many_threads_while_a_map_runs(pool: Any) -> None:
    # Synchronous applies take an idle worker directly when they find one, and queue otherwise.
    results: dict[int, Any] = {}

    def caller(i: int) -> None:
        results[i] = [pool.apply(t.add, (i, j)) for j in range(20)]

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    squares = pool.map(t.square, range(2000), chunksize=7)
    for th in threads:
        th.join(60)
    assert squares == [x * x for x in range(2000)]
    assert results == {i: [i + j for j in range(20)] for i in range(4)}
    assert pool.apply_async(t.square, (3,)).get(30) == 9 and pool.apply(t.square, (4,)) == 16


def test_close_while_an_apply_waits_on_its_worker(ctx: Any) -> None:
    p = Pool(2, context=ctx)
    started = threading.Event()
    out: list[Any] = []

    def call() -> None:
        started.set()
        out.append(p.apply(t.sleep_then, ("done", 0.3)))

    th = threading.Thread(target=call)
    th.start()
    started.wait(30)
    deadline = time.monotonic() + 30
    workers = t.process_engine(p)._fleet.workers
    while not any(w.state is WorkerState.CLAIMED for w in workers):  # the call holds its worker
        assert time.monotonic() < deadline
        time.sleep(0.001)
    p.close()
    p.join()  # returns once that task is over: the caller hands the pool back to the dispatcher
    th.join(30)
    assert out == ["done"] and not any(w.is_alive() for w in p._pool)


def test_maxtasksperchild_replaces_workers(ctx: Any) -> None:
    with Pool(1, maxtasksperchild=2, context=ctx) as p:
        pids = {p.apply(t.pid) for _ in range(6)}
    assert len(pids) == 3


def test_initializer(ctx: Any) -> None:
    with Pool(2, initializer=t.remember, initargs=(7,), context=ctx) as p:
        assert p.apply(t.initialized) == [7]
    with Pool(1, initializer=t.failing_initializer, context=ctx) as p:
        with pytest.raises(RuntimeError, match=r"initializer raised.*no database"):
            p.apply(t.square, (1,))
        with pytest.raises(RuntimeError, match="initializer"):
            p.apply_async(t.square, (1,))
    with pytest.raises(TypeError, match="initializer must be a callable"):
        Pool(1, initializer=3)  # type: ignore[arg-type]  # the wrong type on purpose


def test_default_map_chunks_are_eight_per_worker(pool: Any) -> None:
    # Smaller than the stdlib's four per worker, so that the last chunks go to whichever worker is free.
    assert len(pool._pool) == 2
    result = pool.map_async(t.square, range(161))  # 161 / 16 -> chunks of 11
    assert result.get(60) == [i * i for i in range(161)]
    assert [b - a for a, b in zip(result._offsets, result._offsets[1:], strict=False)] == [11] * 14 + [7]
    assert pool.map(t.square, range(3)) == [0, 1, 4]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Pool(0)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(1, maxtasksperchild=0)
    with Pool(1) as p:
        with pytest.raises(ValueError, match="Chunksize must be 1"):
            p.imap(t.square, [1], chunksize=0)
        with pytest.raises(ValueError, match="chunksize must be a positive int"):
            p.map(t.square, [1], chunksize=0)
        with pytest.raises(NotImplementedError, match="cannot be passed"):
            __import__("pickle").dumps(p)


SHIM = """
import sys, procpar_core, procpar_pool
procpar_core.Pool = procpar_pool.Pool
sys.modules["multiprocessing"] = procpar_core
if __name__ == "__main__":
    procpar_core.set_start_method(sys.argv[1])
"""


def test_spec_intro_example(ctx: Any, run_script: Any) -> None:
    from spec_examples import POOL_INTRO

    out = run_script(SHIM + POOL_INTRO, ctx.get_start_method())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    assert sorted(int(x) for x in lines[1:11]) == [x * x for x in range(10)]
    assert lines[11] == "400"
    assert lines[14:] == ["We lacked patience and got a multiprocessing.TimeoutError",
                          "For the moment, the pool remains available for more work",
                          "Now the pool is closed and no longer available"]


def test_spec_big_example(ctx: Any, run_script: Any) -> None:
    from spec_examples import POOL_BIG

    out = run_script(SHIM + POOL_BIG, ctx.get_start_method(), timeout=120)
    assert out.returncode == 0, out.stderr
    for expected in ("Got ZeroDivisionError as expected from pool.apply()",
                     "Got ZeroDivisionError as expected from pool.map()",
                     "Got ZeroDivisionError as expected from list(pool.imap())",
                     "Got ZeroDivisionError as expected from IMapIterator.next()",
                     "says that mul(9, 7) = 63", "says that plus(9, 8) = 17"):
        assert expected in out.stdout
    assert out.stdout.count("PoolWorker") >= 4 * 20


def test_executor(ctx: Any) -> None:
    from concurrent.futures import wait

    with procpar_pool.Executor(2, mp_context=ctx) as ex:
        futures = [ex.submit(t.square, i) for i in range(5)]
        wait(futures, timeout=30)
        assert [f.result() for f in futures] == [0, 1, 4, 9, 16]
        assert list(ex.map(t.add, [1, 2], [3, 4])) == [4, 6]
        assert list(ex.map(t.square, range(5), chunksize=2)) == [0, 1, 4, 9, 16]
        doomed = ex.submit(t.die, "sigkill")
        with pytest.raises(WorkerLostError):
            doomed.result(30)
        assert ex.submit(t.square, 6).result(30) == 36  # still usable, unlike ProcessPoolExecutor
        with pytest.raises(ValueError, match="bad 2"):
            ex.submit(t.fail, 2).result(30)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(t.square, 1)


@pytest.mark.parametrize("pool_type", ["Pool", "ThreadPool"])
def test_a_failed_map_still_runs_its_other_tasks(ctx: Any, tmp_path: Any, pool_type: str) -> None:
    """No fail-fast (the stdlib's issue 23992): map() raises the first error, but every other task runs,
    and close() + join() wait for them."""
    paths = [str(tmp_path / "bad")] + [str(tmp_path / f"item{i}") for i in range(20)]
    pool = procpar_pool.Pool(2, context=ctx) if pool_type == "Pool" else procpar_pool.ThreadPool(2)
    with pytest.raises(ValueError, match="bad item"):
        try:
            pool.map(t.touch_or_fail, paths, chunksize=1)
        finally:
            pool.close()
            pool.join()
    assert sorted(os.listdir(tmp_path)) == sorted(f"item{i}" for i in range(20))
