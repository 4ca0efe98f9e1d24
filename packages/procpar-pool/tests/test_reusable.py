"""get_reusable_pool / get_reusable_executor: one warm pool shared by every caller, resized and reconfigured on
demand, its workers let go after an idle spell and back on the next call, ended at exit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pool_targets as pt
import pytest
from pytest_procpar import pool_targets as t

import procpar_core
import procpar_pool
from procpar_core.connection import wait
from procpar_pool import TimeoutError, get_reusable_executor, get_reusable_pool

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    """Each test starts without a shared pool and leaves none behind."""
    from procpar_pool import _reusable

    def end() -> None:
        pool = _reusable._shared
        if pool is not None:
            pool.terminate()
            pool.join(30)

    end()
    yield
    end()


def _pids(pool: Any) -> set[int]:
    return {w.pid for w in pool._pool}


def _all_exit(processes: list[Any], timeout: float = 30) -> bool:
    sentinels = [p.sentinel for p in processes]
    remaining = set(sentinels)
    while remaining:
        ready = wait(list(remaining), timeout)
        if not ready:
            return False
        remaining -= set(ready)
    return True


class TestSharing:
    def test_a_later_call_returns_the_same_pool_with_the_same_workers(self, ctx: Any) -> None:
        first = get_reusable_pool(2, context=ctx)
        assert first.map(t.square, range(10)) == [x * x for x in range(10)]
        workers = _pids(first)
        again = get_reusable_pool(2, context=ctx)
        assert again is first
        assert again.apply(t.pid) in workers
        assert _pids(again) == workers

    def test_no_context_and_the_default_context_mean_the_same_pool(self) -> None:
        assert get_reusable_pool(2) is get_reusable_pool(2, context=procpar_core.get_context())

    def test_leaving_a_with_block_keeps_it_running(self, ctx: Any) -> None:
        with get_reusable_pool(2, context=ctx) as pool:
            assert pool.apply(t.square, (3,)) == 9
        assert pool.apply(t.square, (4,)) == 16
        assert get_reusable_pool(2, context=ctx) is pool

    def test_close_ends_it_and_the_next_call_makes_another(self, ctx: Any) -> None:
        pool = get_reusable_pool(2, context=ctx)
        workers = list(pool._pool)
        pool.close()
        pool.join(30)
        assert _all_exit(workers)
        with pytest.raises(ValueError, match="Pool not running"):
            pool.apply(t.square, (2,))
        other = get_reusable_pool(2, context=ctx)
        assert other is not pool
        assert other.apply(t.square, (5,)) == 25


class TestReconfiguring:
    def test_another_size_gets_new_workers_and_what_was_running_finishes(self, ctx: Any, tmp_path: Any) -> None:
        pool = get_reusable_pool(2, context=ctx)
        gate = str(tmp_path / "gate")
        held = pool.apply_async(pt.wait_for_file, (gate,))
        old = list(pool._pool)
        bigger = get_reusable_pool(3, context=ctx)
        assert bigger is pool
        assert len(bigger._pool) == 3
        assert not _pids(bigger) & {p.pid for p in old}
        assert bigger.map(t.square, range(6)) == [0, 1, 4, 9, 16, 25]
        open(gate, "w").close()
        assert held.get(30) == gate  # it ran on an old worker, which finished it before leaving
        assert _all_exit(old)

    def test_another_initializer_reconfigures_the_pool(self, ctx: Any) -> None:
        pool = get_reusable_pool(1, context=ctx)
        assert pool.apply(t.initialized) == []
        again = get_reusable_pool(1, t.remember, (7,), context=ctx)
        assert again is pool
        assert again.apply(t.initialized) == [7]

    def test_bad_arguments_are_refused_with_what_was_wrong(self) -> None:
        with pytest.raises(ValueError, match="idle_timeout must be a positive number"):
            get_reusable_pool(2, idle_timeout=0)
        with pytest.raises(ValueError, match="Number of processes must be at least 1"):
            get_reusable_pool(0)


class TestIdleWorkers:
    def test_idle_workers_are_let_go_and_the_next_call_brings_new_ones(self, ctx: Any) -> None:
        pool = get_reusable_pool(2, context=ctx, idle_timeout=0.2)
        assert pool.apply(t.square, (2,)) == 4
        workers = list(pool._pool)
        assert _all_exit(workers)  # nobody used it for 0.2 s: its workers went
        assert pool.apply(t.square, (3,)) == 9  # the same object, new workers
        assert not _pids(pool) & {p.pid for p in workers}

    def test_a_task_running_past_the_idle_timeout_is_not_cut_short(self, ctx: Any, tmp_path: Any) -> None:
        pool = get_reusable_pool(1, context=ctx, idle_timeout=0.1)
        gate = str(tmp_path / "gate")
        held = pool.apply_async(pt.wait_for_file, (gate,))
        with pytest.raises(TimeoutError):
            held.get(1.0)  # ten idle timeouts pass while it runs
        open(gate, "w").close()
        assert held.get(30) == gate

    def test_a_program_that_uses_it_exits_and_leaves_no_worker(self, run_script: Any, ctx: Any) -> None:
        done = run_script(f"""
            import procpar_pool, procpar_core

            if __name__ == "__main__":
                pool = procpar_pool.get_reusable_pool(2, context=procpar_core.get_context({ctx.get_start_method()!r}))
                assert pool.map(abs, [-1, -2]) == [1, 2]
                print(" ".join(str(w.pid) for w in pool._pool))
        """)
        assert done.returncode == 0, done.stderr
        for pid in map(int, done.stdout.split()):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


class TestExecutor:
    def test_the_executor_is_shared_and_runs_on_the_reusable_pool(self, ctx: Any) -> None:
        ex = get_reusable_executor(2, mp_context=ctx)
        assert list(ex.map(t.square, range(5))) == [0, 1, 4, 9, 16]
        assert get_reusable_executor(2, mp_context=ctx) is ex
        assert ex._pool is get_reusable_pool(2, context=ctx)

    def test_shutdown_ends_it_and_the_next_call_makes_another(self, ctx: Any) -> None:
        ex = get_reusable_executor(2, mp_context=ctx)
        assert ex.submit(t.square, 3).result(30) == 9
        ex.shutdown()
        other = get_reusable_executor(2, mp_context=ctx)
        assert other is not ex
        assert other.submit(t.square, 4).result(30) == 16


def test_the_meta_names_are_reachable_from_the_package() -> None:
    assert procpar_pool.get_reusable_pool is get_reusable_pool
    assert isinstance(get_reusable_pool(1), procpar_pool.ReusablePool)


def test_a_forked_child_gets_a_pool_of_its_own(run_script: Any) -> None:
    done = run_script("""
        import os, procpar_core, procpar_pool

        def in_child(out):
            pool = procpar_pool.get_reusable_pool(1)
            out.put((pool.apply(os.getppid), os.getpid()))

        if __name__ == "__main__":
            import procpar_sync
            parent_pool = procpar_pool.get_reusable_pool(1)
            parent_pool.apply(abs, (1,))
            out = procpar_sync.SimpleQueue()
            p = procpar_core.get_context("fork").Process(target=in_child, args=(out,))
            p.start()
            worker_parent, child = out.get()
            p.join(30)
            print("ok" if worker_parent == child and p.exitcode == 0 else f"bad {worker_parent} {child}")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"  # the child's pool's worker is the child's own child
