"""Handing out work: which worker gets which tasks from the backlog, and the messages that carry them.

Called by the process engine with its mutex held. Each worker that ``accepts_work()`` is filled up to its depth
(``_scheduling.queue_depth``): the tasks are shared so as to even out how many each holds (``share``). A task with
a time limit goes alone to a worker holding nothing (it then runs alone, and its deadline is its worker's). A
worker already holding tasks is sent at most ``BIG_TASK`` more bytes at a time; what does not go is set aside, in
order, for the next round.
"""

from __future__ import annotations

from procpar_sync.lowlevel import write_messages

from ._scheduling import BIG_TASK, share

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._backlog import Backlog
    from ._encoding import TaskEncoder
    from ._handle import WorkerHandle
    from ._task import Task

__all__ = ["hand_out"]

# Task messages up to this size are kept until their task is over (sent again as they are if the worker dies).
_KEEP_UP_TO = 1 << 16


def hand_out(workers: list[WorkerHandle], depths: list[int], backlog: Backlog, encoder: TaskEncoder) -> None:
    """Give idle capacity tasks from ``backlog`` and send them (``depths``: how many tasks each worker may
    hold)."""
    slots = [(worker, room) for worker, depth in zip(workers, depths, strict=True) if (room := worker.room(depth)) > 0]
    if not slots:
        return
    tasks = backlog.take(sum(room for _, room in slots))
    if not tasks:
        return
    if any(task.time_limit is not None for task in tasks):
        plan = _plan_one_by_one(slots, tasks, backlog)
    else:
        plan = {}
        start = 0
        counts = share([(room, len(worker.inflight)) for worker, room in slots], len(tasks))
        for (worker, _), count in zip(slots, counts, strict=True):
            if count:
                planned = tasks[start : start + count]
                start += count
                worker.assign(planned)
                plan[worker] = planned
    for worker, planned in plan.items():
        messages = _messages_for(worker, planned, backlog, encoder)
        if messages:
            try:
                write_messages(worker.fd, messages, True)
            except OSError:
                pass  # it died: its sentinel fails what it held


def _plan_one_by_one(slots: list[tuple[WorkerHandle, int]], tasks: list[Task],
                     backlog: Backlog) -> dict[WorkerHandle, list[Task]]:
    """Assign ``tasks`` one at a time, each to the worker holding fewest; a task with a time limit only to a
    worker holding nothing (it then runs alone)."""
    plan: dict[WorkerHandle, list[Task]] = {}
    rooms = dict(slots)  # worker -> tasks it may still take, in the workers' order
    for position, task in enumerate(tasks):
        if not rooms:
            backlog.set_aside(tasks[position:])
            break
        worker = min(rooms, key=_held)  # the worker holding the fewest tasks (ties: the first)
        if worker.inflight and task.time_limit is not None:
            # A task with a time limit runs alone: it waits for a worker holding nothing, and so do the tasks
            # after it.
            idle = [w for w in rooms if not w.inflight]
            if not idle:
                backlog.set_aside(tasks[position:])
                break
            worker = idle[0]
        worker.assign([task])
        plan.setdefault(worker, []).append(task)
        rooms[worker] -= 1
        if rooms[worker] <= 0 or task.time_limit is not None:
            del rooms[worker]
    return plan


def _held(worker: WorkerHandle) -> int:
    return len(worker.inflight)


def _messages_for(worker: WorkerHandle, planned: list[Task], backlog: Backlog, encoder: TaskEncoder) -> list[bytes]:
    """The messages carrying ``planned`` (just assigned to ``worker``): consecutive tasks of one function in one
    batch. A task that cannot be pickled is failed and taken back. What does not fit the byte budget is taken
    back and set aside."""
    budget = BIG_TASK
    idle = len(worker.inflight) == len(planned)
    messages: list[bytes] = []
    start = 0
    while start < len(planned):
        first = planned[start]
        end = start + 1
        if first.data is None:
            while (end < len(planned) and planned[end].data is None and planned[end].func is first.func
                   and planned[end].kind == first.kind):
                end += 1
        run = planned[start:end]
        alone = run
        if len(run) > 1:
            batch, _, alone = encoder.encode_batch(run)
            if batch is not None:
                if not (idle and not messages) and len(batch) > budget:
                    _put_back(worker, run + planned[end:], backlog)
                    return messages
                budget -= len(batch)
                messages.append(batch)
        for position, task in enumerate(alone):
            data = encoder.encode(task)
            if data is None:
                worker.unassign(task)  # its job holds the pickling error already
                continue
            if not (idle and not messages) and len(data) > budget:
                _put_back(worker, alone[position:] + planned[end:], backlog)
                return messages
            budget -= len(data)
            messages.append(data)
            if len(data) > _KEEP_UP_TO and task.segment is None:
                # A large message is not kept while the task runs: a map's chunks would hold the whole input a
                # second time, in memory the allocator hands back and faults in again for every map. It is
                # pickled again from its arguments in the rare case its worker dies before running it.
                task.data = None
        start = end
    return messages


def _put_back(worker: WorkerHandle, tasks: list[Task], backlog: Backlog) -> None:
    """Take back tasks assigned to ``worker`` but not sent: they go first, in order, next time."""
    for task in tasks:
        worker.unassign(task)
    backlog.set_aside(tasks)

