"""The process engine's view of one worker: its process, its socket, the tasks it holds, and its state.

States, and what moves a worker between them (only the engine's thread, or a thread holding the engine's mutex,
changes a handle)::

    STARTING --launched--> IDLE <--first task / last reply--> BUSY
                            |  \\                              |
                            |   claimed by apply() --> CLAIMED (its caller reads the reply itself)
                            v                                 v
                 RETIRING (killed for a time limit or memory, or leaving by itself: takes no more work)
                            |
                            v
                 GONE (end of file on its socket, or forgotten: nothing more is read or sent)

``accepts_work()`` is the one answer to "may this worker be given a task now?".
"""

from __future__ import annotations

import enum
import time

from ._errors import oom_kill_count
from ._scheduling import queue_depth, updated_service

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procpar_core.connection import Connection
    from procpar_core.process import BaseProcess

    from ._running import RunningTask
    from ._task import Task

__all__ = ["WorkerHandle", "WorkerState"]


class WorkerState(enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    CLAIMED = "claimed"
    RETIRING = "retiring"
    GONE = "gone"


_IDLE, _BUSY, _CLAIMED = WorkerState.IDLE, WorkerState.BUSY, WorkerState.CLAIMED
_RETIRING, _GONE = WorkerState.RETIRING, WorkerState.GONE


class WorkerHandle:
    __slots__ = (
        "busy_since",
        "busy_total",
        "conn",
        "deadline",
        "exit_cause",
        "fd",
        "inflight",
        "last_reply",
        "launched_at",
        "oom_killed",
        "oom_kills",
        "over_memory",
        "process",
        "quota",
        "running",
        "sentinel",
        "service",
        "stash",
        "state",
        "stop_reason",
        "tasks_done",
    )

    def __init__(self, process: BaseProcess, conn: Connection, quota: int | None, running: RunningTask) -> None:
        self.process = process
        self.conn = conn
        self.fd: int = conn.fileno()
        self.running = running  # which task it runs: read when it dies (see _running)
        self.state = WorkerState.STARTING
        self.sentinel = -1  # known once the process has started
        self.inflight: dict[int, Task] = {}  # the tasks it holds, by id
        self.quota = quota  # tasks it may still be given (maxtasksperchild), None: unlimited
        self.deadline: float | None = None  # when its (single, timed) task must be done
        self.oom_kills = oom_kill_count()  # the kernel's count when it started: did the OOM killer take it?
        self.over_memory: int | None = None  # its resident memory when the pool stopped it for using too much
        self.busy_since = 0.0  # when it last went from holding nothing to holding a task
        self.last_reply = 0.0
        self.service: float | None = None  # moving average of the seconds it takes per task
        # pool.stats(): counted on the way (a few attribute updates per batch of replies), read only when asked.
        self.launched_at = 0.0
        self.busy_total = 0.0  # seconds it held tasks, intervals closed so far
        self.tasks_done = 0
        self.stop_reason: str | None = None  # why the pool stopped it (time limit), if it did
        self.oom_killed = False  # known once it is reaped, as its exit_cause
        self.exit_cause = "unknown"
        # Replies read ahead from its socket (read by whoever holds the engine's mutex).
        self.stash = bytearray(8 + (1 << 16))

    # -- questions -------------------------------------------------------------------------------------------

    def accepts_work(self) -> bool:
        """May it be given a task now: running, not claimed, not retiring, no timed task, quota left."""
        state = self.state
        return ((state is _IDLE or state is _BUSY) and self.deadline is None
                and (self.quota is None or self.quota > 0))

    def depth(self, prefetch: int | None) -> int:
        """How many tasks it may hold (``_scheduling.queue_depth`` of its time per task)."""
        return queue_depth(prefetch, self.service)

    def room(self, depth: int) -> int:
        """How many more tasks it may be given now, holding at most ``depth`` (and within its quota)."""
        if not self.accepts_work():
            return 0
        room = depth - len(self.inflight)
        return room if self.quota is None else min(room, self.quota)

    def awaits_replies(self) -> bool:
        """Does the engine's thread read its socket: it holds the engine's tasks, and nobody else reads it."""
        return bool(self.inflight) and self.state is not _CLAIMED and self.state is not _GONE

    # -- transitions -----------------------------------------------------------------------------------------

    def started(self, sentinel: int) -> None:
        self.sentinel = sentinel
        self.state = _BUSY if self.inflight else _IDLE

    def assign(self, tasks: list[Task]) -> None:
        """It holds ``tasks`` from now on (the caller sends them); a timed task (alone) sets its deadline."""
        inflight = self.inflight
        if not inflight:
            self.busy_since = time.monotonic()
        for task in tasks:
            inflight[task.id] = task
        if self.quota is not None:
            self.quota -= len(tasks)
        if len(tasks) == 1 and tasks[0].time_limit is not None:
            self.deadline = time.monotonic() + tasks[0].time_limit
        if self.state is _IDLE:
            self.state = _BUSY

    def unassign(self, task: Task) -> None:
        """Undo ``assign`` for one task: it was not sent after all."""
        if self.inflight.pop(task.id, None) is None:
            return
        if self.quota is not None:
            self.quota += 1
        if task.time_limit is not None:
            self.deadline = None
        self._settle()

    def replied(self, tasks: list[Task]) -> None:
        """Replies for ``tasks`` (already taken out of ``inflight``) came in together: update its time per task."""
        now = time.monotonic()
        self.service = updated_service(self.service, now - max(self.last_reply, self.busy_since), len(tasks))
        self.last_reply = now
        self.deadline = None
        self.tasks_done += len(tasks)
        if not self.inflight:
            self.busy_total += now - self.busy_since
        self._settle()

    def busy_seconds(self, now: float) -> float:
        """Seconds it has held tasks, the interval still open included."""
        return self.busy_total + (now - self.busy_since if self.inflight else 0.0)

    def take_all(self) -> list[Task]:
        """Everything it holds, which it holds no more."""
        tasks = list(self.inflight.values())
        if tasks:
            self.busy_total += time.monotonic() - self.busy_since
        self.inflight.clear()
        self._settle()
        return tasks

    def claim(self) -> None:
        self.state = _CLAIMED

    def unclaim(self) -> None:
        if self.state is _CLAIMED:
            self.state = _BUSY if self.inflight else _IDLE

    def retire(self) -> None:
        """It takes no more work (it is being killed, or leaves by itself); it is replaced when it exits."""
        if self.state is not _GONE:
            self.state = _RETIRING

    def lost_socket(self) -> None:
        self.state = _GONE

    def _settle(self) -> None:
        state = self.state
        if state is _IDLE or state is _BUSY:
            self.state = _BUSY if self.inflight else _IDLE
