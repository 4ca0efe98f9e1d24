r"""Queue, SimpleQueue and JoinableQueue shared between processes.

Data flow of ``Queue``::

    put() --pickle--> buffer (deque) --feeder thread--> pipe --> get() (one process at a time: _rlock)
      |      \                              |
      |       `--- idle queue: direct write --'  _wlock: one writing process at a time; the feeder writes
      _sem (capacity)                             what was buffered (up to 256 messages) in one writev

The feeder sleeps on a plain lock (``_wakeup``) that put() releases only when the feeder said it is idle, and
holds ``_feedlock`` while it takes a batch and writes it; put() writes directly only when it can take
``_feedlock`` and the buffer is empty, so one thread's items always reach the pipe in order.

Items are pickled once, in ``put()``, with procpar-core's serializer: an object that cannot be pickled
raises in the caller instead of dying in the feeder. Messages are framed like connection messages, so each
``get()`` reads exactly one item and many processes may consume one queue.
"""

from __future__ import annotations

import _thread
import collections
import functools
import os
import threading
import time
import weakref
from queue import Empty, Full

from procpar_core import connection as _connection
from procpar_core import lowlevel
from procpar_core import reduction as _reduction
from procpar_core.reduction import assert_spawning
from procpar_core.util import Finalize, debug, exiting_on_interrupt, info, is_exiting, register_after_fork

from . import _arena
from . import _queue as _stream
from ._synchronize import SEM_VALUE_MAX, Condition, Lock, RLock, _counter
from ._wire import spin_readable as _spin_readable
from ._wire import unread as _unread

_stream_get = _stream.get
_stashed = _stream.stashed
_loads = _reduction.loads
_monotonic = time.monotonic
# How long a blocking get() looks for its item without sleeping, when the one before came that soon: waking a
# process asleep in read() costs tens of microseconds, as much as a whole put-to-get hop between awake ones.
_SPIN_SECONDS = 0.0002

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Generic

    from typing_extensions import TypeVar

    from procpar_core.context import BaseContext

    # Defaulting to Any: ``Queue()`` needs no annotation (as the stdlib's, whose factories return Queue[Any]).
    T = TypeVar("T", default=Any)
else:
    from procpar_core.runtime_typing import Generic

    T = None

__all__ = ["Queue", "SimpleQueue", "JoinableQueue", "Empty", "Full"]

_SENTINEL = object()
# The stream's control block, then 64 KiB of read-ahead shared by every consumer; only the pages a burst of
# messages reaches are ever touched.
_STASH_SIZE = _stream.CONTROL_SIZE + (1 << 16)
# The feeder takes at most this many messages per wake-up (_wire batches them into writev calls).
_MAX_BATCH = 256


def _serialize(obj: Any) -> bytes:
    data = lowlevel.serialize(obj)
    return data if type(data) is bytes else bytes(data)


# Direct writes stay far below the smallest pipe capacity (64 KiB), so put() never blocks on a full pipe.
_DIRECT_LIMIT = 16384


def _wake(wakeup: Any) -> None:
    try:
        wakeup.release()
    except RuntimeError:
        pass  # already released: the feeder has a wake-up pending


class _LostItem:
    """Called by the stream for each message lost to a death (its writer died writing it, or a reader taking
    it): the room it took in the queue is free again, and a JoinableQueue no longer waits for it. Holds what
    it needs, not the queue, which the feeder thread must not keep alive."""

    __slots__ = ("room", "tasks")

    def __init__(self, room: Any, tasks: Any = None) -> None:
        self.room = room
        self.tasks = tasks

    def __call__(self) -> None:
        try:
            self.room._semlock.release()
        except ValueError:
            pass
        if self.tasks is not None:
            cond, unfinished = self.tasks
            with cond:
                if unfinished.acquire(False) and unfinished._semlock.is_zero():
                    cond.notify_all()


def _fd_or_none(conn: Any) -> int | None:
    """The read end, which a writer settling a dead writer's half message reads from (None if closed here)."""
    return None if conn.closed else int(conn.fileno())


def _new_stream() -> _arena.Arena:
    """The shared control block and read-ahead of a queue's stream (see _queue.c)."""
    arena = _arena.Arena(_STASH_SIZE)
    _stream.init(arena.buffer)
    return arena


class Queue(Generic[T]):
    """A FIFO queue shared between processes (``queue.Queue``-like; ``qsize`` is approximate)."""

    def __init__(self, maxsize: int = 0, *, ctx: BaseContext | None = None) -> None:
        if maxsize <= 0:
            maxsize = SEM_VALUE_MAX
        self._maxsize = maxsize
        self._reader, self._writer = _connection.Pipe(duplex=False)
        # The stream repairs itself when the holder of either lock dies (see _queue.c).
        self._rlock = Lock(ctx=ctx, on_owner_death="recover")
        self._opid = os.getpid()
        self._wlock = Lock(ctx=ctx, on_owner_death="recover")
        self._sem = _counter(maxsize, maxsize, ctx=ctx)
        # Messages pulled out of the pipe ahead of their get(), shared by every consumer.
        self._stash_arena = _new_stream()
        self._ignore_epipe = False
        self._reset()
        register_after_fork(self, Queue._after_fork)

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (self._ignore_epipe, self._maxsize, self._reader, self._writer, self._rlock, self._wlock,
                self._sem, self._opid, self._stash_arena)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (self._ignore_epipe, self._maxsize, self._reader, self._writer, self._rlock, self._wlock,
         self._sem, self._opid, self._stash_arena) = state
        self._reset()

    def _after_fork(self) -> None:
        debug("Queue._after_fork()")
        self._reset()

    def _reset(self) -> None:
        # Also after fork: the feeder thread and its condition's state belong to the parent.
        self._buffer: collections.deque[Any] = collections.deque()
        self._feedlock = _thread.allocate_lock()
        self._wakeup = _thread.allocate_lock()
        self._wakeup.acquire()
        # [True] while the feeder sleeps (or is about to) on _wakeup.
        self._idle = [False]
        self._start_lock = _thread.allocate_lock()
        self._thread: threading.Thread | None = None
        self._jointhread: Finalize | None = None
        self._joincancelled = False
        self._closed = False
        self._used = False  # put() was called here: close() then closes this process's ends
        self._close: Finalize | None = None
        self._poll = self._reader.poll
        self._stash = self._stash_arena.buffer
        self._on_lost = _LostItem(self._sem)
        # What every get() needs, looked up once: a get() costs about a microsecond, attribute chains count.
        self._reader_fd = self._reader.fileno()
        self._read_semlock = self._rlock._semlock
        self._write_semlock = self._wlock._semlock
        self._room_semlock = self._sem._semlock
        self._fast = True  # this process's last blocking get() found its item within _SPIN_SECONDS

    def put(self, obj: T, block: bool = True, timeout: float | None = None) -> None:
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
        self._used = True
        self._buffer_payload(payload)

    def _buffer_payload(self, payload: bytes) -> None:
        buffer = self._buffer
        # Fast path for an idle queue: nothing buffered, the feeder not writing and the pipe drained, so a
        # consumer is probably waiting and the hop through the feeder thread would only add latency. A pipe
        # that holds data keeps the batching path; another process writing makes us not wait.
        if not buffer and len(payload) <= _DIRECT_LIMIT and self._feedlock.acquire(False):
            try:
                fd = self._writer.fileno()
                wsem = self._wlock._semlock
                if not buffer and _unread(fd) == 0 and wsem.acquire(False):
                    try:
                        # False: the writer before us died mid-message and the tail is being settled; the
                        # feeder waits for that.
                        if _stream.put(fd, _fd_or_none(self._reader), self._stash, wsem, self._rlock._semlock,
                                       (payload,), False, self._on_lost):
                            return
                    except OSError:
                        pass  # the feeder reports it, as for any write
                    finally:
                        wsem.release()
            finally:
                self._feedlock.release()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._start_thread()
        buffer.append(payload)
        if self._idle[0]:
            _wake(self._wakeup)

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return an item; wait for one if empty (``queue.Empty`` after ``timeout``)."""
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        if block and timeout is None:
            with self._read_semlock:
                stash = self._stash
                if self._fast and (_stashed(stash) or _spin_readable(self._reader_fd, _SPIN_SECONDS)):
                    data = _stream_get(self._reader_fd, stash, self._write_semlock, None, self._on_lost)
                else:
                    started = _monotonic()
                    data = _stream_get(self._reader_fd, stash, self._write_semlock, None, self._on_lost)
                    self._fast = _monotonic() - started < _SPIN_SECONDS
            self._room_semlock.release()
            assert data is not None  # no timeout: a message, or an exception
            item: T = _loads(data)
            return item
        deadline = time.monotonic() + timeout if block and timeout is not None else 0.0
        if not self._rlock.acquire(block, timeout):
            raise Empty
        try:
            remaining = max(0.0, deadline - time.monotonic()) if block else 0.0
            data = _stream_get(self._reader_fd, self._stash, self._write_semlock, remaining, self._on_lost)
        finally:
            self._rlock.release()
        if data is None:
            raise Empty
        self._room_semlock.release()
        item = _loads(data)
        return item

    def qsize(self) -> int:
        """Approximate number of items (put but not yet taken)."""
        return self._maxsize - self._sem._value()

    def empty(self) -> bool:
        return not _stream.stashed(self._stash) and not self._poll()

    def _lost(self) -> int:
        """How many items were lost to a process dying while it wrote or read one (see docs/reliability.md)."""
        return int(_stream.lost(self._stash))

    def full(self) -> bool:
        return bool(self._sem._semlock.is_zero())

    def get_nowait(self) -> T:
        return self.get(False)

    def put_nowait(self, obj: T) -> None:
        self.put(obj, False)

    def close(self) -> None:
        """No more puts from this process; the feeder flushes what is buffered, then stops."""
        self._closed = True
        close = self._close
        if close is not None:
            self._close = None
            close()  # the feeder flushes, then closes both ends
        elif self._used and self._thread is None:
            # Every put() went straight to the pipe: nothing to flush. Closed as the feeder would close them.
            self._reader.close()
            self._writer.close()

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
            args=(self._buffer, self._feedlock, self._wakeup, self._idle,
                  functools.partial(_stream.put, self._writer.fileno(), _fd_or_none(self._reader), self._stash,
                                    self._wlock._semlock, self._rlock._semlock),
                  self._wlock, self._reader.close, self._writer.close, self._ignore_epipe, self._sem,
                  self._on_lost),
            name="QueueFeederThread",
            daemon=True,
        )
        thread.start()
        self._thread = thread
        if not self._joincancelled:
            self._jointhread = Finalize(thread, Queue._finalize_join, [weakref.ref(thread)], exitpriority=-5)
        self._close = Finalize(self, Queue._finalize_close, [self._buffer, self._wakeup], exitpriority=10)

    @staticmethod
    def _on_queue_feeder_error(e: BaseException, obj: Any) -> None:
        """Called when ``obj`` cannot be pickled for the queue; override it to handle that differently."""
        import traceback

        traceback.print_exc()

    @staticmethod
    def _finalize_join(twr: Any) -> None:
        if exiting_on_interrupt():
            # Ctrl-C: the feeder may be blocked on a pipe nobody reads any more; what it still holds is lost
            # with this process, as its user asked.
            debug("not joining the queue's feeder: interrupted")
            return
        thread = twr()
        if thread is not None:
            debug("joining queue thread")
            thread.join()

    @staticmethod
    def _finalize_close(buffer: collections.deque[Any], wakeup: Any) -> None:
        buffer.append(_SENTINEL)
        _wake(wakeup)

    @staticmethod
    def _feed(buffer: collections.deque[Any], feedlock: Any, wakeup: Any, idle: list[bool], send_many: Any,
              wlock: Any, reader_close: Any, writer_close: Any, ignore_epipe: bool, sem: Any,
              on_lost: Any) -> None:
        debug("starting thread to feed data to pipe")
        while True:
            stop = False
            with feedlock:
                batch: list[Any] = []
                while buffer and len(batch) < _MAX_BATCH:
                    item = buffer.popleft()
                    if item is _SENTINEL:
                        stop = True
                        break
                    batch.append(item)
                if batch:
                    try:
                        with wlock:
                            send_many(batch, True, on_lost)
                    except Exception as exc:
                        if ignore_epipe and getattr(exc, "errno", 0) == 32:
                            return
                        if is_exiting():
                            info("error in queue thread: %s", exc)
                            return
                        import traceback

                        traceback.print_exc()
                        for _ in batch:
                            sem.release()
            if stop:
                debug("feeder thread got sentinel -- exiting")
                # A closed queue that was used is closed for reading in this process too, as the stdlib's
                # (empty() then raises OSError): its items are for other processes.
                reader_close()
                writer_close()
                return
            if not batch:
                idle[0] = True
                # put() appends before it reads idle[0], so either it sees True and wakes us, or we see its item.
                if not buffer:
                    wakeup.acquire()
                idle[0] = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x} maxsize={self._maxsize}>"


class JoinableQueue(Queue[T]):
    """A ``Queue`` with ``task_done()`` and ``join()``."""

    def __init__(self, maxsize: int = 0, *, ctx: BaseContext | None = None) -> None:
        super().__init__(maxsize, ctx=ctx)
        self._unfinished_tasks = _counter(0, ctx=ctx)
        self._cond = Condition(RLock(ctx=ctx, on_owner_death="recover"), ctx=ctx)
        self._on_lost = _LostItem(self._sem, (self._cond, self._unfinished_tasks))

    def __getstate__(self) -> tuple[Any, ...]:
        return (*Queue.__getstate__(self), self._cond, self._unfinished_tasks)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        Queue.__setstate__(self, state[:-2])
        self._cond, self._unfinished_tasks = state[-2:]
        self._on_lost = _LostItem(self._sem, (self._cond, self._unfinished_tasks))

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


class SimpleQueue(Generic[T]):
    """A minimal queue: ``put``, ``get``, ``empty``, ``close``; no feeder thread, no size.

    Its pipe carries plain connection messages (``concurrent.futures`` reads it with ``Connection.recv``),
    through the same death-safe stream as ``Queue``.
    """

    def __init__(self, *, ctx: BaseContext | None = None) -> None:
        self._reader, self._writer = _connection.Pipe(duplex=False)
        self._rlock = Lock(ctx=ctx, on_owner_death="recover")
        self._wlock = Lock(ctx=ctx, on_owner_death="recover")
        self._stream = _new_stream()
        self._poll = self._reader.poll

    def close(self) -> None:
        self._reader.close()
        self._writer.close()

    def empty(self) -> bool:
        return not _stream.stashed(self._stream.buffer) and not self._poll()

    def __getstate__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return (self._reader, self._writer, self._rlock, self._wlock, self._stream)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self._reader, self._writer, self._rlock, self._wlock, self._stream = state
        self._poll = self._reader.poll

    def get(self) -> T:
        """Remove and return an item, waiting for one."""
        fd = self._reader.fileno()
        with self._rlock._semlock:
            data = _stream.get(fd, self._stream.buffer, self._wlock._semlock, None, None)
        assert data is not None  # no timeout
        item: T = _reduction.loads(data)
        return item

    def put(self, obj: T) -> None:
        """Put ``obj`` in the queue."""
        data = _serialize(obj)
        fd = self._writer.fileno()
        with self._wlock._semlock:
            _stream.put(fd, _fd_or_none(self._reader), self._stream.buffer, self._wlock._semlock, self._rlock._semlock,
                        (data,), True, None)

    def _lost(self) -> int:
        """How many items were lost to a process dying while it wrote or read one."""
        return int(_stream.lost(self._stream.buffer))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {id(self):#x}>"
