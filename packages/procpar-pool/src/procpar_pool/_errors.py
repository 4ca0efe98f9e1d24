"""What the pool raises: a task's own exception (with the worker's traceback) or why the task could not run."""

from __future__ import annotations

import signal

from procpar_core import TimeoutError as TimeoutError

__all__ = ["RemoteTraceback", "WorkerLostError", "TaskTimeoutError", "PicklingFailedError", "MaybeEncodingError",
           "PoolClosedError",
           "TimeoutError", "describe_exit"]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as the ``__cause__`` of the re-raised one."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class WorkerLostError(RuntimeError):
    """The worker running a task died before reporting its result (killed, crashed or exited)."""

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.args[0], self.exitcode))


class TaskTimeoutError(TimeoutError):
    """A task ran past its time limit; its worker was stopped and replaced."""


class PicklingFailedError(RuntimeError):
    """A task's function, argument, result or exception could not be pickled to cross between processes."""


class MaybeEncodingError(PicklingFailedError):
    """A task's result could not be pickled to send it back (the stdlib's name; ``exc`` and ``value`` are
    the reprs of the pickling error and of the object)."""

    def __init__(self, message: str, exc: str = "", value: str = "") -> None:
        super().__init__(message)
        self.exc = exc
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.args[0], self.exc, self.value))


class PoolClosedError(ValueError):
    """The pool was closed or terminated before the task could run."""


_CAUSES = {
    signal.SIGKILL: "killed by SIGKILL: the kernel's out-of-memory killer, or someone ran kill -9",
    signal.SIGSEGV: "segmentation fault: a crash in C code (an extension module or ctypes)",
    signal.SIGBUS: "bus error: a crash in C code, or shared memory that went away",
    signal.SIGABRT: "aborted: a C library called abort() (a failed assertion?)",
    signal.SIGTERM: "terminated by SIGTERM",
    signal.SIGFPE: "arithmetic fault in C code",
    signal.SIGILL: "illegal instruction: a crash in C code",
}


def describe_exit(exitcode: int | None) -> str:
    """Words for a worker's exit code: the signal and its likely cause, or the status."""
    if exitcode is None:
        return "the worker disappeared"
    if exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"the worker was killed by signal {-exitcode}"
        cause = _CAUSES.get(sig, "")
        return f"the worker was killed by {sig.name}" + (f" ({cause})" if cause else "")
    return (f"the worker exited with status {exitcode} while running it "
            "(os._exit() or sys.exit() in the task, or an interpreter shutdown)")
