"""Tasks pickled into the messages of ``_protocol``, and what happens when they cannot be.

A task is pickled once, when it is first sent (``Task.data`` keeps a message of up to 64 KiB, so a task
requeued after its worker died is not pickled again unless its shared memory went with that worker; a larger
one is pickled again then, rather than held twice in memory while it runs). Consecutive short tasks of one
function share one ``BATCH`` message, their function pickled once. What cannot be pickled fails its own task,
with the culprit named (the function, or which argument). A function that pickles by name only where a forked
child could find it (a lambda, a closure, an interactive session's function) goes by value through cloudpickle
when it is installed.
"""

from __future__ import annotations

import sys

from procpar_core import lowlevel

from . import _oob
from ._errors import PicklingFailedError
from ._protocol import BATCH, SINGLE, task_header
from ._scheduling import BIG_TASK
from ._task import APPLY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._task import Task

__all__ = ["TaskEncoder", "release", "drop_message"]

_NO_CLOUDPICKLE = ("lambdas, closures, nested functions and functions defined in an interactive session can "
                   "be sent to workers with cloudpickle: pip install 'procpar-pool[cloudpickle]'")


def release(task: Task) -> None:
    """A task is over: drop what it carried (the function and arguments were kept in case its worker died
    before starting it) and its shared memory (its worker normally took that already)."""
    if task.segment is not None:
        drop_message(task)
    task.func = task.payload = task.data = None


def drop_message(task: Task) -> None:
    """Forget a task's message, to be pickled afresh if it is sent again (its worker died: the shared memory
    may have gone with it)."""
    if task.segment is not None:
        _oob.discard(task.segment)
        task.segment = None
    task.data = None


def _pickling_culprit(task: Task) -> str:
    """Which part of a task cannot be pickled, in words."""
    parts: list[tuple[str, object]] = [("the function", task.func)]
    payload = task.payload
    if task.kind == APPLY and isinstance(payload, tuple):
        args, kwds = payload
        parts += [(f"argument #{i}", a) for i, a in enumerate(args)]
        parts += [(f"keyword argument {k!r}", v) for k, v in kwds.items()]
    elif isinstance(payload, (list, tuple, range)):
        parts += [(f"item #{i} of the chunk", a) for i, a in enumerate(payload)]
    for label, obj in parts:
        try:
            lowlevel.serialize(obj)
        except Exception as err:
            return f"{label} ({type(obj).__qualname__}: {obj!r:.80}) cannot be pickled: {type(err).__name__}: {err}"
    return "the task cannot be pickled"


def _needs_by_value(func: object, start_method: str) -> bool:
    # A function of an interactive session's __main__ pickles by name, which only a forked child can resolve.
    if getattr(func, "__module__", None) != "__main__" or start_method == "fork":
        return False
    main = sys.modules.get("__main__")
    return main is not None and not hasattr(main, "__file__")


def _cloudpickle_dumps(obj: object) -> bytes | None:
    try:
        import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    return bytes(cloudpickle.dumps(obj, protocol=5))


def _by_value(body: object) -> bytes | None:
    """A message body pickled by cloudpickle (functions by value); None when that cannot be done."""
    try:
        pickled = _cloudpickle_dumps(body)
    except Exception:
        return None
    return None if pickled is None else _oob.PLAIN + pickled


class TaskEncoder:
    """Makes the task messages of one pool (whose start method decides what must go by value)."""

    __slots__ = ("_counts", "_start_method")

    def __init__(self, start_method: str, counts: _oob.SegmentBytes | None = None) -> None:
        self._start_method = start_method
        self._counts = counts  # the pool's bytes through shared memory

    def encode(self, task: Task) -> bytes | None:
        """The task's own message, or None after failing the task because it cannot be pickled."""
        if task.data is not None:
            return task.data
        body = (task.kind, task.func, [task.payload])
        header = task_header([task.id], SINGLE)
        try:
            if _needs_by_value(task.func, self._start_method):
                data = _cloudpickle_dumps(body)
                if data is None:
                    raise PicklingFailedError(f"{task.func!r} is defined in an interactive session, which a "
                                              f"{self._start_method} worker cannot import; {_NO_CLOUDPICKLE}")
                data = header + _oob.PLAIN + data
            else:
                # The header goes in with the pickle: a chunk of a map can be megabytes, copied once.
                data, task.segment = _oob.dumps(body, header, self._counts)
        except PicklingFailedError as exc:
            task.job.set_outcome(task.index, False, exc)
            return None
        except Exception as err:
            by_value = self._encode_by_value(task, body, err)
            if by_value is None:
                return None
            data = header + by_value
        task.data = data
        return data

    def encode_batch(self, tasks: list[Task]) -> tuple[bytes | None, list[Task], list[Task]]:
        """One message for the tasks (of one function) whose arguments pickle small, those tasks, and the tasks
        left for messages of their own: those whose arguments hold a buffer for shared memory or cannot be
        pickled (each then fails alone, its culprit named). No message when the function itself must go another
        way."""
        first = tasks[0]
        payloads: list[bytes] = []
        batched: list[Task] = []
        alone: list[Task] = []
        size = 0
        for task, pickled in zip(tasks, _oob.dumps_each_inband([task.payload for task in tasks]), strict=True):
            if isinstance(pickled, Exception):
                alone.append(task)
                continue
            size += len(pickled)
            if size > BIG_TASK:
                alone.append(task)
                continue
            payloads.append(pickled)
            batched.append(task)
        if not batched:
            return None, [], alone
        body = (first.kind, first.func, payloads)
        data = None
        if not _needs_by_value(first.func, self._start_method):
            try:
                data = _oob.PLAIN + _oob.dumps_inband(body)
            except Exception:
                pass
        if data is None:
            # The function goes by value (a lambda, a closure, an interactive session's function).
            data = _by_value(body)
            if data is None:
                return None, [], tasks  # one by one: each fails with the error that says why
        return task_header([task.id for task in batched], BATCH) + data, batched, alone

    def _encode_by_value(self, task: Task, body: object, err: Exception) -> bytes | None:
        culprit = _pickling_culprit(task)
        hint = ""
        if culprit.startswith("the function"):
            # A lambda, a closure or a nested function: cloudpickle sends it by value, if it is installed.
            try:
                data = _cloudpickle_dumps(body)
            except Exception:
                data = None  # cloudpickle is there but cannot pickle it either
            else:
                if data is not None:
                    return _oob.PLAIN + data
                hint = f"; {_NO_CLOUDPICKLE}"
        failure = PicklingFailedError(f"the task cannot be sent to a worker: {culprit}{hint}")
        failure.__cause__ = err
        task.job.set_outcome(task.index, False, failure)
        return None
