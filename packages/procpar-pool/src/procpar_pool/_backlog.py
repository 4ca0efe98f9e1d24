"""The process engine's backlog: the work not handed to a worker yet.

Two parts, taken in this order: tasks set aside (those a dead worker had not started, or planned but not sent
for lack of room), then the jobs, in the order they were submitted, each asked for its next tasks. A job leaves
the backlog once it has no task left to offer.

``lock`` guards the list of jobs together with the pool's state (the engine takes it for both, so that a job
submitted while the pool stops is either refused or failed, never forgotten). Jobs are asked for tasks outside
the lock: an imap reads its caller's iterable then, which may take any time. Tasks set aside are only touched
by the engine's thread or a thread holding the engine's mutex.
"""

from __future__ import annotations

import collections
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._task import Task
    from .engine import TaskSource

__all__ = ["Backlog"]


class Backlog:
    __slots__ = ("_jobs", "_set_aside", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._jobs: collections.deque[TaskSource] = collections.deque()
        self._set_aside: collections.deque[Task] = collections.deque()

    def add_locked(self, job: TaskSource) -> None:
        """Queue a job (the caller holds ``lock``, having checked that the pool takes work)."""
        self._jobs.append(job)

    def set_aside(self, tasks: list[Task]) -> None:
        """Tasks that go first next time, in this order."""
        self._set_aside.extendleft(reversed(tasks))

    def take(self, limit: int) -> list[Task]:
        """Up to ``limit`` tasks: those set aside first, then from the jobs in the order they came."""
        tasks: list[Task] = []
        ready = self._set_aside
        while ready and len(tasks) < limit:
            tasks.append(ready.popleft())
        if len(tasks) >= limit:
            return tasks
        with self.lock:
            jobs = list(self._jobs)
        for job in jobs:
            tasks += job.next_tasks(limit - len(tasks))
            if len(tasks) >= limit:
                break
            if job.exhausted():
                with self.lock:
                    try:
                        self._jobs.remove(job)
                    except ValueError:
                        pass
        return tasks

    def has_jobs(self) -> bool:
        return bool(self._jobs)

    def has_tasks_set_aside(self) -> bool:
        return bool(self._set_aside)

    def pending(self) -> bool:
        """Is there work a worker could be given (now or once a job's consumer makes room)?"""
        return bool(self._set_aside) or any(not job.exhausted() for job in list(self._jobs))

    def empty(self) -> bool:
        return not self._jobs and not self._set_aside

    def drain_jobs_locked(self) -> list[TaskSource]:
        """Remove and return every job (the caller holds ``lock``)."""
        jobs = list(self._jobs)
        self._jobs.clear()
        return jobs

    def drain_set_aside(self) -> list[Task]:
        tasks = list(self._set_aside)
        self._set_aside.clear()
        return tasks
