"""The thread pool's engine: worker threads that take tasks straight from the jobs, nothing pickled."""

from __future__ import annotations

import collections
import itertools
import threading
import time
import warnings
from collections.abc import Iterable

from ._errors import PoolClosedError
from ._stats import PoolStats, WorkerStats
from ._task import APPLY, MAP, PoolState

TYPE_CHECKING = False
if TYPE_CHECKING:

    from ._task import Task
    from ._typing import Function
    from .engine import TaskSource

__all__ = ["ThreadEngine"]

_RUN, _CLOSE, _TERMINATE = PoolState.RUN, PoolState.CLOSE, PoolState.TERMINATE


def _run(task: Task) -> object:
    func = task.func
    payload = task.payload
    assert callable(func)
    if task.kind == APPLY:
        assert isinstance(payload, tuple)
        args, kwds = payload
        return func(*args, **kwds)
    assert isinstance(payload, Iterable)
    if task.kind == MAP:
        return list(map(func, payload))
    return list(itertools.starmap(func, payload))


class _ThreadFigures:
    """One worker thread's counts, written by that thread only (read without a lock: a figure may lag by a
    task). Its clock is read only when it goes to sleep for want of a task, never per task: a thread that is
    not waiting is working (taking, running, filing tasks)."""

    __slots__ = ("ended_at", "exit_cause", "ident", "launched_at", "ready_at", "tasks", "waited",
                 "waiting_since")

    def __init__(self) -> None:
        self.launched_at = time.monotonic()
        self.ident: int | None = None
        self.ready_at: float | None = None
        self.ended_at: float | None = None
        self.exit_cause = "pool closed"
        self.waited = 0.0
        self.waiting_since: float | None = None
        self.tasks = 0

    def stats(self, now: float) -> WorkerStats:
        end = self.ended_at if self.ended_at is not None else now
        ready = self.ready_at
        starting = (ready if ready is not None else end) - self.launched_at
        waiting, working = 0.0, 0.0
        if ready is not None:
            since = self.waiting_since
            waiting = self.waited + (end - since if since is not None else 0.0)
            working = max(0.0, end - ready - waiting)
        return WorkerStats(self.ident, self.ended_at is None, self.tasks, working, waiting, max(0.0, starting),
                           None if self.ended_at is None else self.exit_cause)


class ThreadEngine:
    """Runs jobs' tasks on ``processes`` threads of this process (the ``procpar_pool.engine.Engine`` protocol)."""

    window_bonus = 0  # imap's read-ahead window stays at max_ahead: threads take one task at a time

    def __init__(self, processes: int, *, initializer: Function | None,
                 initargs: tuple[object, ...]) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._state = _RUN
        self._sources: collections.deque[TaskSource] = collections.deque()
        self._initializer = initializer
        self._initargs = initargs
        self._broken: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._figures: list[_ThreadFigures] = []
        self._started_at = time.monotonic()
        for n in range(processes):
            figures = _ThreadFigures()
            thread = threading.Thread(target=self._work, args=(figures,), name=f"ThreadPoolWorker-{n + 1}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
            self._figures.append(figures)

    @property
    def workers(self) -> list[threading.Thread]:
        return list(self._threads)

    @property
    def state(self) -> PoolState:
        return self._state

    @state.setter
    def state(self, value: PoolState) -> None:
        with self._cond:
            self._state = PoolState(value)

    def submit(self, job: TaskSource) -> None:
        with self._cond:
            if self._state is not _RUN:
                raise ValueError("Pool not running")
            if self._broken is not None:
                raise self._broken
            self._sources.append(job)
            self._cond.notify_all()

    def call_direct(self, job: TaskSource) -> bool:
        return False  # the threads take jobs from the queue themselves: no lane to skip

    def close(self) -> None:
        with self._cond:
            if self._state is _RUN:
                self._state = _CLOSE
            self._cond.notify_all()

    def terminate(self) -> None:
        with self._cond:
            self._state = _TERMINATE
            sources = list(self._sources)
            self._sources.clear()
            self._cond.notify_all()
        # Threads cannot be killed: running tasks finish, everything not started fails now.
        error = PoolClosedError("the pool was terminated before this task ran")
        for job in sources:
            job.fail_all(error)

    def join(self, timeout: float | None = None) -> None:
        if self._state is _RUN:
            raise ValueError("Pool is still running")
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def interrupted(self) -> None:
        self.terminate()

    def consumer_progress(self, job: TaskSource) -> None:
        self.wake()

    def stats(self) -> PoolStats:
        """``pool.stats()``: per worker thread (its native thread id in ``pid``), tasks done and seconds working,
        waiting and starting; threads are never replaced and pass nothing through shared memory."""
        now = time.monotonic()
        return PoolStats([f.stats(now) for f in self._figures], {}, 0, 0, now - self._started_at)

    def worker_line(self) -> str:
        """``progress="workers"``: tasks done per live worker thread."""
        return " ".join(f"{f.ident}:{f.tasks}" for f in self._figures if f.ended_at is None)

    def warn_unclosed(self) -> None:
        if self._state is _RUN:
            warnings.warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, stacklevel=3)

    def _initializer_failed(self, exc: BaseException) -> None:
        # As in the process pool: no task can run as the caller meant it, so each fails with this error (and
        # none waits for a thread that will never take it).
        broken = RuntimeError(f"the pool's initializer raised in a worker thread, so the pool cannot run tasks: "
                              f"{exc!r}")
        broken.__cause__ = exc
        with self._cond:
            if self._broken is None:
                self._broken = broken
            sources = list(self._sources)
            self._sources.clear()
            self._cond.notify_all()
        for job in sources:
            job.fail_all(self._broken)

    def _take(self, figures: _ThreadFigures) -> Task | None:
        with self._cond:
            while True:
                if self._state is _TERMINATE or self._broken is not None:
                    return None
                task = self._next_task()
                if task is not None:
                    return task
                if self._state is _CLOSE and not self._sources:
                    self._cond.notify_all()
                    return None
                figures.waiting_since = began = time.monotonic()
                self._cond.wait()
                figures.waiting_since = None
                figures.waited += time.monotonic() - began

    def _next_task(self) -> Task | None:
        # A function of its own so that no local keeps the last job alive while the thread waits.
        for job in list(self._sources):
            task = job.next_task()
            if task is not None:
                return task
            if job.exhausted():
                self._sources.remove(job)
        return None

    def _work(self, figures: _ThreadFigures) -> None:
        figures.ident = threading.get_native_id()
        try:
            if self._initializer is not None:
                try:
                    self._initializer(*self._initargs)
                except Exception as exc:
                    figures.exit_cause = f"initializer raised {type(exc).__name__}"
                    self._initializer_failed(exc)
                    return
            figures.ready_at = time.monotonic()
            while True:
                task = self._take(figures)
                if task is None:
                    return
                ok = True
                try:
                    result = _run(task)
                except Exception as exc:
                    ok, result = False, exc  # raised with its own traceback: same process
                figures.tasks += 1  # before the outcome wakes the caller, who may ask for the figures
                task.job.set_outcome(task.index, ok, result)
                del result
                # Not kept alive while this thread waits for its next task (arguments and results are the
                # caller's).
                del task
        except BaseException as exc:
            figures.exit_cause = f"raised {type(exc).__name__}"
            raise
        finally:
            figures.ended_at = time.monotonic()
