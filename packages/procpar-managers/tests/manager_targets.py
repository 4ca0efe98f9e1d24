"""Functions and types the manager tests run in other processes (importable under spawn and forkserver)."""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from procpar_managers.managers import AcquirerProxy, BaseManager, BaseProxy, SyncManager


def fill(d: Any, lst: Any, ns: Any) -> None:
    d["child"] = os.getpid()
    lst.append("from child")
    ns.seen = True


def lock_and_exit(lock: Any) -> None:
    lock.acquire()


def barrier_party(barrier: Any, results: Any) -> None:
    results.append(barrier.wait(30))


def condition_notify(cond: Any, flag: Any) -> None:
    with cond:
        flag.value = 1
        cond.notify_all()


def queue_round_trip(inbox: Any, outbox: Any) -> None:
    outbox.put(inbox.get(timeout=30) * 2)


def use_inherited(lst: Any, go: Any, done: Any) -> None:
    go.wait(30)
    done.put(list(lst))


def serve_remote(address: Any, authkey: bytes, serializer: str, ready: Any) -> None:
    manager = RemoteQueueManager(address=address, authkey=authkey, serializer=serializer)
    server = manager.get_server()
    ready.send(server.address)
    server.serve_forever()


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def bump(self, by: int = 1) -> int:
        self.n += by
        return self.n

    def unpicklable(self) -> Any:
        return lambda: None

    def raise_unpicklable(self) -> None:
        class Local(Exception):
            pass

        raise Local("cannot travel")

    def fail(self) -> None:
        raise KeyError("missing")

    def _private(self) -> str:
        return "private"

    def sleep(self, seconds: float) -> str:
        time.sleep(seconds)
        return "slept"


_queue: list[Any] = []


def get_store() -> list[Any]:
    return _queue


class RemoteQueueManager(BaseManager):
    if TYPE_CHECKING:  # made by register() below
        def get_store(self) -> Any: ...
        def Counter(self, start: int = 0) -> Any: ...


RemoteQueueManager.register("get_store", callable=get_store)
RemoteQueueManager.register("Counter", Counter)


class CounterManager(BaseManager):
    if TYPE_CHECKING:  # made by register() below
        def Counter(self, *args: Any) -> Any: ...
        def numbers(self, n: int) -> Any: ...


CounterManager.register("Counter", Counter)


class NumberIterator(BaseProxy):
    _exposed_ = ("__next__",)

    def __iter__(self) -> NumberIterator:
        return self

    def __next__(self) -> Any:
        return self._callmethod("__next__")


def numbers(n: int) -> Any:
    yield from range(n)


CounterManager.register("numbers", numbers, proxytype=NumberIterator)


def kill_self_with_sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def bump_in_child(counter: Any) -> None:
    counter.bump(10)
    sys.exit(0)


def get_one(queue: Any, started: Any) -> None:
    started.set()
    queue.get()


def acquire_held(lock: Any, started: Any) -> None:
    started.set()
    lock.acquire()


class EnteringQueue(queue.Queue):  # type: ignore[type-arg]
    """A queue that says (in a flag its manager serves) when a get() has begun waiting in the server."""

    def __init__(self, entered: Any) -> None:
        super().__init__()
        self.entered = entered

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        self.entered.set()
        return super().get(block, timeout)


class EnteringSemaphore(threading.Semaphore):
    def __init__(self, entered: Any) -> None:
        super().__init__(1)
        self.entered = entered

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if blocking:
            self.entered.set()
        return super().acquire(blocking, timeout)


class DeathManager(SyncManager):
    if TYPE_CHECKING:  # made by register() below
        def EnteringQueue(self, entered: Any) -> Any: ...
        def EnteringSemaphore(self, entered: Any) -> Any: ...


DeathManager.register("EnteringQueue", EnteringQueue)
DeathManager.register("EnteringSemaphore", EnteringSemaphore, AcquirerProxy)


class Thing:
    """A referent with a method left unexposed and one whose result becomes a shared object of its own."""

    def a(self) -> int:
        return 1

    def hidden(self) -> int:
        return 2

    def child(self) -> list[int]:
        return [1, 2]


def wrap_list(items: Any) -> list[Any]:
    return [*items, "wrapped"]


def acquire_then_wait(lock: Any, holding: Any, die: Any) -> None:
    """Take ``lock``, say so, and exit abruptly once told to (holding it)."""
    import os

    lock.acquire()
    holding.set()
    die.wait(60)
    os._exit(0)


def server_process(manager: Any) -> Any:
    """The process running a started manager's server."""
    process = manager._process
    assert process is not None and process.pid is not None, "the manager was not started"
    return process
