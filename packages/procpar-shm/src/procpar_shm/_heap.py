"""The shared heap behind sharedctypes: anonymous shared arenas cut into blocks, given back when freed.

Arenas are procpar-sync's: memfd mappings that reach spawn and forkserver children by file descriptor and
vanish with the last process that maps them, SIGKILL included. Within a process the heap hands out
best-fit blocks from the free space of its arenas and coalesces neighbours when a block is freed; an
arena whose blocks are all free is dropped (its memory goes back to the kernel) once it is larger than
``_DISCARD_FREE_SPACE_LARGER_THAN``; smaller empty arenas are kept for the next allocations.

A block is freed by a finalizer when the object owning it is collected, possibly by the garbage collector in
the middle of another allocation on the same thread: a free that finds the heap locked is queued and done
by the next call that gets the lock, so the GC never waits for a lock its own thread holds.

A forked child starts a heap of its own: it must not carve blocks out of free space its parent may hand out
too. Blocks it inherited stay valid (the mapping is shared) and are never freed by the child.
"""

from __future__ import annotations

import bisect
import mmap
import os
import sys
import threading

from procpar_core.util import Finalize
from procpar_sync.lowlevel import Arena

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Tuple

    Block = Tuple[Arena, int, int]

__all__ = ["Arena", "Heap", "BufferWrapper"]

_PAGE = mmap.PAGESIZE


def _round_up(n: int, multiple: int) -> int:
    return (n + multiple - 1) // multiple * multiple


class Heap:
    """Best-fit allocator over shared arenas (one per process; see the module docstring)."""

    _alignment = 8
    # Empty arenas at most this large are kept for reuse; larger ones are unmapped at once.
    _DISCARD_FREE_SPACE_LARGER_THAN = 4 << 20
    # New arenas double in size up to this, so many small objects need few mappings.
    _DOUBLE_ARENA_SIZE_UNTIL = 4 << 20

    def __init__(self, size: int = _PAGE) -> None:
        self._lastpid = os.getpid()
        self._lock = threading.Lock()
        self._size = size
        self._arenas: list[Arena] = []
        # Free blocks: by length (sorted lengths for best fit) and by either end (for coalescing).
        self._lengths: list[int] = []
        self._len_to_seq: dict[int, list[Block]] = {}
        self._start_to_block: dict[tuple[Arena, int], Block] = {}
        self._stop_to_block: dict[tuple[Arena, int], Block] = {}
        # Blocks in use, per arena: (start, stop).
        self._allocated_blocks: dict[Arena, set[tuple[int, int]]] = {}
        # How far into each arena blocks have ever reached: memory beyond it is still the kernel's zeroes.
        self._high_water: dict[Arena, int] = {}
        self._pending_free_blocks: list[Block] = []
        self._n_mallocs = 0
        self._n_frees = 0

    # -- free-space bookkeeping ----------------------------------------------------------------------------

    def _add_free(self, block: Block) -> None:
        arena, start, stop = block
        before = self._stop_to_block.get((arena, start))
        if before is not None:
            self._remove_free(before)
            start = before[1]
        after = self._start_to_block.get((arena, stop))
        if after is not None:
            self._remove_free(after)
            stop = after[2]
        merged = (arena, start, stop)
        length = stop - start
        seq = self._len_to_seq.get(length)
        if seq is None:
            seq = self._len_to_seq[length] = []
            bisect.insort(self._lengths, length)
        seq.append(merged)
        self._start_to_block[(arena, start)] = merged
        self._stop_to_block[(arena, stop)] = merged

    def _remove_free(self, block: Block) -> None:
        arena, start, stop = block
        del self._start_to_block[(arena, start)]
        del self._stop_to_block[(arena, stop)]
        length = stop - start
        seq = self._len_to_seq[length]
        seq.remove(block)
        if not seq:
            del self._len_to_seq[length]
            del self._lengths[bisect.bisect_left(self._lengths, length)]

    def _take_free(self, size: int) -> Block:
        i = bisect.bisect_left(self._lengths, size)
        if i == len(self._lengths):
            return self._new_arena(size)
        block = self._len_to_seq[self._lengths[i]][-1]
        self._remove_free(block)
        return block

    def _new_arena(self, size: int) -> Block:
        length = _round_up(max(self._size, size), _PAGE)
        if self._size < self._DOUBLE_ARENA_SIZE_UNTIL:
            self._size *= 2
        arena = Arena(length)
        self._arenas.append(arena)
        self._high_water[arena] = 0
        return (arena, 0, length)

    def _drop_arena_if_empty(self, arena: Arena) -> None:
        if self._allocated_blocks.get(arena):
            return
        self._allocated_blocks.pop(arena, None)
        if arena.size <= self._DISCARD_FREE_SPACE_LARGER_THAN:
            return
        self._remove_free((arena, 0, arena.size))
        self._arenas.remove(arena)
        del self._high_water[arena]

    # -- allocation ----------------------------------------------------------------------------------------

    def malloc(self, size: int) -> tuple[Block, bool]:
        """A block of at least ``size`` bytes and whether its memory is untouched (all zero)."""
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        if size > sys.maxsize:
            raise OverflowError(f"size {size} is too large")
        if os.getpid() != self._lastpid:
            self.__init__()  # type: ignore[misc]  # a forked child: see the module docstring
        with self._lock:
            self._n_mallocs += 1
            self._free_pending()
            size = _round_up(max(size, 1), self._alignment)
            arena, start, stop = self._take_free(size)
            end = start + size
            if end < stop:
                self._add_free((arena, end, stop))
            self._allocated_blocks.setdefault(arena, set()).add((start, end))
            fresh = start >= self._high_water[arena]
            if end > self._high_water[arena]:
                self._high_water[arena] = end
            return (arena, start, end), fresh

    def free(self, block: Block) -> None:
        """Give ``block`` back (from a finalizer: never waits for the lock)."""
        if os.getpid() != self._lastpid:
            return  # inherited from the parent's heap: the parent frees it
        if not self._lock.acquire(False):
            self._pending_free_blocks.append(block)
            return
        try:
            self._free_pending()
            self._free_now(block)
        finally:
            self._lock.release()

    def _free_now(self, block: Block) -> None:
        self._n_frees += 1
        arena, start, stop = block
        self._add_free(block)
        self._allocated_blocks[arena].remove((start, stop))
        self._drop_arena_if_empty(arena)

    def _free_pending(self) -> None:
        while self._pending_free_blocks:
            self._free_now(self._pending_free_blocks.pop())


class BufferWrapper:
    """``size`` bytes of the shared heap, freed when this wrapper is collected in the process that made it."""

    _heap = Heap()

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        if size > sys.maxsize:
            raise OverflowError(f"size {size} is too large")
        heap = BufferWrapper._heap
        block, self.fresh = heap.malloc(size)
        self._state = (block, size)
        Finalize(self, heap.free, args=(block,))

    def __getstate__(self) -> tuple[Any, ...]:
        return self._state

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._state = state
        self.fresh = False

    def create_memoryview(self) -> memoryview:
        (arena, start, _stop), size = self._state
        return memoryview(arena.buffer)[start : start + size]
