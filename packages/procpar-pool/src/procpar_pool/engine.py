"""procpar-pool's engine interface: what a pool asks of the engine that runs its tasks, and what a job offers it.

Public and versioned with procpar-pool (see its CHANGELOG, "Engine API"): an engine outside this package (a Dask
cluster's, say) implements ``Engine`` and is handed the same jobs as the process and thread engines are.

A pool call makes a job (``ApplyResult``, ``MapResult``, ``IMapIterator``: each a ``TaskSource``) and submits it;
the engine pulls the job's tasks when it has room (``next_tasks``), runs each task (``Task``: a call, or a chunk
of a map, see ``APPLY``/``MAP``/``STARMAP``), and files each outcome back with the job (``set_outcome``), which
wakes the caller. ``fail_all`` ends every unfinished task of a job when the pool stops or breaks. A job is asked
for tasks by one thread at a time.

An engine may also offer ``stats() -> PoolStats`` (what ``pool.stats()`` returns; without it that call raises
``NotImplementedError``) and ``worker_line() -> str`` (the live line of ``progress="workers"``). ``WorkerStats``,
``PoolStats`` and ``GoneWorkers`` (the figures of workers that are gone, the oldest summed) are here for it.

An engine of another package reaches a pool by subclassing ``procpar_pool.pool.Pool`` and overriding its
``_make_engine(processes, *, initializer, initargs, maxtasksperchild, context, prefetch) -> Engine`` (the one
protected hook, versioned with this interface); ``procpar_pool.Executor(pool=...)`` then gives the same engine
the ``concurrent.futures`` API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ._stats import GoneWorkers, PoolStats, WorkerStats
from ._task import APPLY, MAP, STARMAP, PoolState, Task

__all__ = ["Engine", "TaskSource", "Task", "PoolState", "APPLY", "MAP", "STARMAP", "PoolStats", "WorkerStats",
           "GoneWorkers"]


class TaskSource(Protocol):
    """What a job offers an engine: its tasks, and a place for their outcomes."""

    def next_tasks(self, limit: int) -> list[Task]:
        """Up to ``limit`` tasks to run now; none when exhausted or waiting on its consumer (an imap)."""
        ...

    def next_task(self) -> Task | None:
        """``next_tasks(1)``'s task, or None."""
        ...

    def exhausted(self) -> bool:
        """True once it has no task left to offer (it leaves the engine's backlog then)."""
        ...

    def set_outcome(self, index: int, ok: bool, value: object) -> None:
        """Task ``index`` ended: its result (``ok``) or its exception. Runs the job's callbacks."""
        ...

    def set_outcomes(self, outcomes: list[tuple[int, bool, object]]) -> None:
        """Several tasks' outcomes at once (one lock and one wake-up for the lot)."""
        ...

    def fail_all(self, exc: BaseException) -> None:
        """Fail every task not finished yet with ``exc``."""
        ...


class Engine(Protocol):
    """What ``Pool`` asks of the engine running its tasks."""

    #: Chunks an adaptive imap may read ahead beyond its window (0 when the engine has no use for more).
    window_bonus: int

    @property
    def workers(self) -> Sequence[object]:
        """The live workers (``Process`` objects, threads, ...): the stdlib's ``Pool._pool``."""
        ...

    @property
    def state(self) -> PoolState: ...

    @state.setter
    def state(self, value: PoolState) -> None: ...

    def submit(self, job: TaskSource) -> None:
        """Queue a job; ``ValueError`` when the pool no longer takes work."""
        ...

    def call_direct(self, job: TaskSource) -> bool:
        """Run a one-task job with no time limit at once, waiting in the calling thread; False when the engine
        cannot (busy, or no such lane): the caller then submits it."""
        ...

    def close(self) -> None:
        """Take no more jobs; stop once the submitted ones are done."""
        ...

    def terminate(self) -> None:
        """Stop now; every unfinished task fails with ``PoolClosedError``."""
        ...

    def join(self, timeout: float | None = None) -> None:
        """Wait until the engine has stopped (after ``close`` or ``terminate``)."""
        ...

    def wake(self) -> None:
        """Look at everything again now (``Pool._repopulate_pool``)."""
        ...

    def interrupted(self) -> None:
        """Ctrl-C reached a thread waiting on one of its jobs."""
        ...

    def consumer_progress(self, job: TaskSource) -> None:
        """An imap's consumer took results: the job may offer more tasks."""
        ...

    def warn_unclosed(self) -> None:
        """The pool was collected while running: warn (``ResourceWarning``), as the stdlib does."""
        ...
