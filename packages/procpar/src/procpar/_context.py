"""The meta-package's contexts: procpar-core's, plus the API of every procpar package installed.

They subclass the core contexts, so ``Process`` classes and the process-wide start method are shared: the
module-level ``procpar.set_start_method`` and ``procpar_core.set_start_method`` are one switch.
"""

from __future__ import annotations

import functools

from procpar_core import context as _core

from ._extensions import CONTEXT_KEYWORD, EXTENSIONS, NO_CONTEXT_ARGUMENT, load, missing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Generic, TypeVar

    import procpar_managers
    import procpar_pool
    import procpar_shm
    import procpar_sync

    F = TypeVar("F", bound=Callable[..., object])

    class _Factory(Generic[F]):
        """A class attribute that reads as the function it holds, overloads and all (``staticmethod`` keeps
        only the first overload of a generic function for mypy and pyright)."""

        def __init__(self, factory: F) -> None:
            self._factory = factory

        def __get__(self, obj: object, cls: object) -> F:
            return self._factory

__all__ = ["FullContextMixin", "ForkContext", "SpawnContext", "ForkServerContext", "DefaultContext", "family",
           "default_context"]


class FullContextMixin:
    """Adds ``Lock``, ``Queue``, ``Value``, ``Pool``, ... bound to this context, from the packages present."""

    if TYPE_CHECKING:
        # What __getattr__ hands out, for type checkers: each package's own factory (its ``ctx=`` keyword is
        # filled in by the context at run time).
        Lock = _Factory(procpar_sync.Lock)
        RLock = _Factory(procpar_sync.RLock)
        Semaphore = _Factory(procpar_sync.Semaphore)
        BoundedSemaphore = _Factory(procpar_sync.BoundedSemaphore)
        Condition = _Factory(procpar_sync.Condition)
        Event = _Factory(procpar_sync.Event)
        Barrier = _Factory(procpar_sync.Barrier)
        # The queues are generic: a class held by _Factory would be Queue[Never] for mypy.
        def Queue(self, maxsize: int = 0) -> procpar_sync.Queue[Any]: ...
        def JoinableQueue(self, maxsize: int = 0) -> procpar_sync.JoinableQueue[Any]: ...
        def SimpleQueue(self) -> procpar_sync.SimpleQueue[Any]: ...
        AbandonedLockWarning = procpar_sync.AbandonedLockWarning
        set_owner_death_policy = _Factory(procpar_sync.set_owner_death_policy)
        get_owner_death_policy = _Factory(procpar_sync.get_owner_death_policy)
        Value = _Factory(procpar_shm.Value)
        Array = _Factory(procpar_shm.Array)
        RawValue = _Factory(procpar_shm.RawValue)
        RawArray = _Factory(procpar_shm.RawArray)
        Manager = _Factory(procpar_managers.Manager)
        Pool = _Factory(procpar_pool.Pool)
        Executor = _Factory(procpar_pool.Executor)
        get_reusable_pool = _Factory(procpar_pool.get_reusable_pool)
        get_reusable_executor = _Factory(procpar_pool.get_reusable_executor)

    def __getattr__(self, name: str) -> Any:
        if name not in EXTENSIONS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            factory = load(name)
        except AttributeError:
            raise missing(name, "context") from None
        if name in NO_CONTEXT_ARGUMENT:
            return factory
        # The default context hands out its current concrete context, as the stdlib's does.
        keyword = CONTEXT_KEYWORD.get(name, "ctx")
        return functools.partial(factory, **{keyword: self.get_context()})  # type: ignore[attr-defined,unused-ignore]


class ForkContext(FullContextMixin, _core.ForkContext):
    """fork, with the API of every procpar package installed."""


class SpawnContext(FullContextMixin, _core.SpawnContext):
    """spawn, with the API of every procpar package installed."""


class ForkServerContext(FullContextMixin, _core.ForkServerContext):
    """forkserver, with the API of every procpar package installed."""


class DefaultContext(FullContextMixin, _core.DefaultContext):
    """The default context, with the API of every procpar package installed."""

    def get_context(self, method: str | None = None) -> ForkContext | SpawnContext | ForkServerContext:
        context = super().get_context(method)
        assert isinstance(context, (ForkContext, SpawnContext, ForkServerContext))  # its family is these
        return context


def _make_family() -> dict[str, _core.BaseContext]:
    from procpar_core.context import make_family

    return make_family(ForkContext, SpawnContext, ForkServerContext)


family = _make_family()
default_context = DefaultContext(family)
