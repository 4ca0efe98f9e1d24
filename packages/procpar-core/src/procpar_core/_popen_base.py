"""What the fork, spawn and forkserver popens share: waiting on the sentinel, signalling, closing."""

from __future__ import annotations

# The numbers, not the enum: ``signal`` the module imports ``enum``; ``_signal`` is already loaded.
import _signal  # type: ignore[import-not-found,unused-ignore]
import os

from ._connection import _poll_one
from ._reduction import _InheritedFd
from ._util import Finalize

SIGTERM = _signal.SIGTERM
SIGKILL = _signal.SIGKILL


def _pidfd_works() -> bool:
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return False
    try:
        os.close(pidfd_open(os.getpid()))
    except OSError:  # kernel older than 5.3, or a sandbox that forbids it
        return False
    return True


# A pidfd is readable exactly when the child can be reaped. A pipe closed by the exiting child fires a little
# earlier (before the kernel marks it a zombie), so is_alive() right after wait() could still say True; and a
# child that closes all its fds would look finished. The pipe is the fallback for other POSIX systems.
USE_PIDFD = _pidfd_works()


class PopenBase:
    """What every popen does the same way: signal the child by pid, release resources on close."""

    method = ""
    pid: int
    sentinel: int

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.finalizer: Finalize | None = None

    def _send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self._send_signal(SIGTERM)

    def kill(self) -> None:
        self._send_signal(SIGKILL)

    def close(self) -> None:
        if self.finalizer is not None:
            self.finalizer()


class PicklingPopenMixin:
    """For spawn and forkserver: fds that pickled objects need are recorded and handed to the child."""

    _fds: list[int]

    @staticmethod
    def DupFd(index: int) -> _InheritedFd:
        return _InheritedFd(index)

    def duplicate_for_child(self, fd: int) -> int:
        # Equal fds share one slot; the child finds each by its index.
        try:
            return self._fds.index(fd)
        except ValueError:
            self._fds.append(fd)
            return len(self._fds) - 1


class ChildPopen(PopenBase):
    """A child we created with fork() or posix_spawn(): ours to waitpid()."""

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flag)
            except ChildProcessError:
                # Someone else reaped it (a SIGCHLD handler of the program, say): it has ended.
                return None
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None:
            # The sentinel first (waited on in slices in the main thread, for Ctrl-C), then reap.
            if not _poll_one(self.sentinel, timeout):
                return None
            return self.poll(os.WNOHANG if timeout == 0 else 0)
        return self.returncode
