"""The worker process's loop: read task messages from the pool, run them, send one reply per task.

The messages are described in ``_protocol``. Which task is running is written to shared memory (``_running``)
as it starts, so that a worker's death fails that task alone: the tasks it had not started yet go to another
worker. Workers ignore SIGINT: on Ctrl-C the pool's owner decides, and stops them.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found,unused-ignore]  # not signal: it imports enum
import itertools
import os
import time
from collections.abc import Iterable

from procpar_core.reduction import loads
from procpar_sync.lowlevel import has_message, read_message_stashed, spin_readable, write_messages

from . import _oob
from ._errors import PicklingFailedError
from ._protocol import BATCH, INIT_FAILED, RETIRED, TASK_ID, encode_reply, exception_payload, read_task_header
from ._running import RunningTask
from ._task import APPLY, MAP

TYPE_CHECKING = False
if TYPE_CHECKING:
    from procpar_core.connection import Connection

    from ._typing import Function

__all__ = ["worker_main", "resident_bytes", "SPIN_SECONDS"]

# How long an idle worker looks for its next task before it sleeps, when the last one came that soon: a
# sleeping process takes tens of microseconds to wake up, longer than a short task.
SPIN_SECONDS = 0.0002


def _run(kind: int, func: Function, payload: object) -> object:
    if kind == APPLY:
        assert isinstance(payload, tuple)
        args, kwds = payload
        return func(*args, **kwds)
    assert isinstance(payload, Iterable)
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


def worker_main(fd_holder: Connection, initializer: Function | None, initargs: tuple[object, ...],
                maxtasks: int | None, running: RunningTask | None = None, max_memory: int | None = None) -> None:
    """Run tasks from the pool until told to stop, the pool goes away, ``maxtasks`` tasks are done, or (with
    ``max_memory``) the worker's resident memory passes that many bytes after a message's tasks."""
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
    fd = fd_holder.fileno()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as exc:
            write_messages(fd, [encode_reply(INIT_FAILED, APPLY, False, exception_payload(exc))])
            return
    if running is not None:
        running.mark_ready(time.monotonic())
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
        ids, layout, body_start = read_task_header(message)
        count = len(ids)
        if running is not None and count:
            running.set(ids[0])  # a crash while unpickling is blamed on the first task
        kind = APPLY
        try:
            body = _oob.loads_message(memoryview(message)[body_start:])
            if not isinstance(body, tuple) or len(body) != 3:
                raise ValueError(f"a task message's body is not (kind, func, payloads): {type(body).__name__}")
            kind, func, payloads = body
            if len(payloads) != count:
                raise ValueError(f"a message for {count} tasks carried {len(payloads)}")
        except Exception as exc:
            failure = exception_payload(exc)
            replies = [encode_reply(task_id, kind, False, failure) for task_id in ids]
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
                reply = encode_reply(task_id, kind, False, exception_payload(exc))
            else:
                reply = encode_reply(task_id, kind, True, result)
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
