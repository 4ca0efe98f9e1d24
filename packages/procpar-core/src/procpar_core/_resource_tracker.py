"""A tracker process that cleans up named resources (shared memory segments, folders) left behind.

A program registers each named resource it creates and unregisters it when it removes it. The tracker reads
those notices from a pipe whose write end every process of the program inherits; when the last of them
exits (normally or killed), the pipe reaches EOF and the tracker removes whatever is still registered,
warning about each kind it had to clean. One tracker serves a whole process tree: fork children inherit the
write end, spawn and forkserver children receive it at creation.
"""

from __future__ import annotations

import os
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["ensure_running", "register", "unregister", "getfd", "main", "sweep_dead_programs", "revive_if_dead",
           "start_deferred"]

_MAX_LINE = 512  # below PIPE_BUF: each notice is written atomically, whatever other processes write


def _unlink_shared_memory(name: str) -> None:
    """Remove a segment; ``FileNotFoundError`` if it is not there (as the stdlib's ``shm_unlink``)."""
    os.unlink(os.path.join("/dev/shm", name.lstrip("/")))


def _remove_folder(name: str) -> None:
    import shutil

    shutil.rmtree(name)


# The stdlib's table of resource types (tests and tools iterate over it, and call its functions directly) ...
_CLEANUP_FUNCS: dict[str, Callable[[str], None]] = {
    "noop": lambda name: None,
    "shared_memory": _unlink_shared_memory,
}
if sys.version_info >= (3, 13):
    _CLEANUP_FUNCS["dummy"] = lambda name: None  # for tests of the tracker itself, as 3.13's stdlib has
# ... and procpar's own types, which the tracker handles the same way.
_OWN_CLEANUP_FUNCS: dict[str, Callable[[str], None]] = {
    "folder": _remove_folder,
}


def _cleanup_func(rtype: str) -> Callable[[str], None] | None:
    return _CLEANUP_FUNCS.get(rtype) or _OWN_CLEANUP_FUNCS.get(rtype)


def _known_types() -> list[str]:
    return sorted({*_CLEANUP_FUNCS, *_OWN_CLEANUP_FUNCS})
_TRACKER_CODE = "from procpar_core._resource_tracker import main; main()"


class ResourceTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None
        self._exitcode: int | None = None  # the tracker's, once _stop() reaped it: 1 if it cleaned up leaks
        self._deferred_r: int | None = None  # the pipe's read end while the tracker is not started yet

    def getfd(self) -> int | None:
        self.ensure_running()
        return self._fd

    def _running(self) -> bool:
        if self._fd is None:
            return False
        if self._pid is None:
            return True  # inherited from the process that started it
        try:
            pid, _ = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def _check_alive(self) -> bool:
        """Whether the tracker still reads its pipe (a probe notice gets through)."""
        if self._fd is None:
            return False
        try:
            os.write(self._fd, b"PROBE:noop:\n")
        except OSError:
            return False
        return True

    def _stop(self) -> None:
        """Close this process's end of the pipe and, if this process started the tracker, wait for it (it
        cleans up what is still registered once no process holds the pipe)."""
        self.start_deferred(only_if_written=True)
        with self._lock:
            if self._deferred_r is not None:  # nothing was ever written: no tracker to start
                os.close(self._deferred_r)
                self._deferred_r = None
            if self._fd is None:
                return
            os.close(self._fd)
            self._fd = None
            if self._pid is not None:
                _, status = os.waitpid(self._pid, 0)
                self._exitcode = os.waitstatus_to_exitcode(status)
                self._pid = None

    def ensure_running(self, *, defer: bool = False) -> None:
        """Start the tracker unless this process tree already has one.

        ``defer``: make its pipe now (children forked or spawned from here write to it as usual) but start the
        tracker process itself later: at ``start_deferred()``, at the first notice from this process (the
        pool's parent unregisters every segment it receives), or at exit if a notice is waiting. A program's
        first pool then does not share its CPUs with a new interpreter starting up. A program killed before
        then leaves its registered resources to the next procpar program (``sweep_dead_programs``)."""
        with self._lock:
            if self._running():
                return
            if defer and self._fd is None:  # never started here (a dead tracker is replaced at once, below)
                # No thread, no timer: a process forking its pool's workers should have no other thread, and
                # one forked while a thread imports would inherit that import's lock.
                r, w = os.pipe()
                self._deferred_r, self._fd = r, w
                self._pid = None
                return
            self._launch_locked()

    def start_deferred(self, only_if_written: bool = False) -> None:
        """Start a deferred tracker now (``only_if_written``: only if a notice is waiting for it)."""
        with self._lock:
            r = self._deferred_r
            if r is None:
                return
            if only_if_written:
                import fcntl
                import struct
                import termios

                waiting = struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0\0\0\0"))[0]
                if not waiting:
                    return
            self._deferred_r = None
            self._spawn(r)

    def _launch_locked(self) -> None:
        if self._fd is not None:
            if self._pid is not None:
                import warnings

                # What it tracked is no longer tracked by anyone: say so, as the stdlib does.
                warnings.warn("resource_tracker: process died unexpectedly; starting a new one. Resources "
                              "registered with the old tracker may leak.", UserWarning, stacklevel=4)
            os.close(self._fd)
            self._fd = None
            self._pid = None
        self._exitcode = None
        r, w = os.pipe()
        try:
            self._spawn(r)
        except BaseException:
            os.close(w)
            raise
        self._fd = w

    def _spawn(self, r: int) -> None:
        """Start the tracker process reading ``r`` (closed here, whatever happens)."""
        try:
            from ._popen_spawn import _PACKAGE_ROOT
            from ._spawn import get_executable, interpreter_args

            code = f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); {_TRACKER_CODE}"
            argv = [get_executable(), *interpreter_args(), "-c", code, "--procpar-tracker", str(r)]
            import signal

            # Born with SIGINT and SIGTERM blocked: one sent before the tracker ignores them must not kill it
            # (it unblocks them once they are ignored).
            self._pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, r, r)],
                                       setsigmask=(signal.SIGINT, signal.SIGTERM))
        finally:
            os.close(r)

    def revive_if_dead(self) -> None:
        """If this process started a tracker that has died, start a new one (with the stdlib's warning); no
        tracker is started otherwise. Cheap: one waitpid()."""
        if self._pid is not None and not self._running():
            self.ensure_running()

    def _send(self, verb: str, name: str, rtype: str) -> None:
        if _cleanup_func(rtype) is None:
            raise ValueError(f"cannot track {rtype!r} resources; known types: {_known_types()}")
        line = f"{verb}:{rtype}:{name}\n".encode()
        if len(line) > _MAX_LINE:
            raise ValueError(f"resource name too long to track: {name!r}")
        self.ensure_running()
        if self._deferred_r is not None:
            self.start_deferred()  # this process has something to clean up: the tracker should be there
        assert self._fd is not None
        os.write(self._fd, line)

    def register(self, name: str, rtype: str) -> None:
        """Remove ``name`` (a resource of type ``rtype``) if the program ends without unregistering it."""
        self._send("REGISTER", name, rtype)

    def unregister(self, name: str, rtype: str) -> None:
        """``name`` was removed by the program: nothing to clean up."""
        self._send("UNREGISTER", name, rtype)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._pid = None
        if self._deferred_r is not None:
            # The parent starts the tracker; a child only writes (and must not hold the read end open).
            os.close(self._deferred_r)
            self._deferred_r = None

    def _adopt(self, fd: int) -> None:
        """Use the tracker whose write end a spawn or forkserver child received."""
        self._fd = fd
        self._pid = None


_resource_tracker = ResourceTracker()
ensure_running = _resource_tracker.ensure_running
register = _resource_tracker.register
unregister = _resource_tracker.unregister
getfd = _resource_tracker.getfd
revive_if_dead = _resource_tracker.revive_if_dead
start_deferred = _resource_tracker.start_deferred
os.register_at_fork(after_in_child=_resource_tracker._after_fork_in_child)


#: How long an exiting tracker waits for its sweep of dead programs' leftovers to finish.
_SWEEP_SECONDS = 30.0


def sweep_dead_programs() -> list[str]:
    """Remove what procpar programs that died with their tracker left behind (their names say whose they
    were: ``procpar-[kind-]<pid>-<start>-...``, see ``procpar_core.util.owned_name_prefix``); return the paths."""
    import re
    import shutil
    import tempfile

    from ._util import process_alive

    pattern = re.compile(r"procpar-(?:[a-z]+-)?(\d+)-(\d+)-")
    removed: list[str] = []
    for directory in (tempfile.gettempdir(), "/dev/shm"):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            match = pattern.match(name)
            if match is None or process_alive(int(match.group(1)), int(match.group(2))):
                continue
            path = os.path.join(directory, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            except OSError:
                continue
            removed.append(path)
    return removed


def main(fd: int | None = None) -> None:
    """The tracker process: collect notices until every writer is gone, then clean up."""
    import signal
    import warnings

    if fd is None:
        fd = int(sys.argv[sys.argv.index("--procpar-tracker") + 1])
    # The tracker must outlive Ctrl-C and a polite kill of its program to do its job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM))
    for stdio in (0,):
        try:
            os.close(stdio)
        except OSError:
            pass
    sweeper = threading.Thread(target=sweep_dead_programs, name="procpar-tracker-sweep", daemon=True)
    sweeper.start()
    registry: dict[str, set[str]] = {rtype: set() for rtype in _known_types()}
    with open(fd, "rb") as pipe:
        for raw in pipe:
            try:
                verb, rtype, name = raw.decode().rstrip("\n").split(":", 2)
                if verb == "REGISTER":
                    registry[rtype].add(name)
                elif verb == "UNREGISTER":
                    registry[rtype].discard(name)
                elif verb == "PROBE":
                    pass
                else:
                    raise ValueError(verb)
            except Exception:
                sys.stderr.write(f"procpar resource tracker: ignoring malformed notice {raw!r}\n")
    # A sweep cut short by the exit leaves what it was removing, and tempfile.gettempdir()'s probe file. (Bounded:
    # a folder that stalls its listing must not keep the tracker for ever.)
    sweeper.join(_SWEEP_SECONDS)
    leaked = False
    for rtype, names in registry.items():
        if not names:
            continue
        leaked = True
        warnings.warn(f"resource_tracker: There appear to be {len(names)} leaked {rtype} objects to clean up "
                      "at shutdown", UserWarning, stacklevel=1)
        func = _cleanup_func(rtype)
        assert func is not None
        for name in sorted(names):
            try:
                func(name)
            except FileNotFoundError as exc:
                if "procpar-" in name:
                    continue  # procpar registers its own names before it creates them: this one never came
                warnings.warn(f"resource_tracker: {name!r}: {exc}", UserWarning, stacklevel=1)
            except Exception as exc:
                warnings.warn(f"resource_tracker: {name!r}: {exc}", UserWarning, stacklevel=1)
    if leaked:
        sys.exit(1)  # the exit status says whether anything had leaked
