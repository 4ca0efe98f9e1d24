"""``SyncManager``: the manager ``Manager()`` returns, serving the common shared types."""

from __future__ import annotations

import array
import queue
import threading

from ._manager import BaseManager
from ._proxy import (
    AcquirerProxy,
    ArrayProxy,
    BarrierProxy,
    ConditionProxy,
    DictProxy,
    EventProxy,
    IteratorProxy,
    ListProxy,
    NamespaceProxy,
    PoolProxy,
    SetProxy,
    ValueProxy,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import TypeVar, overload

    from procpar_core.context import BaseContext
    from procpar_pool import Pool
    from procpar_shm.sharedctypes import FloatCode, IntCode

    from ._proxy import ArrayProxyType, QueueProxy
    from ._typing import Function, Unknown

    _Item = TypeVar("_Item", int, float, str)
    T = TypeVar("T")
    K = TypeVar("K")
    V = TypeVar("V")


__all__ = ["SyncManager", "Namespace", "Value", "Array", "Manager"]


class Namespace:
    """An object whose attributes are its state; its repr lists the public ones."""

    def __init__(self, /, **kwds: object) -> None:
        self.__dict__.update(kwds)

    def __repr__(self) -> str:
        items = sorted((name, value) for name, value in self.__dict__.items() if not name.startswith("_"))
        return f"{type(self).__name__}({', '.join(f'{name}={value!r}' for name, value in items)})"


class Value:
    """A value with ``get``/``set`` and a ``value`` property, served by a ``SyncManager``."""

    def __init__(self, typecode: object, value: object, lock: object = True) -> None:
        self._typecode = typecode
        self._value = value

    def get(self) -> object:
        return self._value

    def set(self, value: object) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._typecode!r}, {self._value!r})"

    value = property(get, set)


def Array(typecode: str, sequence: Iterable[_Item], lock: object = True) -> array.array[_Item]:
    """An ``array.array`` served by a ``SyncManager``."""
    return array.array(typecode, sequence)


def _pool(processes: int | None = None, initializer: Function | None = None, initargs: Iterable[object] = (),
          maxtasksperchild: int | None = None, *, task_timeout: float | None = None, prefetch: int | None = None,
          max_memory_per_child: int | None = None) -> Pool:
    try:
        from procpar_pool import Pool
    except ImportError:
        raise ImportError("SyncManager.Pool needs the procpar-pool package in the manager's environment: "
                          "pip install 'procpar-managers[pool]'") from None
    return Pool(processes, initializer, initargs, maxtasksperchild, task_timeout=task_timeout, prefetch=prefetch,
                max_memory_per_child=max_memory_per_child)


class SyncManager(BaseManager):
    """A manager serving ``list``, ``dict``, ``Namespace``, locks, ``Condition``, ``Event``, ``Barrier``,
    ``Queue``, ``Value``, ``Array`` and ``Pool`` objects."""

    if TYPE_CHECKING:
        # Made by register() below at run time; declared here for type checkers. (``list``, ``dict`` and ``set``
        # name methods in this class body: annotations here do not use the builtins by those names.)
        def Queue(self, maxsize: int = 0) -> QueueProxy[Unknown]: ...
        def JoinableQueue(self, maxsize: int = 0) -> QueueProxy[Unknown]: ...
        def Event(self) -> EventProxy: ...
        def Lock(self) -> AcquirerProxy: ...
        def RLock(self) -> AcquirerProxy: ...
        def Semaphore(self, value: int = 1) -> AcquirerProxy: ...
        def BoundedSemaphore(self, value: int = 1) -> AcquirerProxy: ...
        def Condition(self, lock: AcquirerProxy | None = None) -> ConditionProxy: ...
        def Barrier(self, parties: int, action: Function | None = None, timeout: float | None = None
                    ) -> BarrierProxy: ...
        def Pool(self, processes: int | None = None, initializer: Function | None = None,
                 initargs: Iterable[object] = (), maxtasksperchild: int | None = None) -> PoolProxy: ...
        @overload
        def list(self) -> ListProxy[Unknown]: ...
        @overload
        def list(self, sequence: Iterable[T], /) -> ListProxy[T]: ...
        def list(self, *args: Iterable[object]) -> ListProxy[Unknown]: ...
        @overload
        def dict(self) -> DictProxy[Unknown, Unknown]: ...
        @overload
        def dict(self, **kwargs: V) -> DictProxy[str, V]: ...
        @overload
        def dict(self, mapping: Mapping[K, V], /, **kwargs: V) -> DictProxy[K, V]: ...
        @overload
        def dict(self, iterable: Iterable[tuple[K, V]], /, **kwargs: V) -> DictProxy[K, V]: ...
        def dict(self, *args: Unknown, **kwargs: Unknown) -> DictProxy[Unknown, Unknown]: ...  # type: ignore[misc]
        @overload
        def set(self) -> SetProxy[Unknown]: ...
        @overload
        def set(self, iterable: Iterable[T], /) -> SetProxy[T]: ...
        def set(self, *args: Iterable[object]) -> SetProxy[Unknown]: ...
        def Value(self, typecode: object, value: T, lock: object = True) -> ValueProxy[T]: ...
        @overload
        def Array(self, typecode: IntCode, sequence: Iterable[int], lock: object = True) -> ArrayProxyType[int]: ...
        @overload
        def Array(self, typecode: FloatCode, sequence: Iterable[float], lock: object = True
                  ) -> ArrayProxyType[float]: ...
        @overload
        @overload
        def Array(self, typecode: str, sequence: Iterable[object], lock: object = True) -> ArrayProxyType[Unknown]: ...
        def Array(self, typecode: str, sequence: Iterable[object], lock: object = True) -> ArrayProxyType[Unknown]: ...
        def Namespace(self, **kwds: object) -> NamespaceProxy: ...


SyncManager.register("Queue", queue.Queue)
SyncManager.register("JoinableQueue", queue.Queue)
SyncManager.register("Event", threading.Event, EventProxy)
SyncManager.register("Lock", threading.Lock, AcquirerProxy)
SyncManager.register("RLock", threading.RLock, AcquirerProxy)
SyncManager.register("Semaphore", threading.Semaphore, AcquirerProxy)
SyncManager.register("BoundedSemaphore", threading.BoundedSemaphore, AcquirerProxy)
SyncManager.register("Condition", threading.Condition, ConditionProxy)
SyncManager.register("Barrier", threading.Barrier, BarrierProxy)
SyncManager.register("Pool", _pool, PoolProxy)
SyncManager.register("list", list, ListProxy)
SyncManager.register("dict", dict, DictProxy)
SyncManager.register("set", set, SetProxy)
SyncManager.register("Value", Value, ValueProxy)
SyncManager.register("Array", Array, ArrayProxy)
SyncManager.register("Namespace", Namespace, NamespaceProxy)
# Types of method results only (dict iteration, the pool's asynchronous results).
SyncManager.register("Iterator", proxytype=IteratorProxy, create_method=False)
SyncManager.register("AsyncResult", create_method=False)


def Manager(*, ctx: BaseContext | None = None) -> SyncManager:
    """A started ``SyncManager`` (shut it down, or use it in a ``with`` block)."""
    manager = SyncManager(ctx=ctx)
    manager.start()
    return manager
