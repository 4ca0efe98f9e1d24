"""Finalizers, after-fork hooks, the temp dir and the exit sequence of a procpar process.

Kept free of heavy imports: it is on the spawn child's bootstrap path.
"""

from __future__ import annotations

import _thread
import atexit
import itertools
import os
import sys
import weakref

from ._log import debug, info, sub_debug

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping, NoReturn, Sequence

__all__ = [
    "Finalize",
    "register_after_fork",
    "get_temp_dir",
    "is_exiting",
    "close_fds",
    "SIGNAL_SLICE",
    "in_main_thread",
    "wait_in_slices",
    "exiting_on_interrupt",
    "process_start_time",
    "process_alive",
    "wait_process_exit",
    "program_identity",
    "owned_name_prefix",
]

_exiting = False

# -- waits that always see Ctrl-C --------------------------------------------------------------------------
#
# A signal's Python handler runs in the main thread between two bytecodes. A C call that releases the GIL
# and then sleeps (poll, read, a lock) wakes up for a signal that arrives while it sleeps (EINTR), but not
# for one that arrives in the instant before the sleep begins: that Ctrl-C would wait for the sleep to end,
# possibly forever. So no wait of procpar's in the main thread sleeps longer than SIGNAL_SLICE at a time
# (docs/reliability.md); other threads, which never run signal handlers, sleep as long as they like.

SIGNAL_SLICE = 0.1


def _main_thread_ident() -> int:
    threading = sys.modules.get("threading")
    if threading is not None:
        return int(threading.main_thread().ident or _thread.get_ident())
    return _thread.get_ident()  # threading not imported yet: this is the thread importing us, the main one


_main_ident = _main_thread_ident()


def _forked_main() -> None:
    global _main_ident
    _main_ident = _thread.get_ident()  # the thread that forked is the child's main thread


os.register_at_fork(after_in_child=_forked_main)


def in_main_thread() -> bool:
    """True in the thread that runs this process's signal handlers."""
    return _thread.get_ident() == _main_ident


def wait_in_slices(wait: Callable[[float | None], Any], timeout: float | None) -> Any:
    """``wait(timeout)``, in the main thread cut into calls of at most ``SIGNAL_SLICE`` seconds (so that a
    signal handler runs between them); returns the first truthy result, or the last result at the timeout."""
    if _thread.get_ident() != _main_ident:
        return wait(timeout)
    if timeout is None:
        while True:
            result = wait(SIGNAL_SLICE)
            if result:
                return result
    import time

    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        result = wait(min(SIGNAL_SLICE, max(remaining, 0.0)))
        if result or remaining <= SIGNAL_SLICE:
            return result


_interrupt_exit = False


# -- is that process still there? ----------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) of a process, from /proc; None if it is gone.
    Raises OSError when /proc cannot tell (another platform, a hidden /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except ProcessLookupError:
        return None
    # The command name is in parentheses and may hold anything: fields resume after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode("ascii", "replace"), int(fields[19])


def process_start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, as ``/proc/<pid>/stat`` says), so that a later
    look can tell it from another process given the same pid; None if it is gone or this cannot be known."""
    try:
        stat = _proc_stat(pid)
    except (OSError, ValueError, IndexError):
        return None
    return None if stat is None else stat[1]


# Known at import, so that a forked child inherits it (a spawned child is told it: see _spawn_child.prepare).
_program: tuple[int, int] = (os.getpid(), process_start_time(os.getpid()) or 0)


def wait_process_exit(pid: int, start_time: int | None, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a process that is not our child to exit; True if it did (or was
    already gone). Uses a pidfd where there is one, else looks every few milliseconds."""
    import time

    if not process_alive(pid, start_time):
        return True
    pidfd_open = getattr(os, "pidfd_open", None)
    fd = -1
    if pidfd_open is not None:
        try:
            fd = pidfd_open(pid)
        except OSError:
            fd = -1
    try:
        if fd >= 0 and process_alive(pid, start_time):  # still the same process now that we hold its pidfd
            import select

            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(max(0, int(timeout * 1000)))) or not process_alive(pid, start_time)
        deadline = time.monotonic() + timeout
        while process_alive(pid, start_time):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True
    finally:
        if fd >= 0:
            os.close(fd)


def process_alive(pid: int, start_time: int | None = None) -> bool:
    """False if process ``pid`` has exited (a zombie counts as exited), or if ``start_time`` is given and the
    pid now belongs to a process started at another time; True otherwise (including when nobody can tell)."""
    if pid == os.getpid():
        return True
    try:
        stat = _proc_stat(pid)
    except (OSError, ValueError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if stat is None or stat[0] in ("Z", "X", "x"):
        return False
    return start_time is None or (stat[1] & 0xFFFFFFFF) == (start_time & 0xFFFFFFFF)


def exiting_on_interrupt() -> bool:
    """True once this process is ending because of Ctrl-C (an uncaught ``KeyboardInterrupt``)."""
    return _interrupt_exit or getattr(sys, "last_type", None) is KeyboardInterrupt

# key -> Finalize; the key orders finalizers: (exitpriority, creation order)
_finalizer_registry: dict[tuple[Any, int], "Finalize"] = {}
_finalizer_counter = itertools.count()


class Finalize:
    """Call ``callback(*args, **kwargs)`` once: when ``obj`` is collected, when called, or at exit.

    With ``obj=None`` the finalizer lives until it is called or the process exits. At exit, finalizers
    whose ``exitpriority`` is not None run, highest priority first, later-created first among equals.
    """

    def __init__(
        self,
        obj: Any,
        callback: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        exitpriority: int | None = None,
    ) -> None:
        if exitpriority is not None and not isinstance(exitpriority, int):
            raise TypeError(f"exitpriority must be an int or None, not {type(exitpriority).__name__}")
        if obj is None and exitpriority is None:
            raise TypeError("a Finalize without an object needs an exitpriority, or it would never run")
        self._weakref: weakref.ref[Any] | None = None
        if obj is not None:
            self._weakref = weakref.ref(obj, self)
        self._callback: Callable[..., Any] | None = callback
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self._key: tuple[Any, int] | None = (exitpriority, next(_finalizer_counter))
        self._pid = os.getpid()
        _finalizer_registry[self._key] = self

    def __call__(self, wr: Any = None) -> Any:
        """Run the callback unless it already ran; return its result."""
        key = self._key
        if key is None or _finalizer_registry.pop(key, None) is None:
            sub_debug("finalizer no longer registered")
            return None
        callback = self._callback
        self._callback = self._weakref = self._key = None
        if self._pid != os.getpid():
            # A forked child inherited this finalizer: the resource is the parent's.
            sub_debug("finalizer ignored because the process forked")
            return None
        assert callback is not None
        sub_debug("finalizer calling %s with args %s and kwargs %s", callback, self._args, self._kwargs)
        result = callback(*self._args, **self._kwargs)
        self._args = ()
        self._kwargs = {}
        return result

    def cancel(self) -> None:
        """Forget the callback without calling it."""
        if self._key is not None:
            _finalizer_registry.pop(self._key, None)
        self._callback = self._weakref = self._key = None
        self._args = ()
        self._kwargs = {}

    def still_active(self) -> bool:
        return self._key in _finalizer_registry

    def __repr__(self) -> str:
        obj = self._weakref() if self._weakref is not None else None
        name = getattr(self._callback, "__qualname__", None) or getattr(self._callback, "__name__", None)
        if self._key is None:
            return "<Finalize object, dead>"
        text = f"<{type(self).__name__} object, callback={name}"
        if self._args:
            text += f", args={self._args!r}"
        if self._kwargs:
            text += f", kwargs={self._kwargs!r}"
        if self._key[0] is not None:
            text += f", exitpriority={self._key[0]!r}"
        if obj is not None:
            text += f", obj={type(obj).__name__}"
        return text + ">"


def _run_finalizers(minpriority: int | None = None) -> None:
    """Run registered finalizers with ``exitpriority >= minpriority`` (all non-None ones if None)."""
    if minpriority is None:
        def wanted(key: tuple[Any, int]) -> bool:
            return key[0] is not None
    else:
        def wanted(key: tuple[Any, int]) -> bool:
            return key[0] is not None and key[0] >= minpriority

    # A finalizer may create or cancel others, so re-read the registry until nothing is left to run.
    keys = sorted((k for k in list(_finalizer_registry) if wanted(k)), reverse=True)
    while keys:
        for key in keys:
            finalizer = _finalizer_registry.get(key)
            if finalizer is None:
                continue
            try:
                finalizer()
            except Exception:
                import traceback

                traceback.print_exc()
        keys = sorted((k for k in list(_finalizer_registry) if wanted(k)), reverse=True)
    if minpriority is None:
        _finalizer_registry.clear()


# (counter, id(obj), func) -> obj; weak values so a registration never keeps its object alive
_afterfork_registry: "weakref.WeakValueDictionary[tuple[int, int, Callable[[Any], Any]], Any]" = (
    weakref.WeakValueDictionary()
)
_afterfork_counter = itertools.count()


def register_after_fork(obj: Any, func: Callable[[Any], Any]) -> None:
    """Call ``func(obj)`` in every child process right after it starts (while ``obj`` is alive)."""
    _afterfork_registry[(next(_afterfork_counter), id(obj), func)] = obj


def _run_hooks(registry: "weakref.WeakValueDictionary[tuple[int, int, Callable[[Any], Any]], Any]",
               what: str) -> None:
    for (_, _, func), obj in sorted(registry.items(), key=lambda item: item[0][0]):
        try:
            func(obj)
        except Exception as exc:
            info("%s raised exception %s", what, exc)


def _run_after_forkers() -> None:
    _run_hooks(_afterfork_registry, "after forker")


_beforefork_registry: "weakref.WeakValueDictionary[tuple[int, int, Callable[[Any], Any]], Any]" = (
    weakref.WeakValueDictionary()
)


def register_before_fork(obj: Any, func: Callable[[Any], Any]) -> None:
    """Call ``func(obj)`` in this process just before it forks a procpar child (while ``obj`` is alive).

    What it prepares is what the child finds at its birth: a library hands a reference to the child here
    instead of taking one in the child, after the parent may already have let go of its own.
    """
    _beforefork_registry[(next(_afterfork_counter), id(obj), func)] = obj


def _run_before_forkers() -> None:
    _run_hooks(_beforefork_registry, "before forker")


def stdlib_module(name: str) -> Any:
    """The stdlib's ``multiprocessing.<name>`` if the program loaded it, else None; never imports it.

    Under the drop-in alias (``sys.modules["multiprocessing"]`` is procpar) the name holds procpar's own
    module, which is not the stdlib's: None then too.
    """
    module = sys.modules.get("multiprocessing." + name)
    if module is None or not getattr(module, "__name__", "").startswith("multiprocessing"):
        return None
    return module


def _after_fork_in_child() -> None:
    """Forget the parent's finalizers, then run the after-fork hooks."""
    _finalizer_registry.clear()
    if _afterfork_registry:
        _run_after_forkers()
    stdlib_util = stdlib_module("util")
    if stdlib_util is not None:
        # Objects of the stdlib used with procpar processes (a multiprocessing.queues.Queue built on a procpar
        # context, say) registered their fork hooks with the stdlib: run those too. Nothing is imported.
        stdlib_util._finalizer_registry.clear()
        stdlib_util._run_after_forkers()


def _run_stdlib_finalizers() -> None:
    # The stdlib's finalizers of this process (queue feeders that must flush, for instance); its child
    # bookkeeping is left alone: procpar's exit sequence already handles procpar's children.
    stdlib_util = stdlib_module("util")
    if stdlib_util is not None and stdlib_util._finalizer_registry:
        stdlib_util._run_finalizers(0)
        stdlib_util._run_finalizers()


def is_exiting() -> bool:
    """True once this process has begun its exit sequence."""
    return _exiting


# -- names of what a program leaves on the machine ------------------------------------------------------
#
# Files procpar makes under $TMPDIR and in /dev/shm carry the identity of the program that made them: the pid
# and start time of its first process (the one every other descends from). The resource tracker removes what a
# program registered when the program ends, even by SIGKILL; if the tracker died with it, the next procpar
# program's tracker finds these names, sees that their program is gone, and removes them.

def program_identity() -> tuple[int, int]:
    """(pid, start time) of the first process of this program; inherited by every child it starts."""
    return _program


def _adopt_program_identity(identity: tuple[int, int]) -> None:
    global _program
    _program = (int(identity[0]), int(identity[1]))


def owned_name_prefix(kind: str = "") -> str:
    """``procpar-[kind-]<pid>-<start>-``: how names of files this program makes begin (see above)."""
    pid, start = program_identity()
    return f"procpar-{kind + '-' if kind else ''}{pid}-{start}-"


def _remove_temp_dir(rmtree: Callable[..., Any], tempdir: str) -> None:
    rmtree(tempdir, ignore_errors=True)
    _untrack_folder(tempdir)
    from ._process import current_process

    current_process()._config["tempdir"] = None


def track_folder(path: str) -> None:
    """Have the resource tracker remove ``path`` if the program ends without removing it (SIGKILL)."""
    try:
        from . import _resource_tracker

        _resource_tracker.register(path, "folder")
    except (OSError, RuntimeError, ValueError) as exc:
        info("could not register %s with the resource tracker: %s", path, exc)


def _untrack_folder(path: str) -> None:
    tracker = sys.modules.get("procpar_core._resource_tracker")
    if tracker is not None and tracker._resource_tracker._fd is not None:
        try:
            tracker.unregister(path, "folder")
        except (OSError, ValueError):
            pass


def get_temp_dir() -> str:
    """A private directory for this process tree, made on first use and removed when its creator exits (or by
    the resource tracker, if it is killed)."""
    from ._process import current_process

    config = current_process()._config
    tempdir = config.get("tempdir")
    if tempdir is None or not os.path.isdir(tempdir):
        import shutil
        import tempfile

        tempdir = tempfile.mkdtemp(prefix=owned_name_prefix())
        info("created temp directory %s", tempdir)
        track_folder(tempdir)
        Finalize(None, _remove_temp_dir, args=(shutil.rmtree, tempdir), exitpriority=-100)
        config["tempdir"] = tempdir
    return tempdir


def close_fds(*fds: int) -> None:
    """Close each fd, ignoring the ones already closed."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def close_all_fds_except(fds: Sequence[int]) -> None:
    """Close every fd of this process except the ones listed (and stdio is not special: list it)."""
    keep = sorted(set(fds) | {-1})
    try:
        max_fd = os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        max_fd = 256
    keep.append(max_fd)
    for low, high in itertools.pairwise(keep):
        os.closerange(low + 1, high)


def flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (AttributeError, ValueError):
            pass


class _DevNullStdin:
    """``sys.stdin`` of a child: /dev/null, opened on first use.

    Opening a text file costs ~0.4 ms in a fresh fork (mostly copy-on-write faults), a third of a raw fork;
    most children never read stdin.
    """

    def _open(self) -> Any:
        f = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - it becomes sys.stdin
        if sys.stdin is self:
            sys.stdin = f
        return f

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)

    def __iter__(self) -> Any:
        return iter(self._open())

    def __next__(self) -> str:
        line: str = next(self._open())
        return line

    def __enter__(self) -> Any:
        return self._open()

    def __exit__(self, *exc_info: object) -> None:
        sys.stdin.close()

    def __repr__(self) -> str:
        return f"<stdin of a child process: {os.devnull}, not opened yet>"


def close_stdin() -> None:
    """A child process must not read the parent's terminal: stdin becomes /dev/null."""
    # The parent's stdin object is not closed: sys.__stdin__ keeps it, and it never owns fd 0 anyway.
    if sys.stdin is not None and not isinstance(sys.stdin, _DevNullStdin):
        sys.stdin = _DevNullStdin()  # type: ignore[assignment,unused-ignore]


# After Ctrl-C, how long children get to end by themselves (they saw the same SIGINT, if it came from the
# terminal) before they are terminated, then killed: a program told to stop must not wait for a child that
# ignores the signal or is stuck.
_INTERRUPT_GRACE = 1.0


def _stop_children_after_interrupt(active_children: Callable[[], list[Any]]) -> None:
    import time

    deadline = time.monotonic() + _INTERRUPT_GRACE
    for child in active_children():
        child.join(max(0.0, deadline - time.monotonic()))
    for signal_method in ("terminate", "kill"):
        alive = [child for child in active_children() if child.exitcode is None]
        if not alive:
            return
        for child in alive:
            info("interrupted: calling %s() for process %s", signal_method, child.name)
            getattr(child, signal_method)()
        deadline = time.monotonic() + 0.5
        for child in alive:
            child.join(max(0.0, deadline - time.monotonic()))


def _exit_function() -> None:
    """Exit sequence: early finalizers, terminate daemonic children, join the rest, remaining finalizers."""
    global _exiting
    if _exiting:
        return
    _exiting = True
    info("process shutting down")
    debug("running all 'atexit' finalizers with priority >= 0")
    if _finalizer_registry:
        _run_finalizers(0)

    process = sys.modules["procpar_core._process"]
    if process._children:
        active_children = process.active_children
        for child in active_children():
            if child.daemon:
                info("calling terminate() for daemon %s", child.name)
                popen = child._popen
                if popen is not None:
                    popen.terminate()
        if exiting_on_interrupt():
            _stop_children_after_interrupt(active_children)
        for child in active_children():
            info("calling join() for process %s", child.name)
            child.join()
    debug("running the remaining 'atexit' finalizers")
    if _finalizer_registry:
        _run_finalizers()
    _run_stdlib_finalizers()
    tracker = sys.modules.get("procpar_core._resource_tracker")
    if tracker is not None:
        # A tracker deferred and never started: start it now if a child registered something (the children
        # are gone: it cleans up whatever they left), so nothing is left behind for want of one.
        tracker.start_deferred(only_if_written=True)


atexit.register(_exit_function)

# From 3.13 on, a fork or forkserver child runs the atexit handlers registered in it (not its parent's)
# before os._exit, and the exit sequence runs as one of them (gh-83856). Earlier versions run none there.
CHILD_RUNS_ATEXIT = sys.version_info >= (3, 13)
_exit_from_atexit = False


def enter_forked_child() -> None:
    """In a child made by fork (directly or by the forkserver), before its bootstrap."""
    global _exit_from_atexit
    if CHILD_RUNS_ATEXIT:
        _exit_from_atexit = True
        atexit._clear()
        atexit.register(_exit_function)


def leave_forked_child(code: int) -> NoReturn:
    """The end of a forked child: its atexit handlers (see CHILD_RUNS_ATEXIT), then ``os._exit(code)``."""
    try:
        if _exit_from_atexit:
            atexit._run_exitfuncs()
    finally:
        os._exit(code)
