"""Which task a worker is running: eight bytes of shared memory the worker writes and the pool reads when the
worker dies, so that only that task fails and the ones the worker had not started yet go to another worker.

The worker writes the id (plus one; zero means "none") of the task it is about to run, and, while it unpickles
a message, the id of the message's first task: a crash while unpickling is blamed on one task, so a message
that kills every worker it reaches still makes progress, one task per death. A plain store into shared memory
costs no syscall, unlike an acknowledgement per task.
"""

from __future__ import annotations

import mmap
import os

from procpar_core.reduction import DupFd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class _Detachable(Protocol):
        def detach(self) -> int: ...

__all__ = ["RunningTask"]


def _anonymous_fd() -> int:
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd: int = memfd_create("procpar-pool-running", getattr(os, "MFD_CLOEXEC", 1))
    else:  # pragma: no cover - macOS: an unlinked temporary file serves the same purpose
        import tempfile

        fd, path = tempfile.mkstemp(prefix="procpar-running-")
        os.unlink(path)
    try:
        os.ftruncate(fd, mmap.PAGESIZE)
    except BaseException:
        os.close(fd)
        raise
    return fd


class RunningTask:
    """The id of the task a worker is running, in memory the pool and the worker share; and when the worker was
    ready for its first task (``pool.stats()``: its start-up time), written once."""

    __slots__ = ("_clock", "_map", "_view", "fd")

    def __init__(self, fd: int | None = None) -> None:
        self.fd = _anonymous_fd() if fd is None else fd
        self._map = mmap.mmap(self.fd, mmap.PAGESIZE)
        self._view = memoryview(self._map)[:8].cast("Q")
        self._clock = memoryview(self._map)[8:16].cast("d")  # time.monotonic() is one clock for all processes

    def mark_ready(self, when: float) -> None:
        self._clock[0] = when

    def ready_at(self) -> float | None:
        """When the worker was ready (its initializer done), None if not yet."""
        when = float(self._clock[0])
        return when if when > 0 else None

    def set(self, task_id: int) -> None:
        self._view[0] = task_id + 1

    def clear(self) -> None:
        self._view[0] = 0

    def get(self) -> int | None:
        """The task the worker was running (or unpickling), None if it was between messages."""
        value = int(self._view[0])
        return None if value == 0 else value - 1

    def __reduce__(self) -> tuple[Callable[[_Detachable], RunningTask], tuple[_Detachable]]:
        # Travels to spawn and forkserver workers inside their Process object, by file descriptor.
        return (_rebuild, (DupFd(self.fd),))

    def close(self) -> None:
        if self.fd < 0:
            return
        self._view.release()
        self._clock.release()
        self._map.close()
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = -1


def _rebuild(df: _Detachable) -> RunningTask:
    return RunningTask(df.detach())
