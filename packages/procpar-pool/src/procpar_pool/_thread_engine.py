"""The thread pool's engine: worker threads that take tasks straight from the jobs, nothing pickled."""

from __future__ import annotations

import collections
import itertools
import threading
import warnings
from collections.abc import Iterable

from ._errors import PoolClosedError
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
        self._threads: list[threading.Thread] = []
        for n in range(processes):
            thread = threading.Thread(target=self._work, name=f"ThreadPoolWorker-{n + 1}", daemon=True)
            thread.start()
            self._threads.append(thread)

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

    def warn_unclosed(self) -> None:
        if self._state is _RUN:
            warnings.warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, stacklevel=3)

    def _take(self) -> Task | None:
        with self._cond:
            while True:
                if self._state is _TERMINATE:
                    return None
                task = self._next_task()
                if task is not None:
                    return task
                if self._state is _CLOSE and not self._sources:
                    self._cond.notify_all()
                    return None
                self._cond.wait()

    def _next_task(self) -> Task | None:
        # A function of its own so that no local keeps the last job alive while the thread waits.
        for job in list(self._sources):
            task = job.next_task()
            if task is not None:
                return task
            if job.exhausted():
                self._sources.remove(job)
        return None

    def _work(self) -> None:
        if self._initializer is not None:
            self._initializer(*self._initargs)
        while True:
            task = self._take()
            if task is None:
                return
            try:
                result = _run(task)
            except Exception as exc:
                task.job.set_outcome(task.index, False, exc)  # raised with its own traceback: same process
            else:
                task.job.set_outcome(task.index, True, result)
                del result
            # Not kept alive while this thread waits for its next task (arguments and results are the caller's).
            del task
