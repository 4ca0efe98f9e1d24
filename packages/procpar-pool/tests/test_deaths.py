"""A worker's death costs the task it was running, nothing else; memory limits; Ctrl-C inside imap."""

from __future__ import annotations

import os
import signal
from typing import Any

import pool_targets as t
import pytest

from procpar_core.util import wait_process_exit
from procpar_pool import MemoryLimitError, Pool, WorkerLostError
from procpar_pool._errors import _read_counter, describe_exit, oom_kill_count

pytestmark = pytest.mark.timeout(120)


def test_only_the_running_task_dies_with_its_worker(ctx: Any) -> None:
    with Pool(2, context=ctx, prefetch=8) as pool:
        results = [pool.apply_async(t.sleep_then, (i, 0.02)) for i in range(8)]
        killer = pool.apply_async(t.die, ("sigkill",))
        results += [pool.apply_async(t.sleep_then, (i, 0.02)) for i in range(8, 24)]
        with pytest.raises(WorkerLostError, match="SIGKILL"):
            killer.get(60)
        # The tasks queued behind it on the same worker ran elsewhere.
        assert [r.get(60) for r in results] == list(range(24))


def test_a_map_whose_item_kills_workers_fails_once_and_nothing_else_is_lost(ctx: Any) -> None:
    with Pool(2, context=ctx, prefetch=4) as pool:
        results = [pool.apply_async(t.die_on, (i, 5)) for i in range(12)]
        outcomes: list[int | str] = []
        for r in results:
            try:
                outcomes.append(r.get(60))
            except WorkerLostError:
                outcomes.append("lost")
        assert outcomes == [0, 1, 2, 3, 4, "lost", 6, 7, 8, 9, 10, 11]


def test_tasks_sent_to_a_worker_that_just_died_run_elsewhere(ctx: Any) -> None:
    with Pool(2, context=ctx) as pool:
        for _ in range(5):
            victim = pool._pool[0].pid
            assert victim is not None
            os.kill(victim, signal.SIGKILL)  # idle: the pool has not noticed yet
            assert pool.map(t.square, range(40), chunksize=1) == [x * x for x in range(40)]


def test_a_worker_over_the_memory_limit_mid_task_is_stopped_and_its_task_fails(ctx: Any) -> None:
    with Pool(1, context=ctx, max_memory_per_child=400 << 20) as pool:
        with pytest.raises(MemoryLimitError, match="max_memory_per_child") as info:
            pool.apply(t.hold_memory, (600, 10))
        assert isinstance(info.value, WorkerLostError)
        assert pool.apply(t.hold_memory, (10, 0)) == 10  # replaced, and going on


def test_a_worker_that_grew_past_the_limit_retires_after_its_task(ctx: Any, monkeypatch: Any) -> None:
    # The pool's own looks at busy workers are put off, so that only the worker's look after its task sees it.
    monkeypatch.setattr("procpar_pool._fleet.MEMORY_CHECK_SECONDS", 3600.0)
    with Pool(1, context=ctx, max_memory_per_child=300 << 20) as pool:
        first = pool.apply(t.grow_and_keep, (350,))  # over the limit once it returns: it leaves
        assert pool.map(t.square, range(10)) == [x * x for x in range(10)]
        assert pool.apply(t.pid) != first


def test_bad_memory_limits() -> None:
    for bad in (0, -1, 1.5, True, "1G"):
        with pytest.raises(ValueError, match="max_memory_per_child"):
            Pool(1, max_memory_per_child=bad)  # type: ignore[arg-type]


def test_an_oom_kill_is_named(tmp_path: Any) -> None:
    assert "out-of-memory killer" in describe_exit(-9, oom_killed=True)
    assert "out-of-memory killer" not in describe_exit(-11, oom_killed=True)
    events = tmp_path / "memory.events"
    events.write_bytes(b"low 0\nhigh 0\nmax 3\noom 2\noom_kill 7\n")
    assert _read_counter(str(events), b"oom_kill") == 7
    assert _read_counter(str(tmp_path / "missing"), b"oom_kill") is None
    assert oom_kill_count() >= 0


CTRL_C_IN_IMAP = """
import os, signal, sys, threading, time, procpar_core
from procpar_pool import Pool
if __name__ == "__main__":
    p = Pool(2, context=procpar_core.get_context(sys.argv[1]))
    pids = [w.pid for w in p._pool]
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    try:
        for x in p.imap(time.sleep, [0.01] * 10 + [60] * 4):
            pass
    except KeyboardInterrupt:
        print(round(time.monotonic() - start, 2), " ".join(map(str, pids)), flush=True)
"""


def test_ctrl_c_inside_an_imap_loop_stops_at_once(ctx: Any, run_script: Any) -> None:
    out = run_script(CTRL_C_IN_IMAP, ctx.get_start_method(), timeout=60)
    assert out.returncode == 0, out.stderr
    seconds, *pids = out.stdout.split()
    assert float(seconds) < 5
    for pid in map(int, pids):
        assert wait_process_exit(pid, None, 30)  # no worker left behind
