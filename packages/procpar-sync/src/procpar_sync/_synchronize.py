"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier shared between processes.

Each lock or semaphore is one compiled semaphore (``_psem``) in an arena slot. Its ``acquire``/``release``
are the compiled methods themselves, so an uncontended pair costs two C calls. The objects travel to
children inside the ``Process`` object only (``assert_spawning``), as the stdlib's do.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from procpar_core.reduction import assert_spawning
from procpar_core.util import register_after_fork

from . import _arena
from ._psem import Semaphore as _Psem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["SemLock", "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
           "BrokenBarrierError", "SEM_VALUE_MAX"]

SEM_VALUE_MAX = 2**31 - 1
BrokenBarrierError = threading.BrokenBarrierError

SEMAPHORE = 0
RECURSIVE_MUTEX = 1


def _new_sem(value: int, maxvalue: int, recursive: bool) -> tuple[Any, tuple[Any, ...]]:
    arena, offset = _arena.allocate(8)
    sem = _Psem(arena.buffer, offset, value, maxvalue, True, recursive)
    return sem, (arena, offset, maxvalue, recursive)


class SemLock:
    """Base of the lock and semaphore classes: one shared compiled semaphore."""

    def __init__(self, kind: int, value: int, maxvalue: int, *, ctx: Any = None) -> None:
        if value < 0:
            raise ValueError(f"semaphore initial value must be >= 0, not {value}")
        self._semlock, self._state = _new_sem(value, maxvalue, kind == RECURSIVE_MUTEX)
        self._kind = kind
        self._make_methods()
        register_after_fork(self, SemLock._after_fork)

    def _make_methods(self) -> None:
        self.acquire = self._semlock.acquire
        self.release = self._semlock.release

    def _after_fork(self) -> None:
        self._semlock.after_fork()

    def __enter__(self) -> bool:
        return bool(self._semlock.__enter__())

    def __exit__(self, *args: object) -> None:
        self._semlock.release()

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (self._state, self._kind)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (arena, offset, maxvalue, recursive), self._kind = state
        self._semlock = _Psem(arena.buffer, offset, 0, maxvalue, False, recursive)
        self._state = (arena, offset, maxvalue, recursive)
        self._make_methods()
        register_after_fork(self, SemLock._after_fork)

    def _value(self) -> int:
        return int(self._semlock.get_value())


class Semaphore(SemLock):
    """A counting semaphore shared between processes; ``acquire(block=True, timeout=None)``."""

    def __init__(self, value: int = 1, *, ctx: Any = None) -> None:
        super().__init__(SEMAPHORE, value, SEM_VALUE_MAX, ctx=ctx)

    def get_value(self) -> int:
        return self._value()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self._value()})>"


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses (``ValueError``) to be released above its initial value."""

    def __init__(self, value: int = 1, *, ctx: Any = None) -> None:
        SemLock.__init__(self, SEMAPHORE, value, value, ctx=ctx)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self._value()}, maxvalue={self._semlock.maxvalue})>"


class Lock(SemLock):
    """A non-recursive lock shared between processes; releasing it while unlocked raises ``ValueError``."""

    def __init__(self, *, ctx: Any = None) -> None:
        super().__init__(SEMAPHORE, 1, 1, ctx=ctx)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(owner={_owner(self._semlock)})>"


class RLock(SemLock):
    """A recursive lock shared between processes; only its owner may release it (else ``AssertionError``)."""

    def __init__(self, *, ctx: Any = None) -> None:
        super().__init__(RECURSIVE_MUTEX, 1, 1, ctx=ctx)

    def __repr__(self) -> str:
        sem = self._semlock
        owner = _owner(sem)
        count: object = sem.count() if sem.is_mine() else (0 if owner == "None" else "nonzero")
        return f"<{type(self).__name__}({owner}, {count})>"


def _owner(sem: Any) -> str:
    """Who holds a lock, as the stdlib's reprs say it: 'Process|Thread', 'None', or someone else."""
    if sem.is_mine():
        from procpar_core import current_process

        return f"{current_process().name}|{threading.current_thread().name}"
    if sem.get_value() == 1:
        return "None"
    return "SomeOtherThread" if sem.count() > 0 else "SomeOtherProcess"


class Condition:
    """A condition variable shared between processes, over a Lock or RLock (a new RLock by default).

    Waiters count themselves in ``_sleeping_count``; ``notify`` wakes up to n of them through ``_wait_semaphore`` and
    waits until each has taken its wake-up (``_woken_count``), so a notification is never lost or delivered twice,
    and waiters that timed out are discounted first.
    """

    def __init__(self, lock: Any | None = None, *, ctx: Any = None) -> None:
        self._lock = lock if lock is not None else RLock(ctx=ctx)
        self._sleeping_count = Semaphore(0, ctx=ctx)
        self._woken_count = Semaphore(0, ctx=ctx)
        self._wait_semaphore = Semaphore(0, ctx=ctx)
        self._make_methods()

    def _make_methods(self) -> None:
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (self._lock, self._sleeping_count, self._woken_count, self._wait_semaphore)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._lock, self._sleeping_count, self._woken_count, self._wait_semaphore = state
        self._make_methods()

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *args: object) -> None:
        self._lock.__exit__(*args)

    def __repr__(self) -> str:
        try:
            waiters = self._sleeping_count._semlock.get_value() - self._woken_count._semlock.get_value()
        except Exception:
            waiters = "unknown"
        return f"<{type(self).__name__}({self._lock}, {waiters})>"

    def _check_owned(self, what: str) -> None:
        if not self._lock._semlock.is_mine():
            raise AssertionError(f"must acquire() condition before using {what}")

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notification (or ``timeout``), re-acquire; False on timeout."""
        self._check_owned("wait()")
        self._sleeping_count.release()
        depth = self._lock._semlock.count()
        for _ in range(depth):
            self._lock.release()
        try:
            return bool(self._wait_semaphore.acquire(True, timeout))
        finally:
            self._woken_count.release()
            for _ in range(depth):
                self._lock.acquire()

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting processes or threads."""
        self._check_owned("notify()")
        if self._wait_semaphore.acquire(False):
            raise AssertionError("notify: a wake-up was left unclaimed")
        # Waiters that timed out released _woken_count without being woken: drop them from the sleeper count.
        while self._woken_count.acquire(False):
            if not self._sleeping_count.acquire(False):
                raise AssertionError("notify: more wake-ups than sleepers")
        woken = 0
        while woken < n and self._sleeping_count.acquire(False):
            self._wait_semaphore.release()
            woken += 1
        if woken:
            for _ in range(woken):
                self._woken_count.acquire()
            # A waiter that timed out just now may have left its wake-up unclaimed: take it back.
            while self._wait_semaphore.acquire(False):
                pass

    def notify_all(self) -> None:
        """Wake every waiter."""
        self.notify(sys.maxsize)

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        """Wait until ``predicate()`` is true (or ``timeout`` passes); return its last value."""
        result = predicate()
        if result:
            return result
        deadline = None if timeout is None else time.monotonic() + timeout
        remaining = timeout
        while not result:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
            self.wait(remaining)
            result = predicate()
        return result


class Event:
    """A flag shared between processes: ``set``, ``clear``, ``is_set`` and ``wait(timeout)``."""

    def __init__(self, *, ctx: Any = None) -> None:
        self._cond = Condition(Lock(ctx=ctx), ctx=ctx)
        self._flag = Semaphore(0, ctx=ctx)

    def is_set(self) -> bool:
        with self._cond:
            if self._flag.acquire(False):
                self._flag.release()
                return True
            return False

    def set(self) -> None:
        with self._cond:
            self._flag.acquire(False)
            self._flag.release()
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag.acquire(False)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set or ``timeout`` passes; return whether it is set."""
        with self._cond:
            if self._flag.acquire(False):
                self._flag.release()
                return True
            self._cond.wait(timeout)
            if self._flag.acquire(False):
                self._flag.release()
                return True
            return False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} {'set' if self.is_set() else 'unset'}>"


_FILLING, _DRAINING, _RESETTING, _BROKEN = 0, 1, -1, -2


class Barrier:
    """A barrier for ``parties`` processes or threads, with ``action``, ``timeout``, ``abort`` and ``reset``.

    Its state (filling, draining, resetting, broken) and the count of waiters live in shared memory under
    its condition's lock.
    """

    def __init__(self, parties: int, action: Callable[[], object] | None = None,
                 timeout: float | None = None, *, ctx: Any = None) -> None:
        if parties < 1:
            raise ValueError("parties must be >= 1")
        arena, offset = _arena.allocate(16)
        self._shared = (arena, offset)
        self._cond = Condition(Lock(ctx=ctx), ctx=ctx)
        self._action = action
        self._timeout = timeout
        self._parties = parties
        self._attach()
        self._ints[0] = _FILLING
        self._ints[1] = 0

    def _attach(self) -> None:
        arena, offset = self._shared
        self._ints = memoryview(arena.buffer)[offset : offset + 16].cast("q")

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (self._shared, self._cond, self._action, self._timeout, self._parties)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._shared, self._cond, self._action, self._timeout, self._parties = state
        self._attach()

    @property
    def _state(self) -> int:
        return int(self._ints[0])

    @_state.setter
    def _state(self, value: int) -> None:
        self._ints[0] = value

    @property
    def _count(self) -> int:
        return int(self._ints[1])

    @_count.setter
    def _count(self, value: int) -> None:
        self._ints[1] = value

    @property
    def parties(self) -> int:
        return self._parties

    @property
    def n_waiting(self) -> int:
        """How many are waiting now (0 while the barrier drains)."""
        return self._count if self._state == _FILLING else 0

    @property
    def broken(self) -> bool:
        return self._state == _BROKEN

    def wait(self, timeout: float | None = None) -> int:
        """Wait for all parties; return an index in ``range(parties)``, distinct per caller.

        Raises ``BrokenBarrierError`` if the barrier is or becomes broken, or the wait times out.
        """
        if timeout is None:
            timeout = self._timeout
        with self._cond:
            self._wait_while_draining(timeout)
            index = self._count
            self._count = index + 1
            try:
                if index + 1 == self._parties:
                    self._release_all()
                else:
                    self._wait_for_release(timeout)
                return index
            finally:
                self._count = self._count - 1
                self._wake_if_drained()

    def _wait_while_draining(self, timeout: float | None) -> None:
        while self._state in (_DRAINING, _RESETTING):
            if not self._cond.wait_for(lambda: self._state not in (_DRAINING, _RESETTING), timeout):
                raise BrokenBarrierError
        if self._state < 0:
            raise BrokenBarrierError

    def _release_all(self) -> None:
        try:
            if self._action is not None:
                self._action()
            self._state = _DRAINING
            self._cond.notify_all()
        except BaseException:
            self._break()
            raise

    def _wait_for_release(self, timeout: float | None) -> None:
        if not self._cond.wait_for(lambda: self._state != _FILLING, timeout):
            self._break()
            raise BrokenBarrierError
        if self._state < 0:
            raise BrokenBarrierError

    def _wake_if_drained(self) -> None:
        if self._count == 0 and self._state in (_RESETTING, _DRAINING):
            self._state = _FILLING
            self._cond.notify_all()

    def _break(self) -> None:
        self._state = _BROKEN
        self._cond.notify_all()

    def abort(self) -> None:
        """Break the barrier: current and future waiters get ``BrokenBarrierError``."""
        with self._cond:
            self._break()

    def reset(self) -> None:
        """Return to the initial state; current waiters get ``BrokenBarrierError``."""
        with self._cond:
            if self._count > 0:
                if self._state == _FILLING or self._state == _BROKEN:
                    self._state = _RESETTING
            else:
                self._state = _FILLING
            self._cond.notify_all()

    def __repr__(self) -> str:
        if self.broken:
            return f"<{type(self).__name__}: broken>"
        return f"<{type(self).__name__}: waiters={self.n_waiting}/{self.parties}>"


del os
