"""Queue, SimpleQueue and JoinableQueue shared between processes.

Data flow of ``Queue``::

    put() --pickle--> buffer (deque) --feeder thread--> pipe --> get() (one process at a time: _rlock)
      |                   |                 |
      _sem (capacity)     _notempty         _wlock: one writing process at a time; each wake-up writes
                          (thread cond.)    every message buffered so far in one writev

Items are pickled once, in ``put()``, with procpar-core's serializer: an object that cannot be pickled
raises in the caller instead of dying in the feeder. Messages are framed like connection messages, so each
``get()`` reads exactly one item and many processes may consume one queue.
"""

from __future__ import annotations

import collections
import fcntl
import functools
import os
import struct
import sys
import termios
import threading
import time
import weakref
from queue import Empty, Full

from procpar_core import connection as _connection
from procpar_core import reduction as _reduction
from procpar_core.reduction import assert_spawning
from procpar_core.util import Finalize, debug, info, is_exiting, register_after_fork

from ._synchronize import SEM_VALUE_MAX, BoundedSemaphore, Condition, Lock, Semaphore

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Queue", "SimpleQueue", "JoinableQueue", "Empty", "Full"]

_SENTINEL = object()
# Writes are batched up to this many messages (two iovecs each), below IOV_MAX.
_MAX_BATCH = 256


def _serialize(obj: Any) -> bytes:
    from procpar_core import _serializer

    return bytes(_serializer.serialize(obj))


_HEADER = struct.Struct("!i")


_DIRECT_LIMIT = 65536


def _pipe_is_empty(fd: int) -> bool:
    try:
        queued = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return False
    return int.from_bytes(queued, sys.byteorder) == 0


def _send_many(writer: Any, payloads: list[bytes]) -> None:
    """Write framed messages with as few writev calls as the kernel allows."""
    handle = writer.fileno()
    frames = _frames(payloads)
    total = sum(len(f) for f in frames)
    written = os.writev(handle, frames)
    if written < total:
        rest = memoryview(b"".join(frames))[written:]
        while rest:
            rest = rest[os.write(handle, rest) :]


def _frames(payloads: list[bytes]) -> list[bytes]:
    frames: list[bytes] = []
    for payload in payloads:
        frames.append(_HEADER.pack(len(payload)))
        frames.append(payload)
    return frames


class Queue:
    """A FIFO queue shared between processes (``queue.Queue``-like; ``qsize`` is approximate)."""

    def __init__(self, maxsize: int = 0, *, ctx: Any = None) -> None:
        if maxsize <= 0:
            maxsize = SEM_VALUE_MAX
        self._maxsize = maxsize
        self._reader, self._writer = _connection.Pipe(duplex=False)
        self._rlock = Lock(ctx=ctx)
        self._opid = os.getpid()
        self._wlock = Lock(ctx=ctx)
        self._sem = BoundedSemaphore(maxsize, ctx=ctx)
        self._ignore_epipe = False
        self._reset()
        register_after_fork(self, Queue._after_fork)

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (self._ignore_epipe, self._maxsize, self._reader, self._writer, self._rlock, self._wlock,
                self._sem, self._opid)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (self._ignore_epipe, self._maxsize, self._reader, self._writer, self._rlock, self._wlock,
         self._sem, self._opid) = state
        self._reset()

    def _after_fork(self) -> None:
        debug("Queue._after_fork()")
        self._reset()

    def _reset(self) -> None:
        # Also after fork: the feeder thread and its condition's state belong to the parent.
        self._notempty = threading.Condition(threading.Lock())
        self._buffer: collections.deque[Any] = collections.deque()
        self._thread: threading.Thread | None = None
        self._jointhread: Finalize | None = None
        self._joincancelled = False
        self._closed = False
        self._close: Finalize | None = None
        # True while the feeder writes a batch it took from the buffer (guarded by _notempty).
        self._feeding = [False]
        self._recv_bytes = self._reader.recv_bytes
        self._poll = self._reader.poll

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        """Put ``obj`` in the queue; wait for room if it is full (``queue.Full`` after ``timeout``)."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        try:
            payload = _serialize(obj)
        except Exception as exc:
            # As with the stdlib, a put() of something unpicklable does not raise: the error goes to this
            # hook (which prints it), the item is dropped, and the queue keeps working.
            self._on_queue_feeder_error(exc, obj)
            return
        if not self._sem.acquire(block, timeout):
            raise Full
        self._buffer_payload(payload)

    def _buffer_payload(self, payload: bytes) -> None:
        with self._notempty:
            # Fast path for an idle queue: nothing buffered, nothing being fed and the pipe drained, so a
            # consumer is probably waiting. Writing here saves the hop through the feeder thread. A pipe that
            # already holds data keeps the batching path; another process writing makes us not wait.
            if (not self._buffer and not self._feeding[0] and len(payload) <= _DIRECT_LIMIT
                    and _pipe_is_empty(self._writer.fileno()) and self._wlock.acquire(False)):
                try:
                    _send_many(self._writer, [payload])
                finally:
                    self._wlock.release()
                return
            if self._thread is None:
                self._start_thread()
            self._buffer.append(payload)
            self._notempty.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return an item; wait for one if empty (``queue.Empty`` after ``timeout``)."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        if block and timeout is None:
            with self._rlock:
                data = self._recv_bytes()
            self._sem.release()
        else:
            deadline = time.monotonic() + timeout if block and timeout is not None else 0.0
            if not self._rlock.acquire(block, timeout):
                raise Empty
            try:
                if block:
                    remaining = deadline - time.monotonic()
                    if not self._poll(remaining):
                        raise Empty
                elif not self._poll():
                    raise Empty
                data = self._recv_bytes()
                self._sem.release()
            finally:
                self._rlock.release()
        return _reduction.loads(data)

    def qsize(self) -> int:
        """Approximate number of items (put but not yet taken)."""
        return self._maxsize - self._sem._value()

    def empty(self) -> bool:
        return not self._poll()

    def full(self) -> bool:
        return bool(self._sem._semlock.is_zero())

    def get_nowait(self) -> Any:
        return self.get(False)

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, False)

    def close(self) -> None:
        """No more puts from this process; the feeder flushes what is buffered, then stops."""
        self._closed = True
        close = self._close
        if close is not None:
            self._close = None
            close()

    def join_thread(self) -> None:
        """Wait for the feeder to flush everything put by this process (after ``close()``)."""
        debug("Queue.join_thread()")
        if not self._closed:
            raise AssertionError(f"Queue {self!r} not closed")
        if self._jointhread is not None:
            self._jointhread()

    def cancel_join_thread(self) -> None:
        """Let this process exit without waiting for the feeder (buffered items may be lost)."""
        debug("Queue.cancel_join_thread()")
        self._joincancelled = True
        try:
            if self._jointhread is not None:
                self._jointhread.cancel()
        except AttributeError:
            pass

    def _start_thread(self) -> None:
        debug("Queue._start_thread()")
        thread = threading.Thread(
            target=Queue._feed,
            args=(self._buffer, self._notempty, functools.partial(_send_many, self._writer), self._wlock,
                  self._reader.close, self._writer.close, self._ignore_epipe, self._sem, self._feeding),
            name="QueueFeederThread",
            daemon=True,
        )
        thread.start()
        self._thread = thread
        if not self._joincancelled:
            self._jointhread = Finalize(thread, Queue._finalize_join, [weakref.ref(thread)], exitpriority=-5)
        self._close = Finalize(self, Queue._finalize_close, [self._buffer, self._notempty], exitpriority=10)

    @staticmethod
    def _on_queue_feeder_error(e: BaseException, obj: Any) -> None:
        """Called when ``obj`` cannot be pickled for the queue; override it to handle that differently."""
        import traceback

        traceback.print_exc()

    @staticmethod
    def _finalize_join(twr: Any) -> None:
        thread = twr()
        if thread is not None:
            debug("joining queue thread")
            thread.join()

    @staticmethod
    def _finalize_close(buffer: collections.deque[Any], notempty: threading.Condition) -> None:
        with notempty:
            buffer.append(_SENTINEL)
            notempty.notify()

    @staticmethod
    def _feed(buffer: collections.deque[Any], notempty: threading.Condition, send_many: Any, wlock: Any,
              reader_close: Any, writer_close: Any, ignore_epipe: bool, sem: Any, feeding: list[bool]) -> None:
        debug("starting thread to feed data to pipe")
        while True:
            with notempty:
                while not buffer:
                    notempty.wait()
                batch: list[Any] = []
                while buffer and len(batch) < _MAX_BATCH:
                    batch.append(buffer.popleft())
                feeding[0] = True
            stop = False
            if batch and batch[-1] is _SENTINEL:
                batch.pop()
                stop = True
            if _SENTINEL in batch:
                index = batch.index(_SENTINEL)
                with notempty:
                    buffer.extendleft(reversed(batch[index + 1 :]))
                batch = batch[:index]
                stop = True
            try:
                if batch:
                    with wlock:
                        send_many(batch)
            except Exception as exc:
                with notempty:
                    feeding[0] = False
                if ignore_epipe and getattr(exc, "errno", 0) == 32:
                    return
                if is_exiting():
                    info("error in queue thread: %s", exc)
                    return
                import traceback

                traceback.print_exc()
                for _ in batch:
                    sem.release()
            else:
                with notempty:
                    feeding[0] = False
            if stop:
                debug("feeder thread got sentinel -- exiting")
                writer_close()
                return

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} maxsize={self._maxsize}>"


class JoinableQueue(Queue):
    """A ``Queue`` with ``task_done()`` and ``join()``."""

    def __init__(self, maxsize: int = 0, *, ctx: Any = None) -> None:
        super().__init__(maxsize, ctx=ctx)
        self._unfinished_tasks = Semaphore(0, ctx=ctx)
        self._cond = Condition(ctx=ctx)

    def __getstate__(self) -> tuple[Any, ...]:
        return (*Queue.__getstate__(self), self._cond, self._unfinished_tasks)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        Queue.__setstate__(self, state[:-2])
        self._cond, self._unfinished_tasks = state[-2:]

    def _buffer_payload(self, payload: bytes) -> None:
        # Counted before the feeder can see it: a consumer's task_done() must never run ahead of the count.
        with self._cond:
            self._unfinished_tasks.release()
            super()._buffer_payload(payload)

    def task_done(self) -> None:
        """Mark one item taken with ``get()`` as processed; ``ValueError`` if called too often."""
        with self._cond:
            if not self._unfinished_tasks.acquire(False):
                raise ValueError("task_done() called too many times")
            if self._unfinished_tasks._semlock.is_zero():
                self._cond.notify_all()

    def join(self) -> None:
        """Wait until every item put has been marked done."""
        with self._cond:
            if not self._unfinished_tasks._semlock.is_zero():
                self._cond.wait()


class SimpleQueue:
    """A minimal queue: ``put``, ``get``, ``empty``, ``close``; no feeder thread, no size."""

    def __init__(self, *, ctx: Any = None) -> None:
        self._reader, self._writer = _connection.Pipe(duplex=False)
        self._rlock = Lock(ctx=ctx)
        self._wlock = Lock(ctx=ctx)
        self._poll = self._reader.poll

    def close(self) -> None:
        self._reader.close()
        self._writer.close()

    def empty(self) -> bool:
        return not self._poll()

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (self._reader, self._writer, self._rlock, self._wlock)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._reader, self._writer, self._rlock, self._wlock = state
        self._poll = self._reader.poll

    def get(self) -> Any:
        """Remove and return an item, waiting for one."""
        with self._rlock:
            data = self._reader.recv_bytes()
        return _reduction.loads(data)

    def put(self, obj: Any) -> None:
        """Put ``obj`` in the queue."""
        data = _serialize(obj)
        with self._wlock:
            self._writer.send_bytes(data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x}>"
