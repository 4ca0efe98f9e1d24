"""``BaseProcess`` and the process-wide state: current process, parent, children, counter.

The start-method specific part (how a child is created, waited for and signalled) is a popen object made by
``type(self)._Popen``; everything here is common to fork, spawn and forkserver.
"""

from __future__ import annotations

import itertools
import os
import sys
import weakref

from . import _util
from ._log import info

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar, Iterable, Mapping, Protocol

    class Popen(Protocol):
        """The start-method specific handle on a child process."""

        pid: int
        returncode: int | None
        sentinel: int

        def poll(self, flag: int = ...) -> int | None: ...
        def wait(self, timeout: float | None = None) -> int | None: ...
        def terminate(self) -> None: ...
        def kill(self) -> None: ...
        def _send_signal(self, sig: int) -> None: ...
        def close(self) -> None: ...

__all__ = [
    "BaseProcess",
    "current_process",
    "parent_process",
    "active_children",
    "AuthenticationString",
]

try:
    ORIGINAL_DIR: str | None = os.path.abspath(os.getcwd())
except OSError:  # the working directory was removed
    ORIGINAL_DIR = None

# Children run the parent's main module as ``__mp_main__``: objects of classes defined there pickle as
# ``__mp_main__.Name`` in a child, and the parent finds them under the same name. A spawn child's bootstrap
# replaces the alias with the module it runs.
if "__main__" in sys.modules:
    sys.modules.setdefault("__mp_main__", sys.modules["__main__"])


class AuthenticationString(bytes):
    """An authkey: bytes that refuse to be pickled except into a child being created."""

    def __reduce__(self) -> tuple[Any, ...]:
        from ._reduction import get_spawning_popen

        if get_spawning_popen() is None:
            raise TypeError(
                "pickling an AuthenticationString object is disallowed for security reasons; "
                "a child receives its parent's authkey when it is created"
            )
        return AuthenticationString, (bytes(self),)


def _signal_name(signum: int) -> str:
    import signal

    try:
        return "SIG" + signal.Signals(signum).name[3:]
    except ValueError:
        return str(signum)


class BaseProcess:
    """A process object; the start method is chosen by the subclass (see ``procpar_core.Process``)."""

    _start_method: ClassVar[str | None] = None

    @staticmethod
    def _Popen(process_obj: "BaseProcess") -> Popen:
        raise NotImplementedError

    @staticmethod
    def _after_fork() -> None:
        _util._after_fork_in_child()

    def __init__(
        self,
        group: None = None,
        target: Callable[..., object] | None = None,
        name: str | None = None,
        args: Iterable[object] = (),
        kwargs: Mapping[str, object] | None = None,
        *,
        daemon: bool | None = None,
    ) -> None:
        if group is not None:
            raise ValueError("group argument must be None for now")
        count = next(_process_counter)
        self._identity: tuple[int, ...] = (*_current_process._identity, count)
        self._config: dict[str, Any] = _current_process._config.copy()
        self._parent_pid = os.getpid()
        self._parent_name = _current_process.name
        self._popen: Popen | None = None
        self._closed = False
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs) if kwargs else {}
        self._name = name or type(self).__name__ + "-" + ":".join(str(i) for i in self._identity)
        if daemon is not None:
            self.daemon = daemon
        _dangling.add(self)

    def _check_closed(self) -> None:
        if self._closed:
            raise ValueError("process object is closed")

    def run(self) -> None:
        """The child's activity: calls ``target(*args, **kwargs)``; override it in a subclass."""
        if self._target:
            self._target(*self._args, **self._kwargs)

    def start(self) -> None:
        """Start the child process; call at most once per object."""
        self._check_closed()
        if self._popen is not None:
            raise AssertionError("cannot start a process twice")
        if self._parent_pid != os.getpid():
            raise AssertionError("can only start a process object created by current process")
        if _current_process._config.get("daemon"):
            raise AssertionError("daemonic processes are not allowed to have children")
        _cleanup()
        self._popen = self._Popen(self)
        self._sentinel = self._popen.sentinel
        # The child has its own copy; the parent's target and arguments need not stay alive.
        del self._target, self._args, self._kwargs
        _children.add(self)

    def terminate(self) -> None:
        """Send SIGTERM to the child."""
        self._check_closed()
        if self._popen is not None:
            self._popen.terminate()

    def kill(self) -> None:
        """Send SIGKILL to the child."""
        self._check_closed()
        if self._popen is not None:
            self._popen.kill()

    def interrupt(self) -> None:
        """Send SIGINT to the child (3.14's ``Process.interrupt``): ``KeyboardInterrupt`` in it, unless it
        handles or ignores the signal. Its exit code is then -2 if it dies of it, 1 for an uncaught
        ``KeyboardInterrupt``."""
        import signal

        self._check_closed()
        if self._popen is not None:
            self._popen._send_signal(signal.SIGINT)

    def join(self, timeout: float | None = None) -> None:
        """Wait until the child ends, or ``timeout`` seconds pass; check ``exitcode`` to know which."""
        self._check_closed()
        if self._parent_pid != os.getpid():
            raise AssertionError("can only join a child process")
        if self._popen is None:
            raise AssertionError("can only join a started process")
        res = self._popen.wait(timeout)
        if res is not None:
            _children.discard(self)

    def is_alive(self) -> bool:
        """True from ``start()`` until the child ends."""
        self._check_closed()
        if self is _current_process:
            return True
        if self._parent_pid != os.getpid():
            raise AssertionError("can only test a child process")
        if self._popen is None:
            return False
        returncode = self._popen.poll()
        if returncode is None:
            return True
        _children.discard(self)
        return False

    def close(self) -> None:
        """Release the resources of a finished process; most methods then raise ``ValueError``."""
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError(
                    "Cannot close a process while it is still running. You should first call join() or terminate()."
                )
            self._popen.close()
            self._popen = None
            del self._sentinel
            _children.discard(self)
        self._closed = True

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, not {type(name).__name__}")
        self._name = name

    @property
    def daemon(self) -> bool:
        """Whether the child is daemonic: terminated when its parent exits, and not allowed children."""
        return bool(self._config.get("daemon", False))

    @daemon.setter
    def daemon(self, daemonic: bool) -> None:
        if self._popen is not None:
            raise AssertionError("process has already started")
        self._config["daemon"] = daemonic

    @property
    def authkey(self) -> bytes:
        return self._config["authkey"]  # type: ignore[no-any-return]

    @authkey.setter
    def authkey(self, authkey: bytes) -> None:
        self._config["authkey"] = AuthenticationString(authkey)

    @property
    def exitcode(self) -> int | None:
        """The child's exit code; ``-N`` if signal N ended it; None while it runs or before it starts."""
        self._check_closed()
        if self._popen is None:
            return None
        return self._popen.poll()

    @property
    def ident(self) -> int | None:
        self._check_closed()
        if self is _current_process:
            return os.getpid()
        return self._popen.pid if self._popen is not None else None

    pid = ident

    @property
    def sentinel(self) -> int:
        """A file descriptor that becomes ready (for ``wait()``) when the child ends."""
        self._check_closed()
        try:
            return self._sentinel  # type: ignore[no-any-return,unused-ignore]
        except AttributeError:
            raise ValueError("process not started") from None

    def __repr__(self) -> str:
        exitcode = None
        if self is _current_process:
            status = "started"
        elif self._closed:
            status = "closed"
        elif self._parent_pid != os.getpid():
            status = "unknown"
        elif self._popen is None:
            status = "initial"
        else:
            exitcode = self._popen.poll()
            status = "started" if exitcode is None else "stopped"
        info_ = [type(self).__name__, f"name={self._name!r}"]
        if self._popen is not None:
            info_.append(f"pid={self._popen.pid}")
        info_.append(f"parent={self._parent_pid}")
        info_.append(status)
        if exitcode is not None:
            info_.append(f"exitcode={'-' + _signal_name(-exitcode) if exitcode < 0 else exitcode}")
        if self.daemon:
            info_.append("daemon")
        return f"<{' '.join(info_)}>"

    # -- in the child ---------------------------------------------------------------------------------------

    def _bootstrap(self, parent_sentinel: int | None = None) -> int:
        """Run in the new child: reset per-process state, call ``run()``, return the exit code."""
        global _current_process, _parent_process, _process_counter, _children
        exitcode = 1  # what the exit says if even the handlers below fail
        try:
            if self._start_method is not None:
                sys.modules["procpar_core._context"]._default_state.method = self._start_method
            _process_counter = itertools.count(1)
            _children = set()
            _util.close_stdin()
            _current_process = self
            _parent_process = _ParentProcess(self._parent_name, self._parent_pid, parent_sentinel)
            threading = sys.modules.get("threading")
            if threading is not None:
                # After fork the main thread keeps its parent's native id; newer Pythons refresh it here.
                set_native_id = getattr(threading.main_thread(), "_set_native_id", None)
                if set_native_id is not None:
                    set_native_id()
            self._after_fork()
            info("child process calling self.run()")
            try:
                self.run()
                exitcode = 0
            except KeyboardInterrupt:
                # The exit sequence must know: it then waits for nothing that might never come.
                _util._interrupt_exit = True
                raise
            finally:
                if not _util._exit_from_atexit:
                    _util._exit_function()
        except SystemExit as exc:
            code = exc.code
            if code is None:
                exitcode = 0
            elif isinstance(code, int):
                exitcode = code
            else:
                sys.stderr.write(str(code) + "\n")
                exitcode = 1
        except BaseException:
            exitcode = 1
            import traceback

            sys.stderr.write(f"Process {self.name}:\n")
            traceback.print_exc()
        finally:
            _join_non_daemon_threads()
            info("process exiting with exitcode %d", exitcode)
            _util.flush_std_streams()
        return exitcode


def _join_non_daemon_threads() -> None:
    # The child ends with os._exit (fork) or after run() returns: threads it started still get to finish,
    # as they would at the end of a normal program.
    threading = sys.modules.get("threading")
    if threading is None:
        return
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon and thread.is_alive():
            thread.join()


class _MainProcess(BaseProcess):
    def __init__(self) -> None:
        self._identity = ()
        self._name = "MainProcess"
        self._parent_pid = None  # type: ignore[assignment]
        self._popen = None
        self._closed = False
        self._config = {"authkey": AuthenticationString(os.urandom(32)), "semprefix": "/pp"}

    def close(self) -> None:
        pass


class _ParentProcess(BaseProcess):
    """What ``parent_process()`` returns in a child: name, pid and a sentinel that fires when it exits."""

    def __init__(self, name: str, pid: int, sentinel: int | None) -> None:
        self._identity = ()
        self._name = name
        self._pid = pid
        self._parent_pid = None  # type: ignore[assignment]
        self._popen = None
        self._closed = False
        self._sentinel = sentinel  # type: ignore[assignment]
        self._config = {}

    def is_alive(self) -> bool:
        if self._sentinel is None:
            return True
        from ._connection import wait

        return not wait([self._sentinel], timeout=0)

    @property
    def ident(self) -> int:
        return self._pid

    pid = ident

    def join(self, timeout: float | None = None) -> None:
        if self._sentinel is None:
            raise ValueError("the parent's sentinel is not known in this process")
        from ._connection import wait

        wait([self._sentinel], timeout=timeout)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self._name!r} pid={self._pid}>"


_parent_process: BaseProcess | None = None
_current_process: BaseProcess = _MainProcess()
_process_counter = itertools.count(1)
_children: set[BaseProcess] = set()
# Every process object ever created and still referenced: the test suite's leak bookkeeping.
_dangling: "weakref.WeakSet[BaseProcess]" = weakref.WeakSet()


def current_process() -> BaseProcess:
    """The process object of the running process."""
    return _current_process


def parent_process() -> BaseProcess | None:
    """The parent's process object in a child; None in the main process."""
    return _parent_process


def _cleanup() -> None:
    # Reap children that have finished so they leave _children.
    for child in list(_children):
        popen = child._popen
        if popen is not None and popen.poll() is not None:
            _children.discard(child)


def active_children() -> list[BaseProcess]:
    """The running children of this process; finished ones are reaped as a side effect."""
    _cleanup()
    return list(_children)
