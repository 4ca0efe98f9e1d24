"""The Executor keeps concurrent.futures' promises: states, cancel(), shutdown(wait, cancel_futures), map."""

from __future__ import annotations

import itertools
import os
import threading
from concurrent import futures
from pathlib import Path
from typing import Any, Iterator

import pool_targets as t
import pytest

import procpar_pool

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Path]:
    """A file whose creation lets every ``wait_for_file`` task finish (opened at the end in any case)."""
    path = tmp_path / "gate"
    yield path
    path.touch()


def test_queued_futures_stay_pending_and_can_be_cancelled(ctx: Any, gate: Path) -> None:
    with procpar_pool.Executor(1, mp_context=ctx) as ex:
        fs = [ex.submit(t.wait_for_file, str(gate)) for _ in range(6)]
        assert [f.running() for f in fs] == [True, True, False, False, False, False]
        assert fs[5].cancel() is True
        assert fs[5].cancelled()
        assert fs[0].cancel() is False  # running
        gate.touch()
        assert [f.result(60) for f in fs[:5]] == [str(gate)] * 5
        with pytest.raises(futures.CancelledError):
            fs[5].result()


def test_shutdown_cancel_futures_lets_running_ones_finish(ctx: Any, gate: Path) -> None:
    ex = procpar_pool.Executor(1, mp_context=ctx)
    fs = [ex.submit(t.wait_for_file, str(gate)) for _ in range(5)]
    opener = threading.Timer(0.2, gate.touch)
    opener.start()
    ex.shutdown(wait=True, cancel_futures=True)
    opener.join()
    assert [f.done() for f in fs] == [True] * 5
    assert [f.cancelled() for f in fs] == [False, False, True, True, True]
    assert [f.result() for f in fs[:2]] == [str(gate)] * 2
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(t.square, 1)


def test_shutdown_without_wait_still_runs_what_was_submitted(ctx: Any, gate: Path) -> None:
    ex = procpar_pool.Executor(1, mp_context=ctx)
    fs = [ex.submit(t.wait_for_file, str(gate)) for _ in range(4)]
    ex.shutdown(wait=False)
    gate.touch()
    assert [f.result(60) for f in fs] == [str(gate)] * 4
    ex.shutdown(wait=True)


@pytest.mark.parametrize("how", ["terminate_workers", "kill_workers"])
def test_terminate_and_kill_workers(ctx: Any, gate: Path, how: str) -> None:
    ex = procpar_pool.Executor(2, mp_context=ctx)
    fs = [ex.submit(t.wait_for_file, str(gate)) for _ in range(6)]
    assert fs[0].running()
    pids = [pid for p in ex._pool._pool if (pid := p.pid) is not None]
    assert len(pids) == 2
    getattr(ex, how)()
    assert all(f.done() for f in fs)
    assert all(f.cancelled() for f in fs[4:])
    for f in fs[:4]:
        assert isinstance(f.exception(), (procpar_pool.PoolClosedError, procpar_pool.WorkerLostError))
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(t.square, 1)


def test_a_dead_worker_fails_its_future_with_its_pid_and_exit_code(ctx: Any) -> None:
    with procpar_pool.Executor(1, mp_context=ctx) as ex:
        worker_pid = ex.submit(t.pid).result(60)
        future = ex.submit(t.die, "exit")
        exc = future.exception(60)
        assert isinstance(exc, procpar_pool.WorkerLostError)
        assert exc.pid == worker_pid
        assert exc.exitcode is not None
        assert f"worker pid {worker_pid}, exit code {exc.exitcode}" in str(exc)
        assert ex.submit(t.square, 3).result(60) == 9


def test_map_with_buffersize_reads_the_iterable_lazily(ctx: Any) -> None:
    counter = itertools.count()
    taken: list[int] = []

    def numbers() -> Iterator[int]:
        for i in counter:
            taken.append(i)
            yield i

    with procpar_pool.Executor(2, mp_context=ctx) as ex:
        results = ex.map(t.square, numbers(), buffersize=3)
        assert [next(results) for _ in range(5)] == [0, 1, 4, 9, 16]
        assert len(taken) <= 5 + 3 + 1  # what was consumed, the window, and one being submitted
        assert list(ex.map(t.square, range(10), chunksize=3)) == [x * x for x in range(10)]
        for bad, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError)):
            with pytest.raises(error, match="buffersize"):
                ex.map(t.square, range(3), buffersize=bad)  # type: ignore[arg-type]


def test_pool_imap_buffersize(ctx: Any) -> None:
    with procpar_pool.Pool(2, context=ctx) as pool:
        assert list(pool.imap(t.square, range(20), buffersize=2)) == [x * x for x in range(20)]
        assert sorted(pool.imap_unordered(t.square, range(20), 2, buffersize=3)) == sorted(x * x for x in range(20))
        with pytest.raises(ValueError, match="buffersize"):
            pool.imap(t.square, range(3), buffersize=0)
        with pytest.raises(TypeError, match="buffersize"):
            pool.imap(t.square, range(3), buffersize="2")  # type: ignore[arg-type]
