from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import pool_targets as t
import pytest

import procpar_pool
from procpar_pool import (
    PicklingFailedError,
    Pool,
    PoolClosedError,
    RemoteTraceback,
    TaskTimeoutError,
    ThreadPool,
    TimeoutError,
    WorkerLostError,
)
from procpar_pool._handle import WorkerState
from procpar_pool._scheduling import queue_depth

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def pool(ctx: Any) -> Any:
    with Pool(2, context=ctx) as p:
        yield p


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


@pytest.mark.parametrize("how, words", [("sigkill", "SIGKILL"), ("exit", "status 3"), ("segfault", "SIGSEGV")])
def test_a_dead_worker_fails_its_task_and_is_replaced(pool: Any, how: str, words: str) -> None:
    before = {p.pid for p in pool._pool}
    with pytest.raises(WorkerLostError, match=words) as info:
        pool.apply(t.die, (how,))
    assert "replaced" in str(info.value)
    assert pool.map(t.square, range(6)) == [x * x for x in range(6)]
    assert len(pool._pool) == 2 and {p.pid for p in pool._pool} != before


def test_map_with_a_dying_item_fails_instead_of_hanging(pool: Any) -> None:
    with pytest.raises(WorkerLostError, match="SIGKILL"):
        pool.map(t.die_on_three, range(20), chunksize=1)
    results = pool.map(t.square, range(4))
    assert results == [0, 1, 4, 9]


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


def test_lambdas_go_by_value_with_cloudpickle(pool: Any) -> None:
    pytest.importorskip("cloudpickle")
    offset = 10
    assert pool.map(lambda x: x + offset, [1, 2]) == [11, 12]


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


def test_task_time_limit_stops_the_task_only(pool: Any) -> None:
    start = time.monotonic()
    with pytest.raises(TaskTimeoutError, match=r"time limit of 0\.5 s"):
        pool.apply(t.sleep_then, (1, 60), task_timeout=0.5)
    assert time.monotonic() - start < 30
    assert pool.starmap(t.sleep_then, [(1, 0), (2, 0)], task_timeout=30) == [1, 2]
    with pytest.raises(TaskTimeoutError):
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


def test_progress_accepts_a_bar_object(pool: Any) -> None:
    class Bar:
        def __init__(self) -> None:
            self.n, self.closed = 0, False

        def update(self, n: int) -> None:
            self.n += n

        def close(self) -> None:
            self.closed = True

    bar = Bar()
    pool.map(t.square, range(12), chunksize=5, progress=bar)
    assert bar.n == 12 and bar.closed
    with pytest.raises(TypeError, match="progress must be"):
        pool.map(t.square, [1], progress="yes")


def _endless(pulled: list[int]) -> Any:
    """0, 1, 2, ... forever, noting in ``pulled`` each number handed out."""
    n = 0
    while True:
        pulled.append(n)
        yield n
        n += 1


def test_imap_reads_ahead_only_so_far(pool: Any) -> None:
    pulled: list[int] = []
    it = pool.imap(t.square, _endless(pulled), max_ahead=8)
    assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]
    time.sleep(0.2)  # give the dispatcher every chance to read further than allowed
    assert len(pulled) <= 5 + 8 + 1
    unordered = pool.imap_unordered(t.square, _endless(pulled), chunksize=2, max_ahead=3)
    assert len([next(unordered) for _ in range(6)]) == 6


def test_default_read_ahead_widens_for_short_tasks_but_stays_bounded(pool: Any) -> None:
    pulled: list[int] = []
    it = pool.imap(t.square, _endless(pulled))
    assert [next(it) for _ in range(3000)] == [x * x for x in range(3000)]
    time.sleep(0.2)  # give the dispatcher every chance to read further than allowed
    # Short tasks deepen each worker's queue (up to 64) and the window with it, never beyond that bound.
    assert len(pulled) <= 3000 + 16 + 2 * 2 * (64 - 4) + 1
    depths = [queue_depth(None, w.service) for w in t.process_engine(pool)._fleet.workers]
    assert max(depths) > 4, depths


def test_prefetch_is_fixed_when_given(ctx: Any) -> None:
    with pytest.raises(ValueError, match="prefetch must be a positive int or None"):
        Pool(1, prefetch=0, context=ctx)
    with Pool(2, prefetch=1, context=ctx) as p:
        assert list(p.imap(t.square, range(50))) == [x * x for x in range(50)]
        engine = t.process_engine(p)
        assert {queue_depth(engine._prefetch, w.service) for w in engine._fleet.workers} == {1}


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


def test_big_arguments_and_results(pool: Any) -> None:
    big = os.urandom(3 << 20)
    assert pool.apply(t.sleep_then, (big, 0)) == big
    assert pool.map(len, [big] * 4) == [len(big)] * 4


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


def test_thread_pool() -> None:
    with ThreadPool(3) as tp:
        assert tp.map(t.square, range(10)) == [x * x for x in range(10)]
        assert tp.apply(lambda: threading.current_thread().name).startswith("ThreadPoolWorker")
        assert list(tp.imap(lambda x: x + 1, range(3))) == [1, 2, 3]
        with pytest.raises(ValueError, match="bad 1"):
            tp.apply(t.fail, (1,))
        assert tp.starmap(t.add, [(1, 2)]) == [3]
    tp = ThreadPool(1)
    tp.close()
    tp.join()


def test_thread_pool_releases_tasks_and_warns_when_left_running() -> None:
    import gc
    import weakref

    class Counted:
        pass

    objs = [Counted() for _ in range(10)]
    refs = [weakref.ref(o) for o in objs]
    with ThreadPool(2) as tp:
        assert tp.map(t.identity, objs) == objs
        del objs
        gc.collect()
        assert {r() for r in refs} == {None}  # no worker thread keeps the last task's arguments alive
    tp = ThreadPool(1)
    with pytest.warns(ResourceWarning, match="unclosed running multiprocessing pool"):
        del tp
        gc.collect()


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


def _segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("procpar-oob-")}


def test_large_buffers_travel_in_shared_memory(pool: Any) -> None:
    np = pytest.importorskip("numpy")
    before = _segments()
    arrays = [np.full(1 << 18, float(i)) for i in range(4)]  # 2 MiB each: out of band
    doubled = pool.map(t.double, arrays, chunksize=1)
    assert all((d == 2 * a).all() for d, a in zip(doubled, arrays, strict=True))
    assert pool.apply(t.is_shared, (arrays[0],))
    assert pool.apply(t.grow, (bytearray(2 << 20),)) == bytearray(2 << 20) + b"!"
    small = np.arange(10)
    assert (pool.apply(t.double, (small,)) == small * 2).all()
    with pytest.raises(WorkerLostError):
        pool.apply(t.die_holding, (arrays[1],))
    assert _segments() <= before  # every segment was taken, or dropped with its task


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
