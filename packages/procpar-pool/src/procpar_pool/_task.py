"""The unit of work an engine runs, the kinds of call it can be, and the pool's life-cycle states.

Light on purpose: worker processes import it, and the typing machinery of ``procpar_pool.engine`` (the
protocols) stays out of their start-up.
"""

from __future__ import annotations

import enum
import itertools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .engine import TaskSource

__all__ = ["Task", "PoolState", "APPLY", "MAP", "STARMAP"]

# What a task's payload is: ``(args, kwds)`` for one call, or a chunk of items for ``func`` (each item one
# argument, or with STARMAP one tuple of arguments). Plain ints: they travel in every task message.
APPLY, MAP, STARMAP = 0, 1, 2


class PoolState(str, enum.Enum):
    """Where a pool is in its life: taking work, finishing what it has, or stopped.

    A ``str`` enum whose values are the stdlib's constants, so ``pool._state == multiprocessing.pool.RUN``
    holds as it does there.
    """

    RUN = "RUN"
    CLOSE = "CLOSE"
    TERMINATE = "TERMINATE"

    def __str__(self) -> str:
        return self.value


_ids = itertools.count()


class Task:
    """One unit of work for one worker: a call, or a chunk of a map.

    ``data`` and ``segment`` belong to the engine that sends it (its message once encoded, and the shared memory
    holding its large buffers); the rest is set by the job that made it.
    """

    __slots__ = ("data", "func", "id", "index", "job", "kind", "payload", "segment", "time_limit")

    def __init__(self, job: TaskSource, index: int, kind: int, func: object, payload: object,
                 time_limit: float | None) -> None:
        self.id = next(_ids)
        self.job = job
        self.index = index  # its place among the job's tasks: how the job files its outcome
        self.kind = kind
        self.func = func
        self.payload = payload
        self.time_limit = time_limit
        self.data: bytes | None = None
        self.segment: str | None = None
