"""The process engine's worker processes: starting them, replacing them, watching their memory and their time
limits, and stopping them. Which tasks they hold, and what becomes of those, is the engine's business.

A worker's socket pair and Process object are made before any worker is forked (until a new worker runs, each
page the parent writes is copied first). A child forked meanwhile must not keep the sockets of workers not
started yet (``close_in_child``), except its own end.
"""

from __future__ import annotations

import time

from procpar_core.connection import Pipe
from procpar_sync.lowlevel import write_messages

from . import _oob
from ._errors import MemoryLimitError, WorkerLostError, describe_exit, oom_kill_count
from ._handle import WorkerHandle, WorkerState
from ._protocol import STOP
from ._running import RunningTask
from ._stats import GoneWorkers, PoolStats, WorkerStats
from ._worker import resident_bytes, worker_main

TYPE_CHECKING = False
if TYPE_CHECKING:

    from procpar_core.connection import Connection
    from procpar_core.context import BaseContext
    from procpar_core.process import BaseProcess

    from ._task import Task
    from ._typing import Function

__all__ = ["WorkerFleet", "MEMORY_CHECK_SECONDS"]

# With max_memory_per_child, how often the resident memory of busy workers is looked at.
MEMORY_CHECK_SECONDS = 0.05


class WorkerFleet:
    """A pool's live workers (``workers``, in start order) and how to start and stop them."""

    def __init__(self, ctx: BaseContext, *, initializer: Function | None,
                 initargs: tuple[object, ...], maxtasksperchild: int | None, max_memory: int | None) -> None:
        self._ctx = ctx
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasks = maxtasksperchild
        self.max_memory = max_memory
        self.workers: list[WorkerHandle] = []
        self._unstarted: list[Connection] = []  # sockets of workers made but not started yet
        self.changed = True  # a worker came or went since the engine last built its poll set
        # pool.stats(): the workers that are gone, and the causes of the replacements.
        self.started_at = time.monotonic()
        self.shm_bytes = _oob.SegmentBytes()
        self.gone = GoneWorkers()
        self.restarts: dict[str, int] = {}
        self.memory_checked = 0.0
        # Large buffers travel in shared memory registered with the resource tracker; the workers must share the
        # pool's tracker (one started later would be theirs alone and misreport their segments).
        _oob.ensure_tracker()

    @property
    def processes(self) -> list[BaseProcess]:
        return [worker.process for worker in self.workers]

    def start(self, count: int) -> None:
        """Start ``count`` workers, every one prepared before the first fork; none left behind on failure."""
        try:
            prepared = [self._prepare() for _ in range(count)]
            for worker, child_end in prepared:
                self._launch(worker, child_end)
        except BaseException:
            for conn in self._unstarted:
                conn.close()
            self._unstarted.clear()
            for worker in self.workers:
                worker.process.terminate()
            for worker in self.workers:
                worker.process.join()
            for worker in list(self.workers):
                self.forget(worker)
            raise

    def replace(self, cause: str) -> None:
        """Start one worker in place of one that exited for ``cause`` (counted in ``pool.stats()``'s restarts)."""
        self.restarts[cause] = self.restarts.get(cause, 0) + 1
        self._launch(*self._prepare())

    def _prepare(self) -> tuple[WorkerHandle, Connection]:
        parent_end, child_end = Pipe(duplex=True)
        self._unstarted += [parent_end, child_end]
        running = RunningTask()
        process = self._ctx.Process(target=worker_main, args=(child_end, self._initializer, self._initargs,
                                                              self._maxtasks, running, self.max_memory),
                                    daemon=True)
        process.name = process.name.replace("Process", "PoolWorker")
        return WorkerHandle(process, parent_end, self._maxtasks, running), child_end

    def _launch(self, worker: WorkerHandle, child_end: Connection) -> None:
        self._unstarted.remove(child_end)  # the new worker keeps this one
        worker.launched_at = time.monotonic()
        try:
            worker.process.start()
        except BaseException:
            worker.conn.close()
            worker.running.close()
            raise
        finally:
            self._unstarted.remove(worker.conn)
            child_end.close()
        # A Process stand-in without a sentinel (CPython's suite passes one) is watched through its socket only.
        worker.started(getattr(worker.process, "sentinel", -1))
        self.workers.append(worker)
        self.changed = True

    def forget(self, worker: WorkerHandle) -> None:
        """It exited: close what the pool held of it."""
        self.workers.remove(worker)
        worker.lost_socket()
        try:
            worker.conn.close()
        except OSError:
            pass
        worker.running.close()
        self.changed = True

    def reap(self, worker: WorkerHandle) -> tuple[int | None, int | None]:
        """Its sentinel fired: wait for it, forget it; returns its exit code and the id of the task it ran."""
        worker.process.join(5)
        exitcode = worker.process.exitcode
        running_id = worker.running.get()
        # Read once per death: the kernel's OOM counter is a cgroup file (lost_error's message uses it too).
        worker.oom_killed = exitcode == -9 and oom_kill_count() > worker.oom_kills
        worker.exit_cause = self._exit_cause(worker, exitcode)
        self._remember(worker, worker.exit_cause)
        self.forget(worker)
        return exitcode, running_id

    @staticmethod
    def _exit_cause(worker: WorkerHandle, exitcode: int | None) -> str:
        if worker.over_memory is not None:
            return "memory limit"
        if worker.stop_reason is not None:
            return worker.stop_reason
        if exitcode == 0:
            return "maxtasksperchild" if worker.quota == 0 else "exited"
        if exitcode is None:
            return "disappeared"
        if exitcode < 0:
            import signal  # only when a worker was killed

            if worker.oom_killed:
                return "out of memory (kernel)"
            try:
                return f"killed by {signal.Signals(-exitcode).name}"
            except ValueError:
                return f"killed by signal {-exitcode}"
        return f"exit code {exitcode}"

    def _remember(self, worker: WorkerHandle, cause: str) -> None:
        self.gone.add(self._figures(worker, time.monotonic(), cause))

    @staticmethod
    def _figures(worker: WorkerHandle, now: float, cause: str | None) -> WorkerStats:
        ready = worker.running.ready_at() if worker.running.fd >= 0 else None
        launched = worker.launched_at or now
        starting = (ready if ready is not None else now) - launched
        working = worker.busy_seconds(now)
        waiting = max(0.0, now - ready - working) if ready is not None else 0.0
        return WorkerStats(worker.process.pid, cause is None, worker.tasks_done, working, waiting,
                           max(0.0, starting), cause)

    def stats(self) -> PoolStats:
        """The figures of the live workers and of those gone (call with the engine's mutex held)."""
        now = time.monotonic()
        live = [self._figures(worker, now, None) for worker in self.workers]
        return PoolStats(live + self.gone.rows(), dict(self.restarts), self.shm_bytes.sent, self.shm_bytes.received,
                         now - self.started_at)

    def lost_error(self, worker: WorkerHandle, exitcode: int | None) -> WorkerLostError:
        """Why the task a dead worker was running failed."""
        pid = worker.process.pid
        status = "no exit code" if exitcode is None else f"exit code {exitcode}"
        if worker.over_memory is not None:
            limit = self.max_memory or 0
            return MemoryLimitError(
                f"the task used too much memory: its worker reached {worker.over_memory >> 20} MiB, over "
                f"max_memory_per_child={limit} bytes ({limit >> 20} MiB), and was stopped (worker pid {pid}, "
                f"{status}). The worker was replaced; other tasks go on.", exitcode, pid)
        reason = describe_exit(exitcode, oom_killed=worker.oom_killed)
        return WorkerLostError(
            f"the task could not finish: {reason} (worker pid {pid}, {status}). The worker was replaced; other "
            f"tasks go on.", exitcode, pid)

    def next_deadline(self) -> float | None:
        """When the engine must look again even if nothing happens: a timed task's end, a memory check."""
        deadlines = [w.deadline for w in self.workers if w.deadline is not None]
        if self.max_memory is not None and any(w.inflight for w in self.workers):
            deadlines.append(self.memory_checked + MEMORY_CHECK_SECONDS)
        return min(deadlines) if deadlines else None

    def check_memory(self) -> None:
        """With max_memory_per_child: kill a busy worker whose resident memory is over the limit (its sentinel
        fires next: its task fails, it is replaced)."""
        limit = self.max_memory
        now = time.monotonic()
        if limit is None or now - self.memory_checked < MEMORY_CHECK_SECONDS:
            return
        self.memory_checked = now
        for worker in self.workers:
            if worker.inflight and worker.state is not WorkerState.RETIRING and worker.process.pid is not None:
                rss = resident_bytes(worker.process.pid)
                if rss is not None and rss > limit:
                    worker.over_memory = rss
                    worker.retire()
                    worker.process.kill()

    def expire(self) -> list[Task]:
        """Kill the workers whose timed task ran past its deadline; returns those tasks (no worker holds them
        any more; the engine fails them)."""
        now = time.monotonic()
        expired: list[Task] = []
        for worker in self.workers:
            if worker.deadline is None or now < worker.deadline:
                continue
            worker.deadline = None
            expired += worker.take_all()
            worker.stop_reason = "time limit"
            worker.retire()
            worker.process.kill()  # its sentinel fires next, and it is replaced then
        return expired

    def stop(self) -> None:
        """Closed and idle: ask every worker to stop, wait for them, forget them."""
        for worker in self.workers:
            try:
                write_messages(worker.fd, [STOP])
            except OSError:
                pass
        for worker in list(self.workers):
            worker.process.join(10)
            if worker.process.exitcode is None:
                worker.process.terminate()
                worker.process.join(5)
            self._remember(worker, "pool closed")
            self.forget(worker)

    def kill(self) -> None:
        """Terminate every worker now and wait for them (a SIGKILL for one that ignores SIGTERM); the engine then
        fails what they held and forgets them."""
        for worker in self.workers:
            if worker.process.exitcode is None:
                worker.process.terminate()
        for worker in list(self.workers):
            worker.process.join(5)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join(5)
            self._remember(worker, "pool terminated")

    def close_in_child(self) -> None:
        """In a child forked from the pool's process: close every socket of the pool's."""
        for conn in [w.conn for w in self.workers] + self._unstarted:
            try:
                conn.close()
            except OSError:
                pass
        for worker in self.workers:
            worker.running.close()
        self.workers = []
        self._unstarted = []
