"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier shared between processes.

Each lock or semaphore is one compiled object (``_psem.Semaphore``) over a slot of an arena. Its ``acquire``
and ``release`` are the compiled methods themselves, so an uncontended pair costs two C calls. The objects
travel to children inside the ``Process`` object only (``assert_spawning``), as the stdlib's do.

A process that dies holding a lock (docs/reliability.md): a ``Lock``'s or ``RLock``'s shared word is its
holder's identity, so a waiter can tell that the holder died and take the lock over. What it is told depends
on ``on_owner_death``: ``"warn"`` (the default: the acquire succeeds and an ``AbandonedLockWarning`` names the
dead process), ``"recover"`` (silently; procpar's own locks, whose users repair what they protect) or
``"wait"`` (the stdlib's behaviour: wait forever). A ``Semaphore`` is a counter that any process may release,
so only the units a process took in a ``with`` block count as its own; those are given back if it dies there.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from procpar_core.context import get_spawning_popen
from procpar_core.reduction import assert_spawning
from procpar_core.resource_tracker import revive_if_dead
from procpar_core.util import register_after_fork

from . import _arena
from ._psem import (
    RECOVER,
    WAIT,
    WARN,
    AbandonedLockWarning,
    WaitList,
    process_tag,
    slot_size,
    tag_alive,
    wait_list_size,
)
from ._psem import Semaphore as _Psem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    from procpar_core.context import BaseContext

    W = TypeVar("W")

__all__ = ["SemLock", "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
           "BrokenBarrierError", "SEM_VALUE_MAX", "AbandonedLockWarning", "set_owner_death_policy",
           "get_owner_death_policy"]

SEM_VALUE_MAX = 2**31 - 1
BrokenBarrierError = threading.BrokenBarrierError

SEMAPHORE = 0
RECURSIVE_MUTEX = 1

_POLICIES = {"wait": WAIT, "recover": RECOVER, "warn": WARN}
_default_policy = "warn"
# The `with` holders a user semaphore remembers (more at once are not tracked: their units are not given back
# if they die).
_HOLDERS = 16
# How many waiters a Condition (and so an Event) can have at once; each costs 24 bytes of shared memory.
CONDITION_WAITERS = 256


def set_owner_death_policy(policy: str) -> None:
    """What locks and semaphores created from now on do when a process dies holding them.

    ``"warn"`` (default): the next acquirer takes over and an ``AbandonedLockWarning`` names the dead process.
    ``"recover"``: the same, silently. ``"wait"``: wait for it forever, as the stdlib does.
    """
    global _default_policy
    _policy_code(policy)
    _default_policy = policy


def get_owner_death_policy() -> str:
    """The policy given to new locks and semaphores (see ``set_owner_death_policy``)."""
    return _default_policy


def _policy_code(policy: str | None) -> int:
    name = _default_policy if policy is None else policy
    try:
        return _POLICIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"on_owner_death must be one of {sorted(_POLICIES)}, not {policy!r}") from None


def _for_fork(ctx: BaseContext | None) -> bool:
    """Whether a lock made with ``ctx`` (None: the default context) belongs to the fork start method."""
    if ctx is None:
        import procpar_core

        return procpar_core.get_start_method() == "fork"
    return bool(ctx.get_start_method() == "fork")


class SemLock:
    """Base of the lock and semaphore classes: one shared compiled semaphore."""

    def __init__(self, kind: int, value: int, maxvalue: int, *, ctx: BaseContext | None = None, mutex: bool = False,
                 holders: int = 0, on_owner_death: str | None = None) -> None:
        if value < 0:
            raise ValueError(f"semaphore initial value must be >= 0, not {value}")
        recursive = kind == RECURSIVE_MUTEX
        policy = _policy_code(on_owner_death)
        arena, offset = _arena.allocate(slot_size(mutex=mutex, holders=holders))
        self._semlock = _Psem(arena.buffer, offset, value, maxvalue, True, recursive, mutex=mutex, holders=holders,
                              policy=policy)
        self._state = (arena, offset, maxvalue, recursive, mutex, holders, policy)
        self._kind = kind
        self._fork_ctx = _for_fork(ctx)
        if not self._fork_ctx:
            # The stdlib registers such semaphores with its tracker, and a dead tracker is noticed (and
            # replaced, with a warning) right then; procpar's need no tracker, but notice the same.
            revive_if_dead()
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
        self._semlock.__exit__()

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        if self._fork_ctx:
            # procpar's semaphores would work in any child; the stdlib's do not, and programs are tested
            # against it: refusing here keeps a program that runs on procpar running on the stdlib.
            method = getattr(get_spawning_popen(), "method", "") or "non-fork"
            raise RuntimeError(
                f"A SemLock created in a fork context cannot be passed to a child started by {method}: make the "
                f"lock, queue or other object from the receiving Process's own context (ctx.Lock(), ctx.Queue(), "
                f"... with ctx = get_context({method!r})).")
        return (self._state, self._kind)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._state, self._kind = state
        self._fork_ctx = False
        arena, offset, maxvalue, recursive, mutex, holders, policy = self._state
        self._semlock = _Psem(arena.buffer, offset, 0, maxvalue, False, recursive, mutex=mutex, holders=holders,
                              policy=policy)
        self._make_methods()
        register_after_fork(self, SemLock._after_fork)

    def _value(self) -> int:
        return int(self._semlock.get_value())

    def locked(self) -> bool:
        """True if it is held (a lock) or has no unit left (a semaphore) right now."""
        return bool(self._semlock.is_zero())


class Semaphore(SemLock):
    """A counting semaphore shared between processes; ``acquire(block=True, timeout=None)``.

    Units taken in a ``with`` block belong to the taking process until the block ends, and are given back if
    it dies inside it (see ``on_owner_death``); units taken with ``acquire()`` are a counter anyone releases.
    """

    def __init__(self, value: int = 1, *, ctx: BaseContext | None = None, on_owner_death: str | None = None) -> None:
        super().__init__(SEMAPHORE, value, SEM_VALUE_MAX, ctx=ctx, holders=_HOLDERS, on_owner_death=on_owner_death)

    def get_value(self) -> int:
        return self._value()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self._value()})>"


class BoundedSemaphore(Semaphore):
    """A semaphore that refuses (``ValueError``) to be released above its initial value."""

    def __init__(self, value: int = 1, *, ctx: BaseContext | None = None, on_owner_death: str | None = None) -> None:
        SemLock.__init__(self, SEMAPHORE, value, value, ctx=ctx, holders=_HOLDERS, on_owner_death=on_owner_death)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(value={self._value()}, maxvalue={self._semlock.maxvalue})>"


def _counter(value: int, maxvalue: int = SEM_VALUE_MAX, *, ctx: BaseContext | None = None) -> SemLock:
    """A plain shared counter for procpar's own bookkeeping (no holders: units are never anyone's)."""
    return SemLock(SEMAPHORE, value, maxvalue, ctx=ctx, on_owner_death="wait")


class Lock(SemLock):
    """A non-recursive lock shared between processes; releasing it while unlocked raises ``ValueError``.

    ``on_owner_death``: what happens when a process dies holding it (``"warn"``, ``"recover"``, ``"wait"``;
    see ``set_owner_death_policy``).
    """

    def __init__(self, *, ctx: BaseContext | None = None, on_owner_death: str | None = None) -> None:
        super().__init__(SEMAPHORE, 1, 1, ctx=ctx, mutex=True, on_owner_death=on_owner_death)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(owner={_owner(self._semlock)})>"


class RLock(SemLock):
    """A recursive lock shared between processes; only its owner may release it (else ``AssertionError``).

    ``on_owner_death`` as for ``Lock``.
    """

    def __init__(self, *, ctx: BaseContext | None = None, on_owner_death: str | None = None) -> None:
        super().__init__(RECURSIVE_MUTEX, 1, 1, ctx=ctx, mutex=True, on_owner_death=on_owner_death)

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
    holder = sem.holder()
    if holder == 0 or (holder is None and sem.get_value() > 0):
        return "None"
    return "SomeOtherThread" if holder == os.getpid() or sem.count() > 0 else "SomeOtherProcess"


class _CountView:
    """What the stdlib's Condition exposes as ``_sleeping_count`` and friends: a ``get_value()``."""

    __slots__ = ("_read",)

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read

    def get_value(self) -> int:
        return int(self._read())

    _get_value = get_value


def _zero() -> int:
    return 0


class Condition:
    """A condition variable shared between processes, over a Lock or RLock (a new RLock by default).

    Each waiter sleeps on a slot of its own in shared memory; ``notify(n)`` wakes the ``n`` oldest live ones, so
    a notification is never lost, never delivered twice, and never spent on a process that died waiting.
    """

    def __init__(self, lock: Lock | RLock | None = None, *, ctx: BaseContext | None = None) -> None:
        self._lock = lock if lock is not None else RLock(ctx=ctx, on_owner_death="recover")
        capacity = CONDITION_WAITERS
        arena, offset = _arena.allocate(wait_list_size(capacity))
        self._waiters = WaitList(arena.buffer, offset, capacity, True)
        self._shared = (arena, offset, capacity)
        self._make_methods()

    def _make_methods(self) -> None:
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        # The stdlib's attribute names, read by CPython's tests: the sleepers, and nothing else pending.
        self._sleeping_count = _CountView(self._waiters.sleepers)
        self._woken_count = self._wait_semaphore = _CountView(_zero)

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (self._lock, self._shared)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._lock, self._shared = state
        arena, offset, capacity = self._shared
        self._waiters = WaitList(arena.buffer, offset, capacity, False)
        self._make_methods()

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *args: object) -> None:
        self._lock.__exit__(*args)

    def __repr__(self) -> str:
        try:
            waiters: object = self._waiters.sleepers()
        except Exception:
            waiters = "unknown"
        return f"<{type(self).__name__}({self._lock}, {waiters})>"

    def _check_owned(self, what: str) -> None:
        if not self._lock._semlock.is_mine():
            raise AssertionError(f"must acquire() condition before using {what}")

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock, wait for a notification (or ``timeout``), re-acquire; False on timeout."""
        self._check_owned("wait()")
        slot = self._waiters.enroll()
        depth = self._lock._semlock.count()
        for _ in range(depth):
            self._lock.release()
        try:
            return bool(self._waiters.sleep(slot, timeout))
        finally:
            for _ in range(depth):
                self._lock.acquire()

    def notify(self, n: int = 1) -> None:
        """Wake up to ``n`` waiting processes or threads."""
        self._check_owned("notify()")
        self._waiters.notify(n)

    def notify_all(self) -> None:
        """Wake every waiter."""
        self.notify(sys.maxsize)

    def wait_for(self, predicate: Callable[[], W], timeout: float | None = None) -> W:
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

    def __init__(self, *, ctx: BaseContext | None = None) -> None:
        self._cond = Condition(Lock(ctx=ctx, on_owner_death="recover"), ctx=ctx)
        self._flag = _counter(0, ctx=ctx)

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
# How often a barrier's waiters look for parties that died inside it.
_BARRIER_CHECK = 0.2


class Barrier:
    """A barrier for ``parties`` processes or threads, with ``action``, ``timeout``, ``abort`` and ``reset``.

    Its state (filling, draining, resetting, broken) and one slot per party inside ``wait()`` (the process
    identity of who holds it) live in shared memory under its condition's lock; the count of waiters is the
    count of held slots. A party that dies inside ``wait()`` does not wedge the barrier: once the
    others have left, its place is given up, and a party that died releasing the others breaks it.
    """

    def __init__(self, parties: int, action: Callable[[], object] | None = None,
                 timeout: float | None = None, *, ctx: BaseContext | None = None) -> None:
        if parties < 1:
            raise ValueError("parties must be >= 1")
        # state, a spare word, then one process identity per party inside wait()
        arena, offset = _arena.allocate(16 + 8 * parties)
        self._shared = (arena, offset)
        self._cond = Condition(Lock(ctx=ctx, on_owner_death="recover"), ctx=ctx)
        self._action = action
        self._timeout = timeout
        self._parties = parties
        self._attach()
        self._ints[0] = _FILLING
        for i in range(parties):
            self._inside[i] = 0

    def _attach(self) -> None:
        arena, offset = self._shared
        view = memoryview(arena.buffer)[offset : offset + 16 + 8 * self._parties]
        self._ints = view[:16].cast("q")
        self._inside = view[16:].cast("Q")

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
        # Derived from the slots rather than kept beside them: entering and leaving are then one store each,
        # so a party killed between two statements cannot leave a count that no slot accounts for.
        return sum(1 for place in range(self._parties) if self._inside[place])

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
        deadline = None if timeout is None else time.monotonic() + timeout
        me = process_tag()
        with self._cond:
            self._wait_while_draining(deadline)
            index = self._count
            if index >= self._parties:
                self._forget_dead()  # full but not released: the releasing party died
                raise BrokenBarrierError
            place = self._enter(me)
            try:
                if index + 1 == self._parties:
                    self._release_all()
                else:
                    self._wait_for_release(deadline)
                return index
            finally:
                self._inside[place] = 0
                self._wake_if_drained()

    def _enter(self, me: int) -> int:
        # A free slot exists: fewer than ``parties`` are inside, and none enter while the barrier drains.
        place = next(place for place in range(self._parties) if self._inside[place] == 0)
        self._inside[place] = me
        return place

    def _forget_dead(self) -> None:
        """Called with the lock held after a waiter's slice: dead parties must not hold the barrier up."""
        if self._state == _FILLING:
            if self._count >= self._parties:
                # Full but still filling, and we hold the lock: the party releasing the others (running the
                # action) died. The stdlib breaks the barrier when the action raises; so does this.
                self._break()
            # A party that arrived and then died still counts as arrived, as in the stdlib.
            return
        # Draining, resetting or broken: the dead will never leave by themselves.
        for place in range(self._parties):
            tag = int(self._inside[place])
            if tag and not tag_alive(tag):
                self._inside[place] = 0
        self._wake_if_drained()

    def _sliced_wait(self, predicate: Callable[[], bool], deadline: float | None) -> bool:
        while not predicate():
            remaining = _BARRIER_CHECK if deadline is None else min(_BARRIER_CHECK, deadline - time.monotonic())
            if remaining <= 0:
                return False
            if not self._cond.wait(remaining):
                self._forget_dead()
        return True

    def _wait_while_draining(self, deadline: float | None) -> None:
        if not self._sliced_wait(lambda: self._state not in (_DRAINING, _RESETTING), deadline):
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

    def _wait_for_release(self, deadline: float | None) -> None:
        if not self._sliced_wait(lambda: self._state != _FILLING, deadline):
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

