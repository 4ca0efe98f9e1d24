"""What the pool raises: a task's own exception (with the worker's traceback) or why the task could not run."""

from __future__ import annotations

# The numbers from _signal (already loaded): ``signal`` the module imports ``enum``, ~3 ms of a first pool.
import _signal  # type: ignore[import-not-found,unused-ignore]
import os

from procpar_core import TimeoutError as TimeoutError

__all__ = ["RemoteTraceback", "WorkerLostError", "TaskTimeoutError", "PicklingFailedError", "MaybeEncodingError",
           "PoolClosedError", "MemoryLimitError", "TimeoutError", "describe_exit", "oom_kill_count"]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as the ``__cause__`` of the re-raised one."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class WorkerLostError(RuntimeError):
    """The worker running a task died before reporting its result (killed, crashed or exited).

    ``pid`` and ``exitcode`` are the dead worker's (as 3.15's ``BrokenProcessPool`` reports them).
    """

    def __init__(self, message: str, exitcode: int | None = None, pid: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode
        self.pid = pid

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.args[0], self.exitcode, self.pid))


class MemoryLimitError(WorkerLostError):
    """A task's worker grew past ``max_memory_per_child`` while running it and was stopped (and replaced)."""


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
    _signal.SIGKILL: "killed by SIGKILL: the kernel's out-of-memory killer, or someone ran kill -9",
    _signal.SIGSEGV: "segmentation fault: a crash in C code (an extension module or ctypes)",
    _signal.SIGBUS: "bus error: a crash in C code, or shared memory that went away",
    _signal.SIGABRT: "aborted: a C library called abort() (a failed assertion?)",
    _signal.SIGTERM: "terminated by SIGTERM",
    _signal.SIGFPE: "arithmetic fault in C code",
    _signal.SIGILL: "illegal instruction: a crash in C code",
}


def _read_counter(path: str, key: bytes) -> int | None:
    try:
        with open(path, "rb") as f:
            for line in f:
                name, _, value = line.partition(b" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        return None
    return None


_cgroup_files: tuple[int, list[str]] | None = None  # (pid, files): looked up once per process


def _memory_cgroup_files() -> list[str]:
    """The files counting OOM kills in this process's memory cgroup (v2 ``memory.events``, v1
    ``memory.oom_control``), as far as they can be found. Read once per process: every worker's start asks."""
    global _cgroup_files
    pid = os.getpid()
    if _cgroup_files is None or _cgroup_files[0] != pid:
        _cgroup_files = (pid, _find_memory_cgroup_files())
    return _cgroup_files[1]


def _find_memory_cgroup_files() -> list[str]:
    files: list[str] = []
    try:
        with open("/proc/self/cgroup", "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return files
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            files.append(f"/sys/fs/cgroup{path.rstrip('/')}/memory.events")
        elif "memory" in controllers.split(","):
            files += [f"/sys/fs/cgroup/memory{path.rstrip('/')}/memory.oom_control",
                      "/sys/fs/cgroup/memory/memory.oom_control"]
    return files


def oom_kill_count() -> int:
    """How many processes the kernel's out-of-memory killer has killed: in this process's memory cgroup when
    that can be read, else on the whole machine (``/proc/vmstat``); 0 where neither can."""
    for path in _memory_cgroup_files():
        count = _read_counter(path, b"oom_kill")
        if count is not None:
            return count
    return _read_counter("/proc/vmstat", b"oom_kill") or 0


def describe_exit(exitcode: int | None, oom_killed: bool = False) -> str:
    """Words for a worker's exit code: the signal and its likely cause, or the status. ``oom_killed``: the
    kernel's out-of-memory counter rose while the worker lived."""
    if exitcode is None:
        return "the worker disappeared"
    if exitcode < 0:
        import signal  # only when describing a death

        try:
            sig = signal.Signals(-exitcode)
        except ValueError:
            return f"the worker was killed by signal {-exitcode}"
        if oom_killed and sig == signal.SIGKILL:
            return ("the worker was killed by the kernel's out-of-memory killer (SIGKILL): the machine, or its "
                    "memory cgroup, ran out of memory; max_memory_per_child can stop workers before that")
        cause = _CAUSES.get(sig, "")
        return f"the worker was killed by {sig.name}" + (f" ({cause})" if cause else "")
    return (f"the worker exited with status {exitcode} while running it "
            "(os._exit() or sys.exit() in the task, or an interpreter shutdown)")
