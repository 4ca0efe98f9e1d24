"""How work flows: imap's read-ahead, prefetch, progress bars, large buffers in shared memory."""

from __future__ import annotations

import os
import time
from typing import Any

import pool_targets as t
import pytest

from procpar_pool import (
    Pool,
    WorkerLostError,
)
from procpar_pool._scheduling import queue_depth

pytestmark = pytest.mark.timeout(90)


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


def test_default_read_ahead_widens_for_short_tasks_but_stays_bounded(pool: Any) -> None:
    pulled: list[int] = []
    it = pool.imap(t.square, t.endless(pulled))
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
