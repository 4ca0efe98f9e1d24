"""``multiprocessing.dummy``: the ``multiprocessing`` API over threads, for code that wants to switch
between processes and threads by changing one import.

``Process`` is a thread with the process API (``exitcode``, ``active_children``); locks, events, conditions and
barriers are ``threading``'s; queues are ``queue.Queue``; ``Pool`` is procpar-pool's ``ThreadPool``;
``Manager()`` returns this module, whose objects are already shared between threads.
"""

from __future__ import annotations

import array
import queue
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from threading import Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore
from typing import Any, Generic, TypeVar

from procpar_managers import Namespace

from . import connection
from .connection import Pipe

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procpar_pool import ThreadPool

T = TypeVar("T")

__all__ = [
    "Process", "current_process", "active_children", "freeze_support", "Lock", "RLock", "Semaphore",
    "BoundedSemaphore", "Condition", "Event", "Barrier", "Queue", "Manager", "Pipe", "Pool", "JoinableQueue",
    "Namespace", "Value", "Array", "connection", "list", "dict",
]

Queue = queue.Queue
JoinableQueue = queue.Queue


class DummyProcess(threading.Thread):
    """A thread with the ``Process`` API: started by its parent "process" (thread), with an ``exitcode``."""

    def __init__(self, group: None = None, target: Callable[..., object] | None = None, name: str | None = None,
                 args: Iterable[object] = (), kwargs: Mapping[str, object] | None = None) -> None:
        super().__init__(group, target, name, args, kwargs or {})
        self._pid = None
        self._children: weakref.WeakKeyDictionary[threading.Thread, None] = weakref.WeakKeyDictionary()
        self._start_called = False
        self._parent = current_process()

    def start(self) -> None:
        if self._parent is not current_process():
            raise RuntimeError(f"Parent is {self._parent!r} but current_process is {current_process()!r}: a "
                               f"process can only be started by the thread that created it")
        self._start_called = True
        children = getattr(self._parent, "_children", None)
        if children is not None:
            children[self] = None
        super().start()

    @property
    def exitcode(self) -> int | None:
        """0 once the thread has run to its end, None before."""
        if self._start_called and not self.is_alive():
            return 0
        return None


Process = DummyProcess
current_process = threading.current_thread
# The main thread is the root "process": it keeps track of the threads it starts.
current_process()._children = weakref.WeakKeyDictionary()  # type: ignore[attr-defined]


def active_children() -> list[threading.Thread]:
    """The live ``Process`` threads started by the current thread (finished ones are forgotten)."""
    children = getattr(current_process(), "_children", None)
    if children is None:
        return []
    for child in list(children):
        if not child.is_alive():
            children.pop(child, None)
    return list(children)


def freeze_support() -> None:
    """Nothing to do for threads."""


class Value(Generic[T]):
    """A value with a ``value`` attribute (threads share memory: nothing to synchronise it with). ``typecode``
    and ``lock`` are the process ``Value``'s, kept for its callers; the value is held as given."""

    def __init__(self, typecode: object, value: T, lock: object = True) -> None:
        self._typecode = typecode
        self._value = value

    @property
    def value(self) -> T:
        return self._value

    @value.setter
    def value(self, value: T) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({self._typecode!r}, {self._value!r})>"


def Array(typecode: str, sequence: Iterable[int] | Iterable[float] | Iterable[str] | bytes,
          lock: object = True) -> array.array[Any]:
    """An ``array.array`` (its item type follows ``typecode``, as the stdlib's stub says)."""
    return array.array(typecode, sequence)


# The manager's ``list()`` and ``dict()``: threads share the builtins themselves. Bound under the builtins'
# own names, as the stdlib's module does, so that ``dummy.Manager().list([1, 2])`` is a plain list.
list = list
dict = dict


def Manager() -> types.ModuleType:
    """This module: its objects are already shared by every thread."""
    return sys.modules[__name__]


def shutdown() -> None:
    """Nothing to shut down."""


def Pool(processes: int | None = None, initializer: Callable[..., object] | None = None,
         initargs: Iterable[object] = ()) -> ThreadPool:
    """A pool of threads (procpar-pool's ``ThreadPool``)."""
    from procpar_pool import ThreadPool

    return ThreadPool(processes, initializer, initargs)
