"""What the fork, spawn and forkserver popens share: waiting on the sentinel, signalling, closing."""

from __future__ import annotations

# The numbers, not the enum: ``signal`` the module imports ``enum``; ``_signal`` is already loaded.
import _signal  # type: ignore[import-not-found,unused-ignore]
import os

from ._connection import _poll_one
from ._util import Finalize

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    pass

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


class ChildPopen:
    """A child we created with fork() or posix_spawn(): ours to waitpid()."""

    method = ""
    pid: int
    sentinel: int

    def __init__(self) -> None:
        self.returncode: int | None = None
        self.finalizer: Finalize | None = None

    def duplicate_for_child(self, fd: int) -> int:
        raise NotImplementedError(f"the {self.method} start method does not pickle process objects")

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
            if timeout is not None:
                if not _poll_one(self.sentinel, timeout):
                    return None
                return self.poll(os.WNOHANG if timeout == 0 else 0)
            return self.poll(0)
        return self.returncode

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
