"""Jobs: what a pool call returns, and the tasks it is cut into.

A job is a ``procpar_pool.engine.TaskSource``: it hands the engine its tasks (``next_tasks``) and receives each
task's outcome (``set_outcome``). A
task is one call (``apply``) or one chunk of a map. ``ApplyResult`` and ``MapResult`` know their tasks up
front; ``IMapIterator`` pulls chunks from the caller's iterable only while fewer than ``max_ahead`` chunks
are waiting for the consumer, so an endless iterable is never swallowed.

Callbacks run in the engine's thread (the stdlib's result handler), as in the stdlib; an exception in one is
printed and does not stop the pool.
"""

from __future__ import annotations

import collections
import itertools
import threading

from procpar_core.util import wait_in_slices

from ._errors import TimeoutError
from ._task import APPLY, MAP, STARMAP, Task

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Sequence
    from typing import Generic, TypeVar, cast

    from ._progress import ProgressBar
    from ._typing import Returning
    from .engine import Engine

    R = TypeVar("R")
else:
    from procpar_core.runtime_typing import Generic, cast

    R = None

__all__ = ["Task", "Job", "ApplyResult", "AsyncResult", "MapResult", "IMapIterator", "IMapUnorderedIterator",
           "APPLY", "MAP", "STARMAP"]

def _run_callback(callback: Callable[[R], object] | None, value: R) -> None:
    if callback is None:
        return
    try:
        callback(value)
    except Exception:
        import traceback  # only for a failing callback: ~7 ms of a first pool otherwise

        traceback.print_exc()


class Job:
    """Base of the results: a source of tasks and the sink of their outcomes (a ``TaskSource``)."""

    _time_limit: float | None = None
    # Coroutines awaiting this job (``_aio``): None until one does, so a job nobody awaits pays a read.
    _wakers: list[Callable[[], None]] | None = None

    def __init__(self, engine: Engine, error_callback: Callable[[BaseException], object] | None = None,
                 progress: ProgressBar | None = None) -> None:
        self._engine = engine
        self._error_callback = error_callback
        self._event = threading.Event()
        self._progress = progress

    def next_tasks(self, limit: int) -> list[Task]:
        """Up to ``limit`` tasks to run now; none when exhausted or waiting on the consumer. One producer only:
        the pool's engine (or a thread holding its mutex)."""
        raise NotImplementedError

    def next_task(self) -> Task | None:
        """The next task to run, or None when there is none now (exhausted, or waiting on the consumer)."""
        tasks = self.next_tasks(1)
        return tasks[0] if tasks else None

    def exhausted(self) -> bool:
        raise NotImplementedError

    def set_outcome(self, index: int, ok: bool, value: object) -> None:
        raise NotImplementedError

    def set_outcomes(self, outcomes: list[tuple[int, bool, object]]) -> None:
        """Several tasks' outcomes at once (a worker's replies read in one go)."""
        for index, ok, value in outcomes:
            self.set_outcome(index, ok, value)

    def fail_all(self, exc: BaseException) -> None:
        """Fail every task not finished yet (the pool was terminated)."""
        raise NotImplementedError

    def ready(self) -> bool:
        return self._event.is_set()

    def _add_waker(self, wake: Callable[[], None]) -> None:
        if self._wakers is None:
            self._wakers = []
        self._wakers.append(wake)

    def _remove_waker(self, wake: Callable[[], None]) -> None:
        if self._wakers is not None and wake in self._wakers:
            self._wakers.remove(wake)

    def _wake(self) -> None:
        wakers = self._wakers
        if wakers:
            for wake in list(wakers):
                wake()

    def _cancel_pending(self) -> None:
        """The awaiting task was cancelled: drop the tasks not handed out yet."""
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> None:
        self._wait(timeout)

    def _wait(self, timeout: float | None) -> bool:
        try:
            # In slices in the main thread: a Ctrl-C that comes just before a sleep must not wait for its end.
            return bool(wait_in_slices(self._event.wait, timeout))
        except KeyboardInterrupt:
            # Ctrl-C while waiting for workers: stop them all rather than leave them running.
            self._engine.interrupted()
            raise


class ApplyResult(Job, Generic[R]):
    """The result of ``apply_async``: ``get``, ``wait``, ``ready``, ``successful``."""

    def __init__(self, engine: Engine, func: Returning[R], args: Iterable[object] = (),
                 kwds: dict[str, object] | None = None, callback: Callable[[R], object] | None = None,
                 error_callback: Callable[[BaseException], object] | None = None,
                 time_limit: float | None = None) -> None:
        super().__init__(engine, error_callback)
        self._callback = callback
        self._time_limit = time_limit
        # A list popped by whoever takes the task first, the engine or a cancellation (pop is atomic).
        self._tasks: list[Task] = [Task(self, 0, APPLY, func, (tuple(args), dict(kwds or {})), time_limit)]
        self._success = False
        self._value: R | None = None
        self._error: BaseException | None = None

    def next_tasks(self, limit: int) -> list[Task]:
        try:
            return [self._tasks.pop()]
        except IndexError:
            return []

    def exhausted(self) -> bool:
        return not self._tasks

    def __await__(self) -> Generator[object, None, R]:
        """``await result``: its value, or its exception; the event loop runs meanwhile."""
        from ._aio import await_result

        return await_result(self).__await__()

    def _cancel_pending(self) -> None:
        try:
            self._tasks.pop()
        except IndexError:
            return  # already running (or done): it finishes, its outcome stands
        self.set_outcome(0, False, _cancelled())

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._success

    def get(self, timeout: float | None = None) -> R:
        """The call's return value; re-raises its exception; ``TimeoutError`` if not ready in time."""
        if not self._wait(timeout):
            raise TimeoutError
        if self._success:
            return cast("R", self._value)
        assert self._error is not None
        raise self._error

    def set_outcome(self, index: int, ok: bool, value: object) -> None:
        if self._event.is_set():
            return
        self._success = ok
        if ok:
            self._value = cast("R", value)
            _run_callback(self._callback, self._value)
        else:
            self._error = _as_error(value)
            _run_callback(self._error_callback, self._error)
        self._event.set()
        if self._wakers:  # an awaiting coroutine: one attribute read otherwise
            self._wake()

    def fail_all(self, exc: BaseException) -> None:
        self._tasks = []
        self.set_outcome(0, False, exc)


def _cancelled() -> BaseException:
    import asyncio  # only reached from a cancelled coroutine: asyncio is loaded

    return asyncio.CancelledError("the awaiting task was cancelled before this work started")


def _as_error(value: object) -> BaseException:
    if isinstance(value, BaseException):
        return value
    return TypeError(f"a task failed with {value!r}, which is not an exception")  # an engine's bug, made visible


AsyncResult = ApplyResult


class MapResult(ApplyResult["list[R]"]):
    """The result of ``map_async``/``starmap_async``: the list of results, in order."""

    def __init__(self, engine: Engine, func: Returning[R], chunks: list[Sequence[object]], kind: int, *,
                 callback: Callable[[list[R]], object] | None = None,
                 error_callback: Callable[[BaseException], object] | None = None, time_limit: float | None = None,
                 progress: ProgressBar | None = None) -> None:
        Job.__init__(self, engine, error_callback, progress)
        self._callback = callback
        self._time_limit = time_limit
        self._success = True
        self._value = None
        self._error = None
        self._tasks = []
        self._pending = collections.deque(Task(self, i, kind, func, chunk, time_limit)
                                          for i, chunk in enumerate(chunks))
        # Each chunk's results go to their place in the final list as they arrive: joining the chunks at the
        # end would add a pass over every item after the last worker is done.
        self._offsets = list(itertools.accumulate((len(chunk) for chunk in chunks), initial=0))
        self._results: list[object] = [None] * self._offsets[-1]
        self._remaining = len(chunks)
        if not chunks:
            self._value = []
            self._event.set()
            _run_callback(callback, [])

    def next_tasks(self, limit: int) -> list[Task]:
        pending = self._pending
        if len(pending) <= limit:
            tasks = list(pending)
            pending.clear()
            return tasks
        return [pending.popleft() for _ in range(limit)]

    def exhausted(self) -> bool:
        return not self._pending

    def set_outcome(self, index: int, ok: bool, value: object) -> None:
        if self._event.is_set():
            return
        if not ok:
            if self._progress is not None:
                self._progress.update(0)
            # The first failure decides, as in the stdlib; the other chunks still run (their side effects
            # happen, and close() + join() wait for them, as with the stdlib: no fail-fast), their outcomes
            # are dropped.
            self._success, self._error = False, _as_error(value)
            self._results = []
            self._finish()
            _run_callback(self._error_callback, self._error)
            self._event.set()
            if self._wakers:  # an awaiting coroutine: one attribute read otherwise
                self._wake()
            return
        chunk = cast("list[R]", value)
        if self._progress is not None:
            self._progress.update(len(chunk))
        self._results[self._offsets[index] : self._offsets[index + 1]] = chunk
        self._remaining -= 1
        if self._remaining == 0:
            self._value, self._results = cast("list[R]", self._results), []
            self._finish()
            _run_callback(self._callback, self._value)
            self._event.set()
            if self._wakers:  # an awaiting coroutine: one attribute read otherwise
                self._wake()

    def _finish(self) -> None:
        if self._progress is not None:
            self._progress.close()

    def fail_all(self, exc: BaseException) -> None:
        self._pending.clear()
        self.set_outcome(-1, False, exc)

    def _cancel_pending(self) -> None:
        # Chunks already handed out run to their end; their outcomes are dropped once this one is recorded.
        if self.ready():
            return
        self._pending.clear()  # one call under the GIL: the engine takes a task either before it or not at all
        self.set_outcome(-1, False, _cancelled())


class IMapIterator(Job, Generic[R]):
    """The iterator of ``imap``: results in order, ``next(timeout)``; reads ahead at most ``max_ahead`` chunks."""

    _ordered = True

    def __init__(self, engine: Engine, func: Returning[R], iterable: Iterable[object], *, chunksize: int,
                 kind: int, max_ahead: int, time_limit: float | None = None, progress: ProgressBar | None = None,
                 adaptive: bool = False) -> None:
        super().__init__(engine, progress=progress)
        self._time_limit = time_limit
        self._func = func
        self._kind = kind
        self._source: Iterator[object] | None = iter(iterable)
        self._chunksize = chunksize
        self._max_ahead = max_ahead
        # Default window: it widens while the workers' queues are deep (short tasks), see _scheduling.window_bonus.
        self._adaptive = adaptive
        self._cond = threading.Condition(threading.Lock())
        self._taken = 0  # chunks pulled from the iterable
        self._handed = 0  # chunks whose items the consumer has taken
        self._done: dict[int, tuple[bool, object]] = {}  # finished chunks not yet handed out (by index)
        self._order: collections.deque[int] = collections.deque()  # arrival order, for imap_unordered
        self._next_index = 0
        self._items: collections.deque[R] = collections.deque()  # items of the chunk being handed out
        self._length: int | None = None  # number of chunks, once the iterable ended

    def _window(self) -> int:
        return self._max_ahead + (self._engine.window_bonus if self._adaptive else 0)

    def next_tasks(self, limit: int) -> list[Task]:
        with self._cond:
            if self._source is None:
                return []
            room = min(limit, self._window() - (self._taken - self._handed))
            source = self._source
        if room <= 0:
            return []
        # Only one thread at a time asks a job for tasks, so it is read outside the lock.
        chunks: list[list[object]] = []
        ended, failure = False, None
        size = self._chunksize
        try:
            if size == 1:
                chunks.extend([item] for item in itertools.islice(source, room))
                ended = len(chunks) < room
            else:
                for _ in range(room):
                    # As in the stdlib (and its tests), a chunk cut short by an error in the iterable is
                    # dropped: the error stands in its place.
                    chunk = list(itertools.islice(source, size))
                    if not chunk:
                        ended = True
                        break
                    chunks.append(chunk)
        except Exception as exc:
            failure = exc  # the caller's iterable raised: that is the outcome of the next position
        with self._cond:
            first = self._taken
            self._taken += len(chunks)
            failed_index = self._taken  # the next position: the failure's, if there is one
            if failure is not None:
                self._taken += 1
            if ended or failure is not None:
                self._stop_reading()
                self._cond.notify_all()
        if ended and self._wakers:  # the end of the iterable: an awaiting coroutine may stop
            self._wake()
        if failure is not None:
            self.set_outcome(failed_index, False, failure)
        kind, func = self._kind, self._func
        time_limit = self._time_limit
        return [Task(self, first + i, kind, func, chunk, time_limit) for i, chunk in enumerate(chunks)]

    def exhausted(self) -> bool:
        return self._source is None

    def set_outcome(self, index: int, ok: bool, value: object) -> None:
        self.set_outcomes([(index, ok, value)])

    def set_outcomes(self, outcomes: list[tuple[int, bool, object]]) -> None:
        if self._progress is not None:
            self._progress.update(sum(len(cast("list[R]", value)) if ok else 1 for _, ok, value in outcomes))
        with self._cond:
            done, order = self._done, self._order
            for index, ok, value in outcomes:
                done[index] = (ok, value)
                if not self._ordered:
                    order.append(index)
            self._cond.notify_all()
        if self._wakers:  # an awaiting coroutine: one attribute read otherwise
            self._wake()

    def fail_all(self, exc: BaseException) -> None:
        with self._cond:
            self._stop_reading()
            missing = [i for i in range(self._taken) if i not in self._done and i >= self._next_index]
        for index in missing:
            self.set_outcome(index, False, exc)

    def __iter__(self) -> IMapIterator[R]:
        return self

    def __aiter__(self) -> IMapIterator[R]:
        """``async for item in pool.imap(...)``: each result awaited; the event loop runs meanwhile."""
        return self

    def __anext__(self) -> Awaitable[R]:
        from ._aio import next_item

        return next_item(self)

    def _has_next(self) -> bool:
        """Would ``next(0)`` return or stop without waiting?"""
        if self._items:
            return True
        with self._cond:
            return self._all_handed() or self._ready_index() is not None

    def _cancel_pending(self) -> None:
        # The consumer is gone: read no more of its iterable (chunks already out finish, unread).
        with self._cond:
            if self._source is not None:
                self._stop_reading()
                self._cond.notify_all()

    def __next__(self) -> R:
        return self.next()

    def _next_chunk(self, timeout: float | None) -> tuple[tuple[bool, object], bool]:
        with self._cond:
            while True:
                if self._all_handed():
                    if self._progress is not None:
                        self._progress.close()
                    raise StopIteration
                outcome = self._take_chunk()
                if outcome is not None:
                    # The engine stops pulling chunks while max_ahead of them wait for the consumer: it needs
                    # waking only when this one reopens the window (a wake per item would cost a thread hop).
                    return outcome, self._source is not None and self._taken - self._handed + 1 >= self._window()
                if not wait_in_slices(self._cond.wait, timeout):
                    raise TimeoutError

    # The four below are called with the condition held.

    def _stop_reading(self) -> None:
        # No more of the iterable: its end is what has been taken from it so far.
        self._source = None
        self._length = self._taken

    def _all_handed(self) -> bool:
        return self._length is not None and self._handed >= self._length

    def _ready_index(self) -> int | None:
        # The index of the next finished chunk in hand-out order, or None.
        if self._ordered:
            return self._next_index if self._next_index in self._done else None
        order = self._order
        while order and order[0] not in self._done:
            order.popleft()  # an index filed twice is handed out once
        return order[0] if order else None

    def _take_chunk(self) -> tuple[bool, object] | None:
        index = self._ready_index()
        if index is None:
            return None
        if not self._ordered:
            self._order.popleft()
        self._next_index += 1
        self._handed += 1
        return self._done.pop(index)

    def next(self, timeout: float | None = None) -> R:
        """The next result; ``TimeoutError`` if none is ready within ``timeout``; ``StopIteration`` at the end."""
        if self._items:
            return self._items.popleft()
        try:
            outcome, reopened = self._next_chunk(timeout)
        except KeyboardInterrupt:
            # Stopping the pool fails the chunks still out, which takes this iterator's lock: not held here.
            self._engine.interrupted()
            raise
        if reopened:
            self._engine.consumer_progress(self)
        ok, value = outcome
        if not ok:
            raise _as_error(value)
        # A chunk's results: a list of R (no cast() call here: this runs once per chunk, and chunks may be
        # single items).
        chunk: list[R] = value  # type: ignore[assignment]
        self._items.extend(chunk)
        return self._items.popleft()


class IMapUnorderedIterator(IMapIterator[R]):
    """The iterator of ``imap_unordered``: results in the order they finish."""

    _ordered = False
