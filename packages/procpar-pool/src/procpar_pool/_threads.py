"""The thread pool's engine: worker threads that take tasks straight from the jobs, nothing pickled."""

from __future__ import annotations

import collections
import itertools
import threading
import warnings

from ._errors import PoolClosedError
from ._results import APPLY, MAP, Job, Task

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ThreadDispatcher"]

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"


def _run(task: Task) -> Any:
    if task.kind == APPLY:
        args, kwds = task.payload
        return task.func(*args, **kwds)
    if task.kind == MAP:
        return list(map(task.func, task.payload))
    return list(itertools.starmap(task.func, task.payload))


class ThreadDispatcher:
    """Runs jobs' tasks on ``processes`` threads of this process (same interface as the process dispatcher)."""

    window_bonus = 0  # imap's read-ahead window stays at max_ahead: threads take one task at a time

    def __init__(self, processes: int, initializer: Any, initargs: tuple[Any, ...]) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._state = RUN
        self._sources: collections.deque[Job] = collections.deque()
        self._running: set[Task] = set()
        self._initializer = initializer
        self._initargs = initargs
        self.processes: list[threading.Thread] = []
        for n in range(processes):
            thread = threading.Thread(target=self._work, name=f"ThreadPoolWorker-{n + 1}", daemon=True)
            thread.start()
            self.processes.append(thread)

    @property
    def state(self) -> str:
        return self._state

    def submit(self, job: Job) -> None:
        with self._cond:
            if self._state != RUN:
                raise ValueError("Pool not running")
            self._sources.append(job)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            if self._state == RUN:
                self._state = CLOSE
            self._cond.notify_all()

    def terminate(self) -> None:
        with self._cond:
            self._state = TERMINATE
            sources = list(self._sources)
            self._sources.clear()
            self._cond.notify_all()
        # Threads cannot be killed: running tasks finish, everything not started fails now.
        error = PoolClosedError("the pool was terminated before this task ran")
        for job in sources:
            job._fail_all(error)

    def join(self, timeout: float | None = None) -> None:
        if self._state == RUN:
            raise ValueError("Pool is still running")
        for thread in self.processes:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _interrupted(self) -> None:
        self.terminate()

    def _consumer_progress(self, job: Job) -> None:
        with self._cond:
            self._cond.notify_all()

    def warn_unclosed(self) -> None:
        if self._state == RUN:
            warnings.warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, stacklevel=3)

    def _take(self) -> Task | None:
        with self._cond:
            while True:
                if self._state == TERMINATE:
                    return None
                task = self._next_task()
                if task is not None:
                    return task
                if self._state == CLOSE and not self._sources:
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
                task.job._set(task.index, False, exc)  # raised with its own traceback: same process
            else:
                task.job._set(task.index, True, result)
                del result
            # Not kept alive while this thread waits for its next task (arguments and results are the caller's).
            del task
