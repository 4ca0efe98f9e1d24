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
)
from procpar_pool._handle import WorkerState

pytestmark = pytest.mark.timeout(90)


def test_join_waits_for_the_worker_processes(ctx: Any) -> None:
    # The engine-independent part (close/join/terminate and their errors) is in the shared behaviour tests.
    p = Pool(2, context=ctx)
    r = p.map_async(t.square, range(5))
    p.close()
    p.join(30)
    assert r.get(0) == [x * x for x in range(5)]
    assert all(not w.is_alive() for w in p._pool)


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


def test_maxtasksperchild_replaces_the_worker(ctx: Any) -> None:
    with Pool(1, maxtasksperchild=2, context=ctx) as p:
        pids = {p.apply(t.pid) for _ in range(6)}
    assert len(pids) == 3


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
        with pytest.raises(TypeError, match="initializer must be a callable"):
            Pool(1, initializer=3)  # type: ignore[arg-type]  # the wrong type on purpose
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


def test_a_failed_map_on_threads_still_runs_its_other_tasks(tmp_path: Any) -> None:
    """No fail-fast (the stdlib's issue 23992): map() raises the first error, but every other task runs,
    and close() + join() wait for them."""
    paths = [str(tmp_path / "bad")] + [str(tmp_path / f"item{i}") for i in range(20)]
    pool = procpar_pool.ThreadPool(2)
    with pytest.raises(ValueError, match="bad item"):
        try:
            pool.map(t.touch_or_fail, paths, chunksize=1)
        finally:
            pool.close()
            pool.join()
    assert sorted(os.listdir(tmp_path)) == sorted(f"item{i}" for i in range(20))
