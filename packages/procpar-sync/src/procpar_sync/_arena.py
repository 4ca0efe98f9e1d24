"""Shared memory for semaphores: arenas of anonymous memory passed between processes by file descriptor.

An arena is a memfd (an unlinked file elsewhere) mapped MAP_SHARED. Nothing has a name, so nothing can be
left behind: the kernel frees an arena when the last process holding its fd or mapping exits, SIGKILL
included. Slots are handed out by a process-local bump pointer and never reused; an arena goes away when
every object using it is gone from every process. A forked child starts a new arena for its own objects, so
two processes never allocate from one arena.

Arenas reach spawn and forkserver children inside the process object (their fd is passed at creation) and
are mapped once per process however many objects refer to them.
"""

from __future__ import annotations

import itertools
import mmap
import os
import sys
import weakref

from procpar_core.reduction import DupFd, assert_spawning

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Pages of a memfd cost nothing until touched, so an arena can be roomy: fewer mappings and fds.
ARENA_SIZE = 1 << 20
_ALIGN = 8


def _anonymous_fd(size: int) -> int:
    memfd_create = getattr(os, "memfd_create", None)
    fd: int
    if memfd_create is not None:
        fd = memfd_create("procpar-sync", getattr(os, "MFD_CLOEXEC", 1))
    else:  # pragma: no cover - macOS: an unlinked temp file serves the same purpose
        import tempfile

        fd, path = tempfile.mkstemp(prefix="procpar-sync-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        os.unlink(path)
    try:
        os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Arena:
    """One shared mapping, identified across processes by (creator pid, serial number)."""

    _serial = itertools.count()

    def __init__(self, size: int = ARENA_SIZE, fd: int | None = None, ident: tuple[int, int] | None = None):
        self.size = size
        self.fd = _anonymous_fd(size) if fd is None else fd
        self.buffer = mmap.mmap(self.fd, size)
        self.ident = ident if ident is not None else (os.getpid(), next(Arena._serial))
        self._next = 0
        _mapped[self.ident] = self

    def allocate(self, nbytes: int) -> int | None:
        """The offset of ``nbytes`` fresh bytes, or None if the arena is full."""
        nbytes = (nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
        offset = self._next
        if offset + nbytes > self.size:
            return None
        self._next = offset + nbytes
        return offset

    def __reduce__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (_rebuild_arena, (self.ident, self.size, DupFd(self.fd)))

    def __del__(self, _close: Any = os.close) -> None:
        # os.close is bound at definition: at interpreter exit the module's globals may already be gone.
        fd = getattr(self, "fd", -1)
        if fd >= 0:
            self.fd = -1
            try:
                _close(fd)
            except OSError:
                pass


# ident -> arena, for the arenas this process has mapped; weak, so an unused arena is unmapped.
_mapped: weakref.WeakValueDictionary[tuple[int, int], Arena] = weakref.WeakValueDictionary()
_current: Arena | None = None


def _rebuild_arena(ident: tuple[int, int], size: int, df: Any) -> Arena:
    arena = _mapped.get(ident)
    fd = df.detach()
    if arena is not None:
        if fd != arena.fd:
            os.close(fd)
        return arena
    return Arena(size, fd, ident)


def allocate(nbytes: int) -> tuple[Arena, int]:
    """A slot of ``nbytes`` shared bytes: (its arena, its offset)."""
    global _current
    if nbytes > ARENA_SIZE:
        arena = Arena(max(nbytes, ARENA_SIZE))
        offset = arena.allocate(nbytes)
        assert offset is not None
        return arena, offset
    current = _current
    offset = current.allocate(nbytes) if current is not None else None
    if current is None or offset is None:
        current = _current = Arena()
        offset = current.allocate(nbytes)
        assert offset is not None
    return current, offset


def _forget_current_arena() -> None:
    global _current
    _current = None


if sys.platform != "win32":
    os.register_at_fork(after_in_child=_forget_current_arena)
