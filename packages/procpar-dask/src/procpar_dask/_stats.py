"""``pool.stats()`` of a pool on Dask: per Dask worker, from what the engine already reads.

Every reply of a bundle says which worker ran it and for how long; the engine's periodic look at the scheduler
says which workers there are. A worker is *working* for the seconds its bundles ran, *waiting* for the rest of
its thread-seconds since the pool first saw it; *starting* is not the pool's to see (the cluster started it).
"""

from __future__ import annotations

import time

from procpar_pool.engine import GoneWorkers, PoolStats, WorkerStats

__all__ = ["ClusterFigures"]


class _Worker:
    __slots__ = ("address", "seen_at", "tasks", "threads", "working")

    def __init__(self, address: str, threads: int, now: float) -> None:
        self.address = address
        self.threads = threads
        self.seen_at = now
        self.tasks = 0
        self.working = 0.0

    def stats(self, now: float, cause: str | None) -> WorkerStats:
        thread_seconds = max(0.0, now - self.seen_at) * max(self.threads, 1)
        return WorkerStats(None, cause is None, self.tasks, self.working, max(0.0, thread_seconds - self.working),
                           0.0, cause, address=self.address)


class ClusterFigures:
    """What the pool saw each Dask worker do. Written by the engine's thread; ``stats()`` reads it from any."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self._live: dict[str, _Worker] = {}
        self._gone = GoneWorkers()
        self._going: dict[str, str] = {}  # address -> why it is expected to leave
        self._restarts: dict[str, int] = {}

    def seen(self, threads: dict[str, int]) -> None:
        """The scheduler's workers now (address -> threads): new ones start counting, missing ones are gone."""
        now = time.monotonic()
        for address, count in threads.items():
            worker = self._live.get(address)
            if worker is None:
                self._live[address] = _Worker(address, count, now)
            else:
                worker.threads = count
        for address in [a for a in self._live if a not in threads]:
            self._gone.add(self._live.pop(address).stats(now, self._going.pop(address, "left the cluster")))

    def ran(self, address: str, tasks: int, seconds: float) -> None:
        worker = self._live.get(address)
        if worker is None:  # joined since the last look
            worker = self._live[address] = _Worker(address, 1, time.monotonic())
        worker.tasks += tasks
        worker.working += seconds

    def going(self, address: str, cause: str) -> None:
        """``address`` is restarted by the pool (``maxtasksperchild``, ``time limit``) or died (``died``): one
        restart of that cause (a death is counted once, however many bundles it took with it)."""
        if cause == "died" and address in self._going:
            return
        self._going[address] = cause
        self._restarts[cause] = self._restarts.get(cause, 0) + 1

    def ended(self) -> None:
        """The pool stopped: its use of the workers ended."""
        now = time.monotonic()
        for address in list(self._live):
            self._gone.add(self._live.pop(address).stats(now, "pool closed"))

    def stats(self) -> PoolStats:
        now = time.monotonic()
        live = [worker.stats(now, None) for worker in list(self._live.values())]
        return PoolStats(live + self._gone.rows(), dict(self._restarts), 0, 0, now - self.started_at)

    def worker_line(self) -> str:
        return " ".join(f"{w.address.removeprefix('tcp://')}:{w.tasks}" for w in list(self._live.values()))
