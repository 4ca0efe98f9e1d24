"""The pool's messages, both directions, on each worker's own socket.

Framing is procpar-sync's (``procpar_sync.lowlevel``): every message below travels as one frame, a 4-byte
big-endian length then that many bytes, several frames often in one ``write()``/``read()``.

Engine -> worker, a task message (tasks of one function)::

    +---------+--------+-----------------+---------------------------------------------+
    | count n | layout | n task ids      | body: (kind, func, payloads), see _oob      |
    | !I (4)  | !B (1) | !Q each (8 * n) | tag byte, then a pickle (+ shared memory)   |
    +---------+--------+-----------------+---------------------------------------------+

  ``SINGLE``: one task, its payload pickled in the body, its large buffers beside it in shared memory.
  ``BATCH``: each payload is its own small pickle inside the body, so that the function is pickled and
  unpickled once for the lot (most of a short task's cost) while an argument that cannot be unpickled still
  fails its own task only. The ids come first, outside the pickle: tasks that cannot be unpickled at all (a
  function the worker cannot import, say) still fail under their own ids. An empty frame (``STOP``) asks the
  worker to exit.

Worker -> engine, a reply (one per task, sent as soon as the task is done)::

    +---------+------------------------------------------------------------------+
    | task id | body                                                             |
    | !Q (8)  | PLAIN + pickle of (ok, value) | NUMBERS + packed 8-byte values   |
    +---------+------------------------------------------------------------------+

  ``value`` is the result, or ``(exception, traceback text)``. A chunk's results that are all ints or all
  floats go as raw 8-byte values (``NUMBERS``, packed by ``procpar_sync.lowlevel.pack_numbers``): far cheaper
  than a pickle at both ends. A result or exception that cannot be pickled is replaced by a
  ``PicklingFailedError`` naming it, so that one task fails and the worker goes on. Two ids are not tasks:
  ``INIT_FAILED`` (the initializer raised; value: its exception) and ``RETIRED`` (the worker grew past
  ``max_memory_per_child`` between tasks and leaves; value: its resident bytes).

Body tags (first byte, see ``_oob``): ``\\0`` a plain pickle, ``\\1`` a pickle whose large buffers are in a
shared-memory segment named in the body, ``\\2`` packed numbers.
"""

from __future__ import annotations

import struct

try:  # the C module: ``pickle`` itself imports ``re`` and more, which a spawned worker should not pay for
    from _pickle import dumps as _plain_dumps
except ImportError:  # pragma: no cover - interpreters without the C accelerator
    from pickle import dumps as _plain_dumps

from procpar_core import lowlevel
from procpar_core.reduction import loads
from procpar_sync.lowlevel import pack_numbers, unpack_numbers

from . import _oob
from ._errors import MaybeEncodingError, PicklingFailedError, RemoteTraceback
from ._task import APPLY

__all__ = ["TASK_ID", "TASK_COUNT", "SINGLE", "BATCH", "STOP", "INIT_FAILED", "RETIRED", "task_header",
           "read_task_header", "encode_reply", "decode_reply", "exception_payload"]

TASK_ID = struct.Struct("!Q")
TASK_COUNT = struct.Struct("!IB")
SINGLE, BATCH = 0, 1
STOP = b""
INIT_FAILED = (1 << 64) - 1
RETIRED = (1 << 64) - 2
# A chunk's results that are all ints (or all floats) travel as raw 8-byte values from this many on.
_PACK_FROM = 16
_PLAIN, _NUMBERS = _oob.PLAIN[0], _oob.NUMBERS[0]
# Results the pickler writes itself, before any reducer: pickle.dumps gives the same bytes as procpar's pickler
# without its per-thread bookkeeping (~1 us of every reply).
_ATOMIC = frozenset({int, float, str, bytes, bool, type(None), complex})


def task_header(ids: list[int], layout: int) -> bytes:
    """The start of a task message carrying the tasks ``ids`` (layout ``SINGLE`` or ``BATCH``)."""
    return struct.pack(f"!IB{len(ids)}Q", len(ids), layout, *ids)


def read_task_header(message: bytes) -> tuple[tuple[int, ...], int, int]:
    """A task message's ids, its layout, and where its body starts."""
    count, layout = TASK_COUNT.unpack_from(message)
    ids = struct.unpack_from(f"!{count}Q", message, TASK_COUNT.size)
    return ids, layout, TASK_COUNT.size + TASK_ID.size * count


def exception_payload(exc: BaseException) -> tuple[BaseException, str]:
    """``(exc, its traceback as text)``, with ``exc`` replaced if it cannot be pickled."""
    import traceback  # only when a task failed: ~5 ms of a first pool otherwise

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        lowlevel.serialize(exc)
    except Exception as err:
        exc = PicklingFailedError(
            f"the task raised {type(exc).__qualname__}: {exc}; that exception could not be pickled to send it "
            f"back ({type(err).__name__}: {err}), so it is replaced by this error")
    return exc, tb


def _describe_result_failure(kind: int, result: object, err: BaseException) -> PicklingFailedError:
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


def encode_reply(task_id: int, kind: int, ok: bool, value: object) -> bytes:
    """A worker's reply for one task: its result (``ok``) or ``(exception, traceback text)``."""
    header = TASK_ID.pack(task_id)
    if ok:
        if type(value) is list and kind != APPLY:
            if len(value) >= _PACK_FROM:
                packed = pack_numbers(value)
                if packed is not None:
                    return header + _oob.NUMBERS + packed
            elif all(type(item) in _ATOMIC for item in value):
                # An imap's chunk of one, say: plain values, which no reducer or buffer can concern.
                return header + _oob.PLAIN + _plain_dumps((True, value), 5)
        elif type(value) in _ATOMIC:
            return header + _oob.PLAIN + _plain_dumps((True, value), 5)
    try:
        return _oob.dumps((ok, value), header)[0]
    except Exception as err:
        if ok:
            failure = _describe_result_failure(kind, value, err)
        else:
            failure = PicklingFailedError(f"the task's error could not be pickled: {type(err).__name__}: {err}")
        return _oob.dumps((False, (failure, "")), header)[0]


def decode_reply(message: bytes, counts: _oob.SegmentBytes | None = None) -> tuple[int, bool, object]:
    """``(task id, ok, value)`` of a reply; when not ok, ``value`` is the exception, its worker-side traceback
    attached as ``__cause__``. A reply that cannot be unpickled here fails its task with a
    ``PicklingFailedError`` saying so. Bytes that came through shared memory are added to ``counts``."""
    (task_id,) = TASK_ID.unpack_from(message)
    body = memoryview(message)[TASK_ID.size :]
    try:
        tag = body[0]
        if tag == _PLAIN:
            ok, value = loads(body[1:])
        elif tag == _NUMBERS:
            return task_id, True, unpack_numbers(body[1:])
        else:
            outcome = _oob.loads_message(body, counts)
            if not isinstance(outcome, tuple) or len(outcome) != 2:
                raise ValueError(f"a reply's body is not (ok, value): {type(outcome).__name__}")
            ok, value = outcome
    except Exception as err:
        return task_id, False, PicklingFailedError(
            f"the worker's reply could not be unpickled here: {type(err).__name__}: {err}")
    if ok:
        return task_id, True, value
    exc, tb = value
    if tb:
        exc.__cause__ = RemoteTraceback(tb)
    return task_id, False, exc
