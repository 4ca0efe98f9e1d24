"""One warm pool shared by every caller of ``get_reusable_pool``, as loky's ``get_reusable_executor`` offers.

A program that makes a pool per call (a library function that parallelises its own loop, a notebook cell run
again and again) pays for a pool's start each time. ``get_reusable_pool()`` hands back the same pool instead,
with its workers already running. The pool object stays valid for as long as the caller keeps it: when nobody
has used it for ``idle_timeout`` seconds its workers are let go (``close()``: what was submitted finishes), and
the next call through the same object starts new ones. A call asking for another size, initializer or start
method reconfigures that same pool the same way: its current work finishes on the old workers, new work goes
to new ones.
"""

from __future__ import annotations

import _thread
import functools
import os
import threading
import time

from procpar_core.util import Finalize

from ._pool import _EXIT_PRIORITY, Pool
from ._task import PoolState

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Concatenate, ParamSpec, TypeVar, Union

    from procpar_core.context import BaseContext

    from ._executor import Executor
    from ._typing import Function
    from .engine import Engine

    # initializer, initargs, maxtasksperchild, context
    _Config = tuple[Union[Function, None], tuple[object, ...], Union[int, None], Union[BaseContext, None]]
    P = ParamSpec("P")
    R = TypeVar("R")

__all__ = ["ReusablePool", "get_reusable_pool", "get_reusable_executor"]

DEFAULT_IDLE_TIMEOUT = 300.0


def _pinned(method: Callable[Concatenate[Pool, P], R]) -> Callable[Concatenate[ReusablePool, P], R]:
    @functools.wraps(method)
    def call(self: ReusablePool, /, *args: P.args, **kwargs: P.kwargs) -> R:
        pinned = self._pin()
        try:
            return method(self, *args, **kwargs)
        finally:
            self._unpin(pinned)

    return call


class ReusablePool(Pool):
    """The pool ``get_reusable_pool`` returns: a ``Pool`` whose workers come back on demand after an idle spell.

    ``close()`` and ``terminate()`` end it for good (the next ``get_reusable_pool()`` makes another); leaving a
    ``with`` block does not, since other callers share it.
    """

    def __init__(self, processes: int | None, initializer: Function | None, initargs: Iterable[object],
                 maxtasksperchild: int | None, context: BaseContext | None, idle_timeout: float) -> None:
        self._guard = threading.Lock()
        self._current: Engine | None = None
        self._retiring: list[Engine] = []  # let go once no call is inside a pool method
        self._calls = 0
        self._local = threading.local()  # the engine a call in this thread started with
        self._ended = False
        self._last_used = time.monotonic()
        self._idle_timeout = idle_timeout
        self._config: _Config = (initializer, tuple(initargs), maxtasksperchild, context)
        self._watch = threading.Condition(self._guard)  # wakes the idle watcher: a new timeout, the end
        super().__init__(processes, initializer, initargs, maxtasksperchild, context)
        _thread.start_new_thread(self._watch_idle, ())

    # Every Pool method reaches its engine through this attribute: a pool whose workers were let go while
    # idle gets new ones on the first call that needs them. A call keeps the engine it started with (a job
    # must be submitted to the engine it was made for), even if the pool is reconfigured meanwhile.
    @property
    def _engine(self) -> Engine:
        pinned: Engine | None = getattr(self._local, "engine", None)
        if pinned is not None:
            return pinned
        with self._guard:
            return self._current_locked()

    @_engine.setter
    def _engine(self, engine: Engine) -> None:
        with self._guard:
            self._current = engine

    def _current_locked(self) -> Engine:
        self._last_used = time.monotonic()
        current = self._current
        if current is None:
            initializer, initargs, maxtasksperchild, context = self._config
            current = self._current = self._make_engine(
                self._processes, initializer=initializer, initargs=initargs,
                maxtasksperchild=maxtasksperchild, context=context, prefetch=None)
        return current

    def _pin(self) -> bool:
        if getattr(self._local, "engine", None) is not None:
            return False  # a pool call made from inside another (a callback): it already holds one
        with self._guard:
            self._calls += 1
            self._local.engine = self._current_locked()
        return True

    def _unpin(self, pinned: bool) -> None:
        if not pinned:
            return
        self._local.engine = None
        with self._guard:
            self._calls -= 1
            retiring = self._retiring if self._calls == 0 else []
            if retiring:
                self._retiring = []
        for engine in retiring:
            _let_go(engine)

    # The calls that hand work to an engine hold it for their duration (see _engine).
    # (pyright: a wrapper's self is positional-only, the base's is not; nobody passes self by name.)
    apply = _pinned(Pool.apply)  # pyright: ignore[reportAssignmentType]
    apply_async = _pinned(Pool.apply_async)  # pyright: ignore[reportAssignmentType]
    _map_async = _pinned(Pool._map_async)  # pyright: ignore[reportAssignmentType]
    _imap = _pinned(Pool._imap)  # pyright: ignore[reportAssignmentType]

    def _matches(self, processes: int, config: _Config) -> bool:
        if processes != self._processes:
            return False
        *mine, my_context = self._config
        *theirs, their_context = config
        if _start_method(my_context) != _start_method(their_context):
            return False
        try:
            return all(a is b or a == b for a, b in zip(mine, theirs, strict=True))
        except Exception:  # initargs whose comparison raises (numpy arrays): treat as different
            return False

    def _reconfigure(self, processes: int, config: _Config) -> None:
        """Later calls run on workers made with these arguments; the current ones finish what they hold."""
        with self._guard:
            self._processes = processes
            self._config = config
            old, self._current = self._current, None
            if old is not None and self._calls:
                self._retiring.append(old)
                old = None
        if old is not None:
            _let_go(old)

    def _set_idle_timeout(self, seconds: float) -> None:
        with self._guard:
            if seconds != self._idle_timeout:
                self._idle_timeout = seconds
                self._watch.notify()

    def _watch_idle(self) -> None:
        with self._guard:
            while not self._ended:
                self._watch.wait(max(0.05, self._idle_timeout / 4))
                current = self._current
                if (self._ended or current is None or self._calls
                        or time.monotonic() - self._last_used < self._idle_timeout or not _looks_idle(current)):
                    continue
                self._current = None
                self._guard.release()  # let go of the workers without holding up callers
                try:
                    _let_go(current)
                finally:
                    self._guard.acquire()

    def _end(self, terminate: bool) -> None:
        with self._guard:
            self._ended = True
            self._watch.notify()
            engines = [*self._retiring, *([self._current] if self._current is not None else [])]
        _forget(self)
        for engine in engines:
            if terminate:
                engine.terminate()
            else:
                engine.close()

    def close(self) -> None:
        self._end(terminate=False)

    def terminate(self) -> None:
        self._end(terminate=True)

    def join(self, timeout: float | None = None) -> None:
        with self._guard:
            engines = [*self._retiring, *([self._current] if self._current is not None else [])]
        for engine in engines:
            engine.join(timeout)

    def _check_running(self) -> None:
        if self._ended:
            raise ValueError("Pool not running")

    @property
    def _state(self) -> PoolState:
        if self._ended:
            with self._guard:
                current = self._current
            return current.state if current is not None else PoolState.TERMINATE
        return PoolState.RUN

    @_state.setter
    def _state(self, value: PoolState) -> None:
        self._engine.state = value

    def __exit__(self, *exc_info: object) -> None:
        pass  # shared: the next caller should find it warm


def _start_method(context: BaseContext | None) -> str:
    # procpar.get_reusable_pool() (no context) and procpar.get_context().get_reusable_pool() mean one pool.
    if context is None:
        import procpar_core

        context = procpar_core.get_context()
    return str(context.get_start_method())


def _looks_idle(engine: Engine) -> bool:
    # A hint read without the engine's lock: a wrong answer only lets go of workers a little early (close()
    # lets them finish what they hold) or a little late.
    all_done = getattr(engine, "_all_done", None)
    return bool(all_done()) if all_done is not None else True


def _let_go(engine: Engine) -> None:
    """Workers no longer wanted: they finish what they hold, then exit; reaped in the background."""
    engine.close()
    _thread.start_new_thread(engine.join, ())


_lock = threading.Lock()
_shared: ReusablePool | None = None
_shared_executor: Executor | None = None


def _forget(pool: ReusablePool) -> None:
    global _shared, _shared_executor
    with _lock:
        if _shared is pool:
            _shared = None
            _shared_executor = None


def get_reusable_pool(processes: int | None = None, initializer: Function | None = None,
                      initargs: Iterable[object] = (), maxtasksperchild: int | None = None,
                      context: BaseContext | None = None, *, idle_timeout: float = DEFAULT_IDLE_TIMEOUT
                      ) -> ReusablePool:
    """The process pool shared by the callers of this function, started on the first call.

    Later calls return the same pool, its workers warm (well under a millisecond); a call with another
    ``processes``, ``initializer``, ``initargs``, ``maxtasksperchild`` or ``context`` reconfigures it (work
    already submitted finishes on the old workers). Workers unused for ``idle_timeout`` seconds exit and come
    back on the next call; the pool ends at interpreter exit, or with ``close()``/``terminate()``.
    """
    global _shared
    if not isinstance(idle_timeout, (int, float)) or isinstance(idle_timeout, bool) or idle_timeout <= 0:
        raise ValueError(f"idle_timeout must be a positive number of seconds, not {idle_timeout!r}")
    if processes is None:
        processes = os.cpu_count() or 1
    if not isinstance(processes, int) or processes < 1:
        raise ValueError("Number of processes must be at least 1")
    config: _Config = (initializer, tuple(initargs), maxtasksperchild, context)
    with _lock:
        pool = _shared
        if pool is None or pool._ended:
            pool = _shared = ReusablePool(processes, initializer, config[1], maxtasksperchild, context,
                                          float(idle_timeout))
            _end_at_exit_of(os.getpid())
            return pool
        pool._set_idle_timeout(float(idle_timeout))
        if not pool._matches(processes, config):
            pool._reconfigure(processes, config)
        return pool


def get_reusable_executor(max_workers: int | None = None, mp_context: BaseContext | None = None,
                          initializer: Function | None = None, initargs: tuple[object, ...] = (), *,
                          max_tasks_per_child: int | None = None, idle_timeout: float = DEFAULT_IDLE_TIMEOUT
                          ) -> Executor:
    """An ``Executor`` on the pool of ``get_reusable_pool``, shared the same way (``shutdown()`` ends both)."""
    global _shared_executor
    from ._executor import Executor  # concurrent.futures: only for those who ask for an executor

    pool = get_reusable_pool(max_workers, initializer, initargs, max_tasks_per_child, mp_context,
                             idle_timeout=idle_timeout)
    with _lock:
        executor = _shared_executor
        if executor is None or executor._pool is not pool or executor._shutdown:
            executor = _shared_executor = Executor(pool=pool)
        executor._depth = 2 * pool._processes  # the pool may have been resized
        return executor


def _forget_in_child() -> None:
    # A forked child has none of the parent's workers or threads: its first call makes a pool of its own.
    global _lock, _shared, _shared_executor
    _lock = threading.Lock()
    _shared = None
    _shared_executor = None


os.register_at_fork(after_in_child=_forget_in_child)


_exit_hook_pid = 0


def _end_at_exit_of(pid: int) -> None:
    # Once per process (a forked child registers its own): the exit sequence ends the shared pool with the
    # other pools, before it stops this process's children. An atexit hook would not run in a forked child.
    global _exit_hook_pid
    if _exit_hook_pid != pid:
        _exit_hook_pid = pid
        Finalize(None, _end_at_exit, exitpriority=_EXIT_PRIORITY)


def _end_at_exit() -> None:
    pool = _shared
    if pool is not None:
        pool.terminate()
        pool.join(5.0)
