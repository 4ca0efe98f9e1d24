"""Contexts: one object per start method carrying the API, and the default context that picks one.

The chosen start method is process-wide state (``_default_state``) shared by every family of contexts, so the
meta-package's richer contexts (docs/design.md section 1) and these core ones switch together.
"""

from __future__ import annotations

import os
import sys

from . import _process
from ._errors import AuthenticationError, BufferTooShort, ProcessError, TimeoutError
from ._process import BaseProcess

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    import logging
    from typing import Any, ClassVar, Mapping, Sequence

    from ._connection import Connection

__all__ = [
    "BaseContext",
    "DefaultContext",
    "ForkContext",
    "SpawnContext",
    "ForkServerContext",
    "Process",
    "ForkProcess",
    "SpawnProcess",
    "ForkServerProcess",
    "default_start_method",
]


def default_start_method() -> str:
    """The start method the running CPython's ``multiprocessing`` uses by default on this platform."""
    if sys.platform in ("darwin", "win32"):
        return "spawn"
    return "forkserver" if sys.version_info >= (3, 14) else "fork"


def _available_methods() -> list[str]:
    if sys.platform == "win32":
        return ["spawn"]
    methods = ["fork", "spawn", "forkserver"]
    default = default_start_method()
    methods.remove(default)
    return [default, *methods]


class _DefaultState:
    """The start method this process committed to (None until first use or ``set_start_method``)."""

    method: str | None = None


_default_state = _DefaultState()


def _force_start_method(method: str | None) -> None:
    _default_state.method = method


class BaseContext:
    """The multiprocessing API bound to one start method (or to the default one)."""

    ProcessError = ProcessError
    BufferTooShort = BufferTooShort
    TimeoutError = TimeoutError
    AuthenticationError = AuthenticationError

    Process: ClassVar[type[BaseProcess]]
    _name: ClassVar[str | None] = None
    # Contexts of the same family (core, or the meta-package's), by start method name.
    _family: Mapping[str, "BaseContext"]

    current_process = staticmethod(_process.current_process)
    parent_process = staticmethod(_process.parent_process)
    active_children = staticmethod(_process.active_children)

    def cpu_count(self) -> int:
        """The number of CPUs in the system."""
        count = os.cpu_count()
        if count is None:
            raise NotImplementedError("cannot determine number of cpus")
        return count

    def Pipe(self, duplex: bool = True) -> tuple[Connection, Connection]:
        """A pair of connected ``Connection`` objects (see ``procpar_core.connection.Pipe``)."""
        from ._connection import Pipe

        return Pipe(duplex)

    def get_context(self, method: str | None = None) -> "BaseContext":
        """The context for start method ``method`` (this one if None)."""
        if method is None:
            return self
        try:
            ctx = self._family[method]
        except KeyError:
            raise ValueError(
                f"cannot find context for {method!r}: the start methods here are {_available_methods()}"
            ) from None
        if method not in _available_methods():
            raise ValueError(f"start method {method!r} is not available on {sys.platform}")
        return ctx

    def get_start_method(self, allow_none: bool = False) -> str | None:
        return self._name

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        raise ValueError("cannot set start method of concrete context")

    def get_all_start_methods(self) -> list[str]:
        """The start methods available on this platform; the first is the default."""
        return _available_methods()

    def set_executable(self, executable: str) -> None:
        """The interpreter that spawn children and the forkserver run."""
        from ._spawn import set_executable

        set_executable(executable)

    def set_forkserver_preload(self, module_names: Sequence[str], *, on_error: str = "ignore") -> None:
        """Modules the forkserver imports once, so that its children start with them loaded; ``on_error``:
        ``"ignore"``, ``"warn"`` or ``"fail"`` when one cannot be imported."""
        from ._forkserver import set_forkserver_preload

        set_forkserver_preload(module_names, on_error=on_error)

    def get_logger(self) -> logging.Logger:
        from ._log import get_logger

        return get_logger()

    def log_to_stderr(self, level: int | str | None = None) -> logging.Logger:
        from ._log import log_to_stderr

        return log_to_stderr(level)

    def allow_connection_pickling(self) -> None:
        """Kept for compatibility: procpar connections and sockets are always picklable."""
        from . import _reduction

        _reduction._register_lazy_reducers()

    def freeze_support(self) -> None:
        """Let a frozen executable act as a spawn child; a no-op elsewhere."""
        from ._freeze import freeze_support

        freeze_support()

    def set_serializer(self, name: str) -> None:
        """Choose ``"pickle"`` or ``"cloudpickle"`` for objects sent to children and over connections."""
        from ._serializer import set_serializer

        set_serializer(name)

    def get_serializer(self) -> str:
        from ._serializer import get_serializer

        return get_serializer()

    @property
    def reducer(self) -> Any:
        """The module that pickles objects for other processes (``procpar_core.reduction``)."""
        from . import reduction

        return reduction

    def _check_available(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} start method {self._name!r}>"


class Process(BaseProcess):
    """A process started with the default context's start method (``threading.Thread``-like API)."""

    _start_method = None

    @staticmethod
    def _Popen(process_obj: BaseProcess) -> Any:
        return _default_context.get_context().Process._Popen(process_obj)

    @staticmethod
    def _after_fork() -> None:
        return _default_context.get_context().Process._after_fork()


class ForkProcess(BaseProcess):
    _start_method = "fork"

    @staticmethod
    def _Popen(process_obj: BaseProcess) -> Any:
        from ._popen_fork import PopenFork

        return PopenFork(process_obj)


class SpawnProcess(BaseProcess):
    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj: BaseProcess) -> Any:
        from ._popen_spawn import PopenSpawn

        return PopenSpawn(process_obj)

    @staticmethod
    def _after_fork() -> None:
        # A spawned child is a fresh interpreter: there are no inherited finalizers or forkers to run.
        pass


class ForkServerProcess(BaseProcess):
    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj: BaseProcess) -> Any:
        from ._popen_forkserver import PopenForkServer

        return PopenForkServer(process_obj)


class ForkContext(BaseContext):
    _name = "fork"
    Process = ForkProcess


class SpawnContext(BaseContext):
    _name = "spawn"
    Process = SpawnProcess


class ForkServerContext(BaseContext):
    _name = "forkserver"
    Process = ForkServerProcess


class DefaultContext(BaseContext):
    """The context behind module-level functions: follows ``set_start_method``."""

    Process = Process

    def __init__(self, family: Mapping[str, BaseContext]) -> None:
        self._family = family

    def get_context(self, method: str | None = None) -> BaseContext:
        if method is None:
            if _default_state.method is None:
                _default_state.method = default_start_method()
            return self._family[_default_state.method]
        return super().get_context(method)

    def set_start_method(self, method: str | None, force: bool = False) -> None:
        """Choose the start method for the whole program; once only unless ``force=True``."""
        if _default_state.method is not None and not force:
            raise RuntimeError("context has already been set")
        if method is None and force:
            _default_state.method = None
            return
        _default_state.method = self.get_context(method).get_start_method()

    def get_start_method(self, allow_none: bool = False) -> str | None:
        """The start method in use; with ``allow_none``, None if none was chosen yet."""
        if _default_state.method is None:
            if allow_none:
                return None
            _default_state.method = default_start_method()
        return _default_state.method

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.DefaultContext start method {_default_state.method!r}>"


def make_family(fork: type[BaseContext], spawn: type[BaseContext],
                forkserver: type[BaseContext]) -> dict[str, BaseContext]:
    """Instances of the three concrete contexts that know each other (for ``get_context``)."""
    family: dict[str, BaseContext] = {}
    for name, cls in (("fork", fork), ("spawn", spawn), ("forkserver", forkserver)):
        ctx = cls()
        ctx._family = family
        family[name] = ctx
    return family


_concrete_contexts = make_family(ForkContext, SpawnContext, ForkServerContext)
_default_context = DefaultContext(_concrete_contexts)
