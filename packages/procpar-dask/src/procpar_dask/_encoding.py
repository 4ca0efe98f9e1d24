"""Pool tasks to a Dask task's argument and back: pickling bundles, and the outcomes' errors.

Functions travel with cloudpickle, so those of ``__main__``, lambdas and closures reach the workers by value
(as Dask itself sends them); a task whose function or arguments cannot be pickled fails alone with
``PicklingFailedError``, as in the local pool.
"""

from __future__ import annotations

import pickle

import cloudpickle

from procpar_pool import MaybeEncodingError, PicklingFailedError, RemoteTraceback

from . import _remote

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procpar_pool.engine import Task

__all__ = ["encode_bundle", "decode_reply", "decode_outcome", "encode_initializer", "unreadable_bundle"]


def _body(task: Task) -> tuple[int, object, object]:
    return (task.kind, task.func, task.payload)


def encode_bundle(tasks: list[Task]) -> tuple[bytes | None, list[Task], list[tuple[Task, BaseException]]]:
    """``(blob, tasks in it, tasks that cannot be pickled with their error)``; blob is None when none can."""
    try:
        return cloudpickle.dumps([_body(task) for task in tasks], pickle.HIGHEST_PROTOCOL), tasks, []
    except Exception:
        pass
    # Find the culprits one by one: the others still run.
    good: list[Task] = []
    bad: list[tuple[Task, BaseException]] = []
    for task in tasks:
        try:
            cloudpickle.dumps(_body(task), pickle.HIGHEST_PROTOCOL)
        except Exception as err:
            failure = PicklingFailedError(f"the task's function or arguments could not be pickled to send them to "
                                          f"a Dask worker: {type(err).__name__}: {err}")
            failure.__cause__ = err
            bad.append((task, failure))
        else:
            good.append(task)
    if not good:
        return None, [], bad
    return cloudpickle.dumps([_body(task) for task in good], pickle.HIGHEST_PROTOCOL), good, bad


def encode_initializer(initializer: object, initargs: tuple[object, ...]) -> bytes:
    try:
        return cloudpickle.dumps((initializer, initargs), pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
    except Exception as err:
        raise PicklingFailedError(f"the pool's initializer or its initargs could not be pickled to send them to "
                                  f"the Dask workers: {type(err).__name__}: {err}") from err


def decode_reply(data: bytes) -> tuple[str, float, list[bytes], str | None, bool]:
    """A bundle's reply: ``(worker address, seconds it ran, one pickled outcome per task it ran, why it could
    not run the bundle at all or None, whether the worker has reached maxtasksperchild)``."""
    reply = pickle.loads(data)
    if not (isinstance(reply, tuple) and len(reply) == 5 and isinstance(reply[2], list)):
        raise ValueError(f"a bundle's reply is not (worker, seconds, outcomes, problem, spent): "
                         f"{type(reply).__name__}")
    address, seconds, outcomes, problem, spent = reply
    return str(address), float(seconds), outcomes, None if problem is None else str(problem), bool(spent)


def unreadable_bundle(message: str) -> PicklingFailedError:
    return PicklingFailedError(f"the task could not be unpickled on the Dask worker: {message}")


def decode_outcome(data: bytes) -> tuple[bool, object]:
    """``(ok, result or exception)`` of one task; a failure's worker-side traceback is its ``__cause__``."""
    try:
        ok, value = pickle.loads(data)
    except Exception as err:
        return False, PicklingFailedError(f"a task's outcome could not be unpickled here: {type(err).__name__}: "
                                          f"{err}")
    if ok:
        return True, value
    if ok is None:
        what, message = value
        if what == _remote.RESULT_UNPICKLABLE:
            return False, MaybeEncodingError(f"the task's result could not be pickled to send it back: {message}",
                                             message, "")
        if what == _remote.EXCEPTION_UNPICKLABLE:
            return False, PicklingFailedError(f"the task raised, and its exception could not be pickled to send "
                                              f"it back: {message}")
        return False, unreadable_bundle(message)
    exc, tb = value
    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    return False, exc
