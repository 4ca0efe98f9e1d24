"""What fails, and how much: a dead worker, a task that cannot be pickled, a task past its time limit, the
parent killed, Ctrl-C."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import pool_targets as t
import pytest

from procpar_pool import (
    PicklingFailedError,
    WorkerLostError,
)

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("how, words", [("sigkill", "SIGKILL"), ("exit", "status 3"), ("segfault", "SIGSEGV")])
def test_a_dead_worker_fails_its_task_and_is_replaced(pool: Any, how: str, words: str) -> None:
    before = {p.pid for p in pool._pool}
    with pytest.raises(WorkerLostError, match=words) as info:
        pool.apply(t.die, (how,))
    assert "replaced" in str(info.value)
    assert pool.map(t.square, range(6)) == [x * x for x in range(6)]
    assert len(pool._pool) == 2 and {p.pid for p in pool._pool} != before


def test_die_on_with_args(pool: Any) -> None:
    with pytest.raises(WorkerLostError):
        pool.starmap(t.die_on, [(i, 5) for i in range(10)], chunksize=1)
    assert pool.starmap(t.die_on, [(i, -1) for i in range(4)]) == [0, 1, 2, 3]


def test_unpicklable_argument_result_and_exception_fail_one_task(pool: Any) -> None:
    with pytest.raises(PicklingFailedError, match=r"argument #1 \(lock: .*cannot pickle"):
        pool.apply(t.add, (1, threading.Lock()))
    with pytest.raises(PicklingFailedError, match=r"result #2 of the chunk"):
        pool.map(t.unpicklable_result, range(4), chunksize=4)
    with pytest.raises(PicklingFailedError, match="Unpicklable: cannot travel"):
        pool.apply(t.raise_unpicklable)
    with pytest.raises(PicklingFailedError, match="could not be unpickled here"):
        pool.apply(t.raise_needs_two)
    assert pool.apply(t.square, (5,)) == 25


def test_without_cloudpickle_the_error_says_how_to_get_it(pool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from procpar_pool import _encoding

    monkeypatch.setattr(_encoding, "_cloudpickle_dumps", lambda obj: None)
    with pytest.raises(PicklingFailedError, match=r"pip install 'procpar-pool\[cloudpickle\]'"):
        pool.apply(lambda: 1)


INTERACTIVE = """
import procpar_core
from procpar_pool import Pool
def triple(x):
    return 3 * x
with Pool(2, context=procpar_core.get_context("spawn")) as p:
    print(p.map(triple, [1, 2, 3]))
"""


def test_functions_of_an_interactive_main_run_under_spawn(tmp_path: Any) -> None:
    import subprocess

    pytest.importorskip("cloudpickle")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    # `python -c` has a __main__ without a file, like a REPL or a notebook.
    out = subprocess.run([sys.executable, "-c", INTERACTIVE], capture_output=True, text=True, timeout=60, env=env,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[3, 6, 9]"


KILL_SELF = """
import os, signal, sys, procpar_core
from procpar_pool import Pool
if __name__ == "__main__":
    p = Pool(2, context=procpar_core.get_context(sys.argv[1]))
    p.apply(os.getpid)
    print(" ".join(str(w.pid) for w in p._pool), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


CTRL_C = """
import os, signal, sys, threading, time, procpar_core
from procpar_pool import Pool
if __name__ == "__main__":
    p = Pool(2, context=procpar_core.get_context(sys.argv[1]))
    pids = [w.pid for w in p._pool]
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    try:
        p.map(time.sleep, [60] * 4, chunksize=1)
    except KeyboardInterrupt:
        print(" ".join(map(str, pids)), flush=True)
"""


def _gone(pids: list[int], deadline: float) -> bool:
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(") ")[-1].startswith("Z"):
                        continue  # exited, waiting for init to reap it
                alive.append(pid)
            except (ProcessLookupError, FileNotFoundError):
                pass
        if not alive:
            return True
        time.sleep(0.02)
    return False


def test_workers_exit_when_the_parent_is_killed(ctx: Any, run_script: Any) -> None:
    out = run_script(KILL_SELF, ctx.get_start_method())
    assert out.returncode == -9, out.stderr
    pids = [int(x) for x in out.stdout.split()]
    assert len(pids) == 2 and _gone(pids, time.monotonic() + 30)


@pytest.mark.parametrize("call", ["p.map(time.sleep, [60] * 4, chunksize=1)", "p.apply(time.sleep, (60,))"])
def test_ctrl_c_stops_the_work_and_the_workers(ctx: Any, run_script: Any, call: str) -> None:
    # apply() on an idle pool waits on its worker's socket itself: Ctrl-C there must stop the pool too.
    out = run_script(CTRL_C.replace("p.map(time.sleep, [60] * 4, chunksize=1)", call), ctx.get_start_method())
    assert out.returncode == 0, out.stderr
    pids = [int(x) for x in out.stdout.split()]
    assert len(pids) == 2 and _gone(pids, time.monotonic() + 30)


LEFT_OPEN_IN_A_CHILD = """
    import sys, procpar_core, procpar_pool
    from procpar_core.util import Finalize

    def report(pool):
        # Priority 0: after the pools' own exit finalizers, before the exit sequence stops the children.
        print(pool._state.name, len(procpar_core.active_children()), flush=True)

    def child(how):
        global pool
        if how == "reusable":
            pool = procpar_pool.get_reusable_pool(2)
        else:
            pool = procpar_pool.Pool(2)
        pool.map(abs, range(50))
        if how == "closed":
            pool.apply_async(abs, (1,))
            pool.close()
        Finalize(None, report, args=(pool,), exitpriority=0)

    if __name__ == "__main__":
        procpar_core.set_start_method(sys.argv[1])
        p = procpar_core.Process(target=child, args=(sys.argv[2],))
        p.start()
        p.join(60)
        print("exitcode", p.exitcode, flush=True)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["open", "closed", "reusable"])
def test_a_pool_left_open_in_a_child_is_ended_before_its_children_are_stopped(ctx: Any, run_script: Any,
                                                                               how: str) -> None:
    # The exit sequence terminates daemonic children, then joins every child: a pool still running there
    # replaced a terminated worker now and then, and the join waited on the new one for good (seen on 3.10).
    out = run_script(LEFT_OPEN_IN_A_CHILD, ctx.get_start_method(), how, timeout=100)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["TERMINATE 0", "exitcode 0"], (out.stdout, out.stderr)
