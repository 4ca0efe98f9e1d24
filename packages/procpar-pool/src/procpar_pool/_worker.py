"""The worker process's loop, and the messages it exchanges with the pool.

Pool -> worker: framed messages on the worker's own socket, each carrying tasks of one function: a 4-byte
count n, a 1-byte layout, n 8-byte task ids, then the message body (see ``_oob``) of ``(kind, func,
payloads)``; or an empty message for "stop". Layout ``SINGLE``: one task, its payload pickled in the body
(its large buffers beside it in shared memory). Layout ``BATCH``: each payload is its own small pickle inside
the body, so that the function is pickled and unpickled once for the lot (most of a short task's cost)
while an argument that cannot be unpickled here still fails its own task only. The ids come first, outside
the pickle, so tasks that cannot be unpickled at all (a function the worker cannot import, say) still fail
under their own ids.

Worker -> pool: the 8-byte task id, then the pickled ``(ok, value)``: the result, or ``(exception, traceback
text)``; a chunk's results that are all ints or all floats go as raw 8-byte values instead (``NUMBERS``),
far cheaper than a pickle for both ends.
Anything that cannot be pickled is replaced by a ``PicklingFailedError`` naming it, so that one task fails
and the worker goes on. Task id ``INIT_FAILED`` reports an initializer that raised; ``RETIRED`` (value: its
resident memory in bytes) a worker leaving because it grew past ``max_memory_per_child``.

Which task is running is written to shared memory (``_running``) as it starts, so that a worker's death fails
that task alone: the tasks it had not started yet go to another worker.

Workers ignore SIGINT: on Ctrl-C the pool's owner decides, and stops them.
"""

from __future__ import annotations

import itertools
import os
import signal
import struct
import time
import traceback

from procpar_core import lowlevel
from procpar_core.reduction import loads
from procpar_sync.lowlevel import has_message, pack_numbers, read_message_stashed, spin_readable, write_messages

from . import _oob
from ._errors import MaybeEncodingError, PicklingFailedError
from ._results import APPLY, MAP
from ._running import RunningTask

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["worker_main", "INIT_FAILED", "RETIRED", "TASK_ID", "SINGLE", "BATCH", "batch_header", "exception_payload",
           "resident_bytes"]

TASK_ID = struct.Struct("!Q")
TASK_COUNT = struct.Struct("!IB")
SINGLE, BATCH = 0, 1
INIT_FAILED = (1 << 64) - 1
RETIRED = (1 << 64) - 2
# How long an idle worker looks for its next task before it sleeps, when the last one came that soon: a
# sleeping process takes tens of microseconds to wake up, longer than a short task.
SPIN_SECONDS = 0.0002
# A chunk's results that are all ints (or all floats) travel as raw 8-byte values from this many on.
_PACK_FROM = 16


def batch_header(ids: list[int], layout: int) -> bytes:
    """The start of a message carrying the tasks ``ids`` (layout ``SINGLE`` or ``BATCH``)."""
    return struct.pack(f"!IB{len(ids)}Q", len(ids), layout, *ids)


def exception_payload(exc: BaseException) -> tuple[BaseException, str]:
    """``(exc, its traceback as text)``, with ``exc`` replaced if it cannot be pickled."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        lowlevel.serialize(exc)
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
                lowlevel.serialize(item)
            except Exception as item_err:
                culprit, what, err = item, f"result #{position} of the chunk", item_err
                break
    return MaybeEncodingError(
        f"{what} ({type(culprit).__qualname__}: {culprit!r:.80}) could not be pickled to send it back: "
        f"{type(err).__name__}: {err}", repr(err), repr(culprit))


def _encode(task_id: int, kind: int, ok: bool, value: Any) -> bytes:
    header = TASK_ID.pack(task_id)
    if ok and kind != APPLY and type(value) is list and len(value) >= _PACK_FROM:
        packed = pack_numbers(value)
        if packed is not None:
            return header + _oob.NUMBERS + packed
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


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int | str = "self") -> int | None:
    """The resident memory of a process (``/proc/<pid>/statm``), None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def worker_main(fd_holder: Any, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...],
                maxtasks: int | None, running: RunningTask | None = None, max_memory: int | None = None) -> None:
    """Run tasks from the pool until told to stop, the pool goes away, ``maxtasks`` tasks are done, or (with
    ``max_memory``) the worker's resident memory passes that many bytes after a message's tasks."""
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
    spinning = False
    while maxtasks is None or done < maxtasks:
        try:
            if has_message(stash) or (spinning and spin_readable(fd, SPIN_SECONDS)):
                message = read_message_stashed(fd, stash)
            else:
                started = time.monotonic()
                message = read_message_stashed(fd, stash)
                # Tasks come back to back (a loop of apply() calls): look for the next one without sleeping.
                spinning = time.monotonic() - started < SPIN_SECONDS
        except (EOFError, OSError):
            return  # the pool is gone
        if not message:
            return
        count, layout = TASK_COUNT.unpack_from(message)
        ids = struct.unpack_from(f"!{count}Q", message, TASK_COUNT.size)
        if running is not None and count:
            running.set(ids[0])  # a crash while unpickling is blamed on the first task
        kind = APPLY
        try:
            kind, func, payloads = _oob.loads_message(memoryview(message)[TASK_COUNT.size + TASK_ID.size * count :])
            if len(payloads) != count:
                raise ValueError(f"a message for {count} tasks carried {len(payloads)}")
        except Exception as exc:
            failure = exception_payload(exc)
            replies = [_encode(task_id, kind, False, failure) for task_id in ids]
            try:
                write_messages(fd, replies)
            except OSError:
                return
            done += count
            if running is not None:
                running.clear()
            continue
        del message
        for task_id, payload in zip(ids, payloads, strict=True):
            if running is not None:
                running.set(task_id)
            try:
                if layout == BATCH:
                    try:
                        payload = loads(payload)
                    except Exception as exc:
                        raise PicklingFailedError(f"the task's arguments could not be unpickled in the worker: "
                                                  f"{type(exc).__name__}: {exc}") from exc
                result = _run(kind, func, payload)
            except Exception as exc:
                reply = _encode(task_id, kind, False, exception_payload(exc))
            else:
                reply = _encode(task_id, kind, True, result)
            payload = result = None
            # Each reply goes at once: a task that crashes the worker must not take finished ones with it.
            try:
                write_messages(fd, [reply])
            except OSError:
                return
            done += 1
        func = payloads = None
        if running is not None:
            running.clear()
        if max_memory is not None:
            rss = resident_bytes()
            if rss is not None and rss > max_memory:
                # Leave between tasks: the pool gives what it had queued here to the others, and a fresh worker.
                try:
                    write_messages(fd, [TASK_ID.pack(RETIRED) + _oob.dumps((True, rss))[0]])
                except OSError:
                    pass
                return
