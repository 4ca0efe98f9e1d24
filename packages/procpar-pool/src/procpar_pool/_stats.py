"""``pool.stats()``: what a pool did, per worker and in total.

The counts are kept on the way by the engine (a few attribute updates per batch of replies; the worker writes
the moment it was ready into the shared page it already has, once); a ``PoolStats`` is built only when asked.
Times are seen from the pool's side: a worker is *working* while it holds tasks (sent, not yet answered),
*waiting* while it is ready and holds none, *starting* from its launch until its initializer is done.
"""

from __future__ import annotations

import collections

__all__ = ["WorkerStats", "PoolStats", "GoneWorkers", "summed", "KEEP_GONE"]

#: Workers that are gone whose figures pool.stats() keeps one by one (the earlier ones are summed into one row).
KEEP_GONE = 256


class WorkerStats:
    """One worker's figures: ``pid``, ``alive``, ``tasks`` done, seconds ``working``, ``waiting`` and
    ``starting``, and, for a worker that is gone, ``exit_cause`` (``"maxtasksperchild"``, ``"time limit"``,
    ``"memory limit"``, ``"killed by SIGKILL"``, ``"exit code 3"``, ``"pool closed"``, ...). A worker elsewhere
    (a Dask worker) has an ``address`` and no ``pid``."""

    __slots__ = ("address", "alive", "exit_cause", "pid", "starting", "tasks", "waiting", "working")

    def __init__(self, pid: int | None, alive: bool, tasks: int, working: float, waiting: float, starting: float,
                 exit_cause: str | None = None, *, address: str | None = None) -> None:
        self.pid = pid
        self.address = address
        self.alive = alive
        self.tasks = tasks
        self.working = working
        self.waiting = waiting
        self.starting = starting
        self.exit_cause = exit_cause

    @property
    def name(self) -> str:
        """The pid, or the address of a worker elsewhere ("" for a summed row)."""
        if self.pid is not None:
            return str(self.pid)
        return self.address or ""

    def __repr__(self) -> str:
        state = "alive" if self.alive else f"gone: {self.exit_cause}"
        where = f"pid={self.pid}" if self.address is None else f"address={self.address!r}"
        return (f"WorkerStats({where}, {state}, tasks={self.tasks}, working={self.working:.3f}s, "
                f"waiting={self.waiting:.3f}s, starting={self.starting:.3f}s)")


class PoolStats:
    """A pool's figures at one moment.

    ``workers``: a ``WorkerStats`` per worker the pool has had (the live ones first); ``tasks``, ``working``,
    ``waiting``, ``starting``: their sums; ``restarts``: how many workers were replaced, by cause;
    ``shm_bytes_sent``/``shm_bytes_received``: bytes of arguments and results that went through shared memory
    (large buffers) since the pool started, this pool's alone; ``seconds``: the pool's age. ``print(stats)``
    shows a table.
    """

    __slots__ = ("restarts", "seconds", "shm_bytes_received", "shm_bytes_sent", "workers")

    def __init__(self, workers: list[WorkerStats], restarts: dict[str, int], shm_bytes_sent: int,
                 shm_bytes_received: int, seconds: float) -> None:
        self.workers = workers
        self.restarts = restarts
        self.shm_bytes_sent = shm_bytes_sent
        self.shm_bytes_received = shm_bytes_received
        self.seconds = seconds

    @property
    def tasks(self) -> int:
        return self._total.tasks

    @property
    def working(self) -> float:
        return self._total.working

    @property
    def waiting(self) -> float:
        return self._total.waiting

    @property
    def starting(self) -> float:
        return self._total.starting

    @property
    def _total(self) -> WorkerStats:
        return summed(self.workers)

    def as_dict(self) -> dict[str, object]:
        """The figures as plain data (for JSON, a log line, a dashboard)."""
        total = self._total
        return {
            "seconds": self.seconds, "tasks": total.tasks, "working": total.working, "waiting": total.waiting,
            "starting": total.starting, "restarts": dict(self.restarts), "shm_bytes_sent": self.shm_bytes_sent,
            "shm_bytes_received": self.shm_bytes_received,
            "workers": [{name: getattr(w, name) for name in WorkerStats.__slots__} for w in self.workers],
        }

    def __str__(self) -> str:
        where = "address" if any(w.address is not None for w in self.workers) else "pid"
        header = ("worker", where, "tasks", "working s", "waiting s", "starting s", "busy %", "state")
        rows: list[tuple[str, ...]] = [header]
        for number, w in enumerate(self.workers, 1):
            rows.append(_row(str(number), w.name, w, "alive" if w.alive else f"gone: {w.exit_cause}"))
        rows.append(_row("total", "", self._total, ""))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.rjust(width) if i < 7 else cell for i, (cell, width) in
                           enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        restarts = ", ".join(f"{count} {cause}" for cause, count in sorted(self.restarts.items())) or "none"
        lines.append(f"restarts: {restarts}")
        lines.append(f"shared memory: {_size(self.shm_bytes_sent)} sent, {_size(self.shm_bytes_received)} received")
        lines.append(f"pool age: {self.seconds:.3f} s")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"PoolStats(workers={len(self.workers)}, tasks={self.tasks}, working={self.working:.3f}s, "
                f"waiting={self.waiting:.3f}s, starting={self.starting:.3f}s, restarts={self.restarts})")


class GoneWorkers:
    """The figures of an engine's workers that are gone: the last ``keep`` one by one, the earlier ones summed
    into one row (a long run with ``maxtasksperchild=1`` goes through millions of workers)."""

    __slots__ = ("_earlier", "_earlier_count", "_keep", "_rows")

    def __init__(self, keep: int | None = None) -> None:
        self._keep = KEEP_GONE if keep is None else keep
        self._rows: collections.deque[WorkerStats] = collections.deque()
        self._earlier: WorkerStats | None = None
        self._earlier_count = 0

    def add(self, worker: WorkerStats) -> None:
        if len(self._rows) >= self._keep:
            self._earlier_count += 1
            oldest = self._rows.popleft()
            folded = [oldest] if self._earlier is None else [self._earlier, oldest]
            self._earlier = summed(folded, f"{self._earlier_count} earlier workers, summed")
        self._rows.append(worker)

    def rows(self) -> list[WorkerStats]:
        """The summed row (if any), then the kept ones, oldest first."""
        return ([] if self._earlier is None else [self._earlier]) + list(self._rows)


def summed(workers: list[WorkerStats], label: str | None = None) -> WorkerStats:
    """One row holding the sums of ``workers``' figures; ``label`` is its exit cause."""
    return WorkerStats(None, False, sum(w.tasks for w in workers), sum(w.working for w in workers),
                       sum(w.waiting for w in workers), sum(w.starting for w in workers), label)


def _row(label: str, name: str, w: WorkerStats, state: str) -> tuple[str, ...]:
    return (label, name, str(w.tasks), f"{w.working:.3f}", f"{w.waiting:.3f}", f"{w.starting:.3f}",
            _percent(w.working, w.working + w.waiting), state)


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}" if whole > 0 else "-"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"
