"""How the process pool's engine hands out work: batches, shares, encodings, and how its workers start."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pool_targets as t
import pytest

from procpar_pool import PicklingFailedError, Pool
from procpar_pool._scheduling import share as _share

pytestmark = pytest.mark.timeout(90)


def _one_at_a_time(slots: list[tuple[int, int]], count: int) -> list[int]:
    """The rule _share computes at once: each task to the slot holding fewest (first on ties), within room."""
    taken = [0] * len(slots)
    for _ in range(count):
        open_ = [i for i, (room, _) in enumerate(slots) if taken[i] < room]
        if not open_:
            break
        best = min(open_, key=lambda i: slots[i][1] + taken[i])
        taken[best] += 1
    return taken


@pytest.mark.parametrize("seed", range(5))
def test_share_hands_out_tasks_as_one_at_a_time_would(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        slots = [(rng.randint(1, 64), rng.randint(0, 64)) for _ in range(rng.randint(1, 8))]
        count = rng.randint(1, sum(room for room, _ in slots))
        assert _share(slots, count) == _one_at_a_time(slots, count), (slots, count)


def test_share_evens_out_idle_and_busy_workers() -> None:
    assert _share([(4, 0), (4, 0)], 8) == [4, 4]
    assert _share([(64, 0), (60, 4)], 10) == [7, 3]
    assert _share([(2, 0), (64, 0)], 10) == [2, 8]


def test_an_unpicklable_item_fails_alone_among_batched_ones(ctx: Any) -> None:
    # One worker, so that the five tasks travel together.
    with Pool(1, context=ctx) as pool:
        it = pool.imap(t.square, [1, 2, threading.Lock(), 4, 5])  # type: ignore[arg-type]  # on purpose
        assert [next(it), next(it)] == [1, 4]
        with pytest.raises(PicklingFailedError, match=r"item #0 of the chunk \(lock"):
            next(it)
        assert list(it) == [16, 25]


def test_an_item_the_worker_cannot_unpickle_fails_alone(ctx: Any) -> None:
    with Pool(1, context=ctx) as pool:
        it = pool.imap(t.identity, [1, t.FailsToLoad(), 3])
        assert next(it) == 1
        with pytest.raises(PicklingFailedError, match=r"could not be unpickled in the worker.*refuses to be"):
            next(it)
        assert list(it) == [3]


def test_tasks_of_different_functions_interleaved(ctx: Any) -> None:
    with Pool(2, context=ctx) as pool:
        results = [(f, i, pool.apply_async(f, (i,))) for i in range(60) for f in (t.square, t.identity)]
        assert all(r.get(60) == f(i) for f, i, r in results)
        assert pool.starmap(t.add, [(i, i) for i in range(100)], chunksize=1) == [2 * i for i in range(100)]


def test_lambdas_travel_in_batches_with_cloudpickle(ctx: Any) -> None:
    pytest.importorskip("cloudpickle")
    offset = 3
    with Pool(1, context=ctx) as pool:
        assert list(pool.imap(lambda x: x + offset, range(50))) == [x + 3 for x in range(50)]


def test_every_worker_starts_with_the_pool(ctx: Any) -> None:
    # As in the stdlib: Pool() starts its processes (an initializer warms them all up before the first task).
    with Pool(3, context=ctx, initializer=t.remember, initargs=(7,)) as pool:
        assert len(t.process_engine(pool)._fleet.workers) == 3
        assert len({p.pid for p in pool._pool}) == 3
        assert pool.map(t.initialized, range(6), chunksize=1) == [[7]] * 6


def test_a_busy_worker_is_not_sent_more_than_a_socketful(ctx: Any) -> None:
    # Queued behind a running task, too many bytes could fill the worker's socket and block the dispatcher:
    # a worker holding tasks is sent at most 64 KiB more at a time, the rest waits its turn.
    with Pool(1, context=ctx, prefetch=64) as pool:
        slow = pool.apply_async(t.sleep_then, ("slow", 0.5))
        items = [bytes([i]) * 20_000 for i in range(40)]
        many = pool.map_async(t.identity, items, chunksize=1)
        worker = t.process_engine(pool)._fleet.workers[0]
        deadline = time.monotonic() + 10  # the dispatcher thread may be the one handing them out
        while len(worker.inflight) < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(worker.inflight) == 1 + 3  # 3 x 20 kB fit in 64 KiB; the other 37 wait
        assert slow.get(30) == "slow"
        assert many.get(30) == items


FORK_WITHOUT_THREADS = """
import warnings
import procpar_core
from procpar_pool import Pool
import pool_targets as t
if __name__ == "__main__":
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # 3.12+: os.fork() warns when the process has other threads
        with Pool(3, context=procpar_core.get_context("fork")) as pool:
            assert pool.apply(t.square, (2,)) == 4
            assert pool.map(t.square, range(9), chunksize=1) == [x * x for x in range(9)]
            assert len(pool._pool) == 3
    print([str(w.message) for w in caught if "multi-threaded" in str(w.message)])
"""


@pytest.mark.skipif("fork" not in __import__("procpar_core").get_all_start_methods(), reason="no fork here")
def test_workers_are_forked_before_the_dispatcher_thread_exists(run_script: Any) -> None:
    # The pool's own thread starts after its workers, so forking them does not trip Python's warning about
    # forking a multi-threaded process.
    proc = run_script(FORK_WITHOUT_THREADS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_results_come_back_as_themselves_whatever_their_encoding(ctx: Any) -> None:
    # Chunks of plain ints or floats travel packed; anything else (bools, huge ints, mixes) by pickle.
    with Pool(2, context=ctx) as pool:
        ints = pool.map(t.identity, range(-50, 50))
        assert ints == list(range(-50, 50)) and all(type(x) is int for x in ints)
        floats = pool.map(t.identity, [x / 3 for x in range(100)], chunksize=50)
        assert floats == [x / 3 for x in range(100)] and all(type(x) is float for x in floats)
        mixed = [True, 2**80, 1, 1.5, None] * 10
        back = pool.map(t.identity, mixed, chunksize=50)
        assert back == mixed and [type(x) for x in back] == [type(x) for x in mixed]
        assert list(pool.imap(t.identity, range(40), chunksize=20)) == list(range(40))


def _fails_after(count: int) -> Any:
    yield from range(count)
    raise RuntimeError("the source broke")


@pytest.mark.parametrize(("chunksize", "before"), [(1, 5), (2, 4), (3, 3)])
def test_an_iterable_that_raises_ends_imap_with_its_error(ctx: Any, chunksize: int, before: int) -> None:
    # As in the stdlib (its suite checks it): the whole chunks read before the error run, the error takes the
    # place of the chunk it cut short.
    with Pool(2, context=ctx) as pool:
        it = pool.imap(t.square, _fails_after(5), chunksize=chunksize)
        assert [next(it) for _ in range(before)] == [x * x for x in range(before)]
        with pytest.raises(RuntimeError, match="the source broke"):
            next(it)
        with pytest.raises(StopIteration):
            next(it)
        assert pool.apply(t.square, (3,)) == 9


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_a_started_worker_imports_no_engine_typing_logging_or_futures(method: str, run_script: Any) -> None:
    # Each would cost every spawned worker milliseconds (the package's face loads Pool and the Executor lazily).
    # A program of its own: under pytest, a spawned child re-imports pytest's script as its main module.
    result = run_script(f"""
        import sys
        import procpar_core
        import procpar_pool  # Pool itself is used under the main guard only, as "import procpar" programs do

        HEAVY = ("typing", "logging", "concurrent.futures", "procpar_pool._process_engine", "procpar_pool._results",
                 "procpar_pool.engine")

        def heavy_modules_loaded(_):
            return [name for name in HEAVY if name in sys.modules]

        if __name__ == "__main__":
            with procpar_pool.Pool(1, context=procpar_core.get_context({method!r})) as pool:
                print("loaded:", pool.apply(heavy_modules_loaded, (None,)))
        """)
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout, result.stdout


def test_a_worker_that_cannot_start_stops_the_ones_that_did() -> None:
    # As CPython's suite checks (issue 19675), with a Process stand-in that has no sentinel.
    started: list[Any] = []

    class FailingProcess:
        def __init__(self, **kwargs: Any) -> None:
            self.name = "Fake Process"
            self.exitcode = None
            self.state = "made"

        def start(self) -> None:
            if len(started) == 2:
                raise OSError("cannot start a third")
            started.append(self)
            self.state = "started"

        def terminate(self) -> None:
            self.state = "stopping"

        def join(self) -> None:
            if self.state == "stopping":
                self.state = "stopped"

    class FakeContext:
        Process = FailingProcess

        def get_start_method(self) -> str:
            return "fork"

    with pytest.raises(OSError, match="cannot start a third"):
        Pool(4, context=FakeContext())  # type: ignore[arg-type]  # a stand-in on purpose
    assert [p.state for p in started] == ["stopped", "stopped"]
