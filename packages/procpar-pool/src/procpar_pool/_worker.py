"""The worker process's loop, and the messages it exchanges with the pool.

Pool -> worker: framed messages on the worker's own socket, each an 8-byte task id then the pickled
``(kind, func, payload)`` (large buffers beside it in shared memory, see ``_oob``), or an empty message for
"stop". The id comes first, outside the pickle, so a task
that cannot be unpickled here (a function the worker cannot import, say) still fails under its own id.

Worker -> pool: the 8-byte task id, then the pickled ``(ok, value)``: the result, or ``(exception, traceback
text)``.
Anything that cannot be pickled is replaced by a ``PicklingFailedError`` naming it, so that one task fails
and the worker goes on. Task id ``INIT_FAILED`` reports an initializer that raised.

Workers ignore SIGINT: on Ctrl-C the pool's owner decides, and stops them.
"""

from __future__ import annotations

import itertools
import signal
import struct
import traceback

from procpar_core import _serializer
from procpar_sync._wire import read_message_stashed, write_messages

from . import _oob
from ._errors import MaybeEncodingError, PicklingFailedError
from ._results import APPLY, MAP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["worker_main", "INIT_FAILED", "TASK_ID", "exception_payload"]

TASK_ID = struct.Struct("!Q")
INIT_FAILED = (1 << 64) - 1


def exception_payload(exc: BaseException) -> tuple[BaseException, str]:
    """``(exc, its traceback as text)``, with ``exc`` replaced if it cannot be pickled."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        _serializer.serialize(exc)
    except Exception as err:
        exc = PicklingFailedError(
            f"the task raised {type(exc).__qualname__}: {exc}; that exception could not be pickled to send it "
            f"back ({type(err).__name__}: {err}), so it is replaced by this error")
    return exc, tb


def _describe_result_failure(kind: int, result: Any, err: BaseException) -> PicklingFailedError:
    culprit, what = result, "the task's result"
    if kind != APPLY and isinstance(result, list):
        for position, item in enumerate(result):
            try:
                _serializer.serialize(item)
            except Exception as item_err:
                culprit, what, err = item, f"result #{position} of the chunk", item_err
                break
    return MaybeEncodingError(
        f"{what} ({type(culprit).__qualname__}: {culprit!r:.80}) could not be pickled to send it back: "
        f"{type(err).__name__}: {err}", repr(err), repr(culprit))


def _encode(task_id: int, kind: int, ok: bool, value: Any) -> bytes:
    header = TASK_ID.pack(task_id)
    try:
        return header + _oob.dumps((ok, value))[0]
    except Exception as err:
        if ok:
            failure = _describe_result_failure(kind, value, err)
        else:
            failure = PicklingFailedError(f"the task's error could not be pickled: {type(err).__name__}: {err}")
        return header + _oob.dumps((False, (failure, "")))[0]


def _run(kind: int, func: Callable[..., Any], payload: Any) -> Any:
    if kind == APPLY:
        args, kwds = payload
        return func(*args, **kwds)
    if kind == MAP:
        return list(map(func, payload))
    return list(itertools.starmap(func, payload))


def worker_main(fd_holder: Any, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...],
                maxtasks: int | None) -> None:
    """Run tasks from the pool until told to stop, the pool goes away, or ``maxtasks`` tasks are done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = fd_holder.fileno()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as exc:
            write_messages(fd, [_encode(INIT_FAILED, APPLY, False, exception_payload(exc))])
            return
    done = 0
    # Only this process reads its socket, so it may read ahead: one read() for several prefetched tasks.
    stash = bytearray(8 + (1 << 16))
    while maxtasks is None or done < maxtasks:
        try:
            message = read_message_stashed(fd, stash)
        except (EOFError, OSError):
            return  # the pool is gone
        if not message:
            return
        (task_id,) = TASK_ID.unpack_from(message)
        kind = APPLY
        try:
            kind, func, payload = _oob.loads_message(memoryview(message)[TASK_ID.size :])
            result = _run(kind, func, payload)
        except Exception as exc:
            reply = _encode(task_id, kind, False, exception_payload(exc))
        else:
            reply = _encode(task_id, kind, True, result)
        func = payload = result = None
        try:
            write_messages(fd, [reply])
        except OSError:
            return
        done += 1
