"""pool.stats(): per-worker and total figures, restarts by cause, shared-memory bytes, the table, the live line."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pytest_procpar import pool_targets as t

import procpar_pool
from procpar_pool import Pool, ThreadPool

pytestmark = pytest.mark.timeout(120)


def test_counts_add_up_per_worker_and_in_total(ctx: Any) -> None:
    with Pool(2, context=ctx) as pool:
        assert pool.map(t.square, range(100), chunksize=1) == [x * x for x in range(100)]
        stats = pool.stats()
        assert {w.pid for w in stats.workers} == {p.pid for p in pool._pool}
    assert stats.tasks == 100 == sum(w.tasks for w in stats.workers)
    assert len(stats.workers) == 2 and all(w.alive for w in stats.workers)
    assert stats.working > 0 and stats.starting > 0 and stats.waiting >= 0
    assert stats.working <= 2 * stats.seconds and stats.restarts == {}
    table = str(stats)
    assert table.splitlines()[0].split()[:3] == ["worker", "pid", "tasks"]
    assert any(line.split()[:2] == ["total", "100"] for line in table.splitlines())
    assert "restarts: none" in table


def test_restarts_are_counted_by_cause(ctx: Any) -> None:
    with Pool(1, context=ctx, maxtasksperchild=5) as pool:
        pool.map(t.square, range(20), chunksize=1)
        with pytest.raises(procpar_pool.WorkerLostError):
            pool.apply(t.die, ("sigkill",))
        with pytest.raises(procpar_pool.TaskTimeoutError):
            pool.apply(t.sleep_then, (None, 60), task_timeout=0.5)
        assert pool.apply(t.square, (3,)) == 9
        stats = pool.stats()
    assert stats.restarts["maxtasksperchild"] >= 3
    assert stats.restarts["killed by SIGKILL"] == 1
    assert stats.restarts["time limit"] == 1
    causes = [w.exit_cause for w in stats.workers if not w.alive]
    assert "killed by SIGKILL" in causes and "time limit" in causes
    assert stats.tasks == 21  # the 20 of the map and the last apply: the dead ones finished nothing


def test_bytes_through_shared_memory_are_counted(ctx: Any) -> None:
    big = np.ones(1 << 18)  # 2 MiB: over the threshold, so it travels in a segment (one each way)
    with Pool(1, context=ctx) as pool, Pool(1, context=ctx) as beside:
        assert pool.apply(t.identity, (big,)).shape == big.shape
        assert beside.apply(t.square, (3,)) == 9
        stats = pool.stats()
        other = beside.stats()
    assert stats.shm_bytes_sent == stats.shm_bytes_received == big.nbytes
    assert other.shm_bytes_sent == other.shm_bytes_received == 0  # each pool counts its own
    assert "2.0 MiB sent, 2.0 MiB received" in str(stats)


def test_workers_of_a_closed_pool_stay_in_the_figures(ctx: Any) -> None:
    pool = Pool(2, context=ctx)
    pool.map(t.square, range(10))
    pool.close()
    pool.join(60)
    stats = pool.stats()
    assert stats.tasks == 10 and len(stats.workers) == 2
    assert [w.exit_cause for w in stats.workers] == ["pool closed", "pool closed"]
    assert stats.restarts == {}  # not replaced: the pool ended
    assert stats.as_dict()["tasks"] == 10


def test_a_thread_pool_counts_per_thread() -> None:
    import threading

    from procpar_pool._thread_engine import ThreadEngine

    with ThreadPool(2) as pool:
        assert pool.map(t.square, range(40), chunksize=1) == [x * x for x in range(40)]
        with pytest.raises(ValueError):
            pool.apply(t.fail, ("bad",))
        stats = pool.stats()
        ids = {th.native_id for th in pool._pool if isinstance(th, threading.Thread) and th.native_id}
        engine = pool._engine
        assert isinstance(engine, ThreadEngine)
        line = engine.worker_line()
    assert {w.pid for w in stats.workers} == ids  # a thread's native id stands for the pid
    assert stats.tasks == 41 and all(w.alive for w in stats.workers)
    assert stats.working > 0 and stats.starting >= 0 and stats.restarts == {}
    assert stats.shm_bytes_sent == stats.shm_bytes_received == 0
    assert sorted(int(part.split(":")[0]) for part in line.split()) == sorted(ids)
    pool.join(60)
    after = pool.stats()
    assert [w.exit_cause for w in after.workers] == ["pool closed", "pool closed"] and after.tasks == 41
    assert after.working >= stats.working and after.waiting >= stats.waiting
    assert threading.current_thread().native_id not in ids


def test_a_thread_whose_initializer_failed_says_so() -> None:
    pool = ThreadPool(1, initializer=t.failing_initializer)
    pool.close()
    pool.join(60)
    (worker,) = pool.stats().workers
    assert not worker.alive and worker.exit_cause == "initializer raised RuntimeError" and worker.tasks == 0


def test_progress_workers_shows_a_live_line_per_worker(ctx: Any, capsys: Any) -> None:
    with Pool(2, context=ctx) as pool:
        pool.map(t.square, range(50), chunksize=1, progress="workers")
        pids = [w.pid for w in pool.stats().workers]
    err = capsys.readouterr().err
    assert "50/50" in err
    last = err.rsplit("\r", 1)[-1]
    assert all(f"{pid}:" in last for pid in pids)


def test_bad_progress_is_refused_with_what_it_takes() -> None:
    with pytest.raises(TypeError, match="'workers'"):
        Pool(1, progress="verbose")  # type: ignore[arg-type]


def test_workers_beyond_the_kept_ones_are_summed_into_one_row(monkeypatch: Any) -> None:
    from procpar_pool import _stats

    monkeypatch.setattr(_stats, "KEEP_GONE", 3)
    with Pool(1, maxtasksperchild=1) as pool:
        pool.map(t.square, range(8), chunksize=1)
        stats = pool.stats()
    # The 8th worker may or may not have left (and been replaced) yet: 7 or 8 are gone.
    gone = stats.restarts["maxtasksperchild"]
    assert stats.tasks == 8 and gone in (7, 8)
    rows = stats.workers
    assert len(rows) == 1 + 1 + 3  # the live one, the summed row, the three kept
    assert rows[1].pid is None and rows[1].exit_cause == f"{gone - 3} earlier workers, summed"
    assert rows[1].tasks == gone - 3 and all(row.tasks == 1 for row in rows[2:])
