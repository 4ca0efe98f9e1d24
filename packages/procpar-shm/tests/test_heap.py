from __future__ import annotations

import ctypes
import gc
import itertools
import os
import random
from typing import Any

import pytest

from procpar_shm import heap
from procpar_shm import sharedctypes as sc

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def fresh_heap() -> Any:
    old = heap.BufferWrapper._heap
    heap.BufferWrapper._heap = h = heap.Heap()
    yield h
    heap.BufferWrapper._heap = old


def _check_tiling(h: heap.Heap) -> None:
    blocks = []
    for seq in h._len_to_seq.values():
        blocks += [(h._arenas.index(a), start, stop) for a, start, stop in seq]
    for arena, used in h._allocated_blocks.items():
        blocks += [(h._arenas.index(arena), start, stop) for start, stop in used]
    blocks.sort()
    assert sum(stop - start for _, start, stop in blocks) == sum(a.size for a in h._arenas)
    for (a1, _, stop), (a2, start, _) in itertools.pairwise(blocks):
        if a1 == a2:
            assert stop == start
        else:
            assert stop == h._arenas[a1].size and start == 0


def test_blocks_tile_the_arenas_and_everything_goes_back(fresh_heap: heap.Heap) -> None:
    fresh_heap._DISCARD_FREE_SPACE_LARGER_THAN = 0
    rng = random.Random(7)
    live = []
    for _ in range(2000):
        live.append(heap.BufferWrapper(int(rng.lognormvariate(0, 1) * 1000)))
        if len(live) > 40:
            del live[rng.randrange(len(live))]
    _check_tiling(fresh_heap)
    rng.shuffle(live)
    live.clear()
    gc.collect()
    assert fresh_heap._n_frees == fresh_heap._n_mallocs
    assert not fresh_heap._arenas and not fresh_heap._allocated_blocks and not fresh_heap._len_to_seq


def test_big_arenas_are_unmapped_small_ones_kept(fresh_heap: heap.Heap) -> None:
    big = heap.BufferWrapper(8 << 20)
    small = heap.BufferWrapper(100)
    assert len(fresh_heap._arenas) == 2
    del big
    assert len(fresh_heap._arenas) == 1
    del small
    assert len(fresh_heap._arenas) == 1  # kept for the next small objects


def test_fresh_memory_is_zero_and_reused_memory_is_zeroed(fresh_heap: heap.Heap) -> None:
    a = sc.RawArray("b", 64)
    ctypes.memset(ctypes.addressof(a), 0x5A, 64)
    del a
    b = sc.RawArray("b", 64)  # the same block again: must read as zeroes
    assert bytes(b) == bytes(64)


def test_frees_from_the_garbage_collector_never_deadlock(fresh_heap: heap.Heap) -> None:
    thresholds = gc.get_threshold()
    gc.set_threshold(10)
    try:
        for _ in range(3000):
            a, b = heap.BufferWrapper(1), heap.BufferWrapper(1)
            a.buddy, b.buddy = b, a  # type: ignore[attr-defined]
    finally:
        gc.set_threshold(*thresholds)
    gc.collect()
    heap.BufferWrapper(1)  # runs the frees queued while the heap was busy
    assert not fresh_heap._pending_free_blocks


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="size must be >= 0"):
        heap.BufferWrapper(-1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_allocates_from_its_own_heap(fresh_heap: heap.Heap) -> None:
    parent_block = heap.BufferWrapper(16)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            child = heap.BufferWrapper(16)
            own = child._state[0][0] is not parent_block._state[0][0]
            os.write(w, b"1" if own else b"0")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    os.waitpid(pid, 0)
