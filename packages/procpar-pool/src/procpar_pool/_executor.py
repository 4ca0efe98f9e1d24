"""``concurrent.futures`` on procpar's pool: code written for ``ProcessPoolExecutor`` can switch to it.

Futures keep ``concurrent.futures``' states: a submitted call stays PENDING (and can be cancelled) in the
executor's own queue until the pool has room for it; at most ``2 * max_workers`` calls are handed to the pool
at a time, and those are RUNNING. ``ProcessPoolExecutor`` does the same with ``max_workers + 1``; the extra
depth keeps every worker fed while replies travel back.
"""

from __future__ import annotations

import collections
import itertools
import threading
from concurrent import futures

from procpar_core.process import BaseProcess

from ._pool import Pool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator
    from typing import ParamSpec, TypeVar, cast

    from procpar_core.context import BaseContext

    from ._typing import Function, Returning

    P = ParamSpec("P")
    T = TypeVar("T")
else:
    from procpar_core.runtime_typing import cast

__all__ = ["Executor", "Future"]


class Future(futures.Future["T"]):
    """A ``concurrent.futures.Future`` that can also be awaited: ``await executor.submit(f, x)``.

    Awaiting goes through ``asyncio.wrap_future`` (the event loop is not blocked); cancelling the awaiting task
    cancels the call if it has not started.
    """

    def __await__(self) -> Generator[object, None, T]:
        import asyncio

        return asyncio.wrap_future(self).__await__()

# A submitted call: its future (whatever its result type: the executor never looks at results), the function
# and its arguments.
_WorkItem = tuple["futures.Future[object]", "Function", "tuple[object, ...]", "dict[str, object]"]


class Executor(futures.Executor):
    """``ProcessPoolExecutor``'s constructor and methods on procpar's pool.

    A dead worker fails the future it was running with ``WorkerLostError`` (naming the worker's pid and exit
    status) and is replaced; the executor keeps working, where ``ProcessPoolExecutor`` breaks for good.
    """

    def __init__(self, max_workers: int | None = None, mp_context: BaseContext | None = None,
                 initializer: Function | None = None, initargs: tuple[object, ...] = (), *,
                 max_tasks_per_child: int | None = None, task_timeout: float | None = None,
                 pool: Pool | None = None) -> None:
        """``pool``: run the calls on that pool (any engine's: a ``ThreadPool``, a Dask pool) instead of making
        one from the other arguments, which must then be left out; the executor owns it and shuts it down."""
        if pool is not None:
            if (max_workers, mp_context, initializer, initargs, max_tasks_per_child, task_timeout) != (
                    None, None, None, (), None, None):
                raise TypeError("Executor(pool=...) takes the pool as it is: configure the pool itself, not the "
                                "executor")
            if not isinstance(pool, Pool):
                raise TypeError(f"pool must be a procpar pool, not {type(pool).__name__}")
            pool._check_running()
            self._pool = pool
        else:
            if max_workers is not None and max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
            self._pool = Pool(max_workers, initializer, initargs, max_tasks_per_child, mp_context,
                              task_timeout=task_timeout)
        self._depth = 2 * self._pool._processes
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # an item left the queue or a running call ended
        self._pending: collections.deque[_WorkItem] = collections.deque()
        self._running = 0  # calls handed to the pool and not finished
        self._shutdown = False
        self._pool_closed = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; its ``Future`` stays PENDING (cancellable) until a worker has room."""
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._pending.append((cast("futures.Future[object]", future), fn, args, kwargs))
            batch = self._take_locked()
        self._hand_over(batch)
        return future

    def _take_locked(self) -> list[_WorkItem]:
        """The queued calls the pool has room for, now RUNNING (cancelled ones are dropped)."""
        batch: list[_WorkItem] = []
        while self._pending and self._running < self._depth:
            item = self._pending.popleft()
            if item[0].set_running_or_notify_cancel():
                self._running += 1
                batch.append(item)
        if not self._pending:
            self._changed.notify_all()
        return batch

    def _hand_over(self, batch: list[_WorkItem]) -> None:
        # Outside the lock: the pool may run a callback (which takes it) before apply_async returns.
        for future, fn, args, kwargs in batch:
            try:
                self._pool.apply_async(fn, args, kwargs, callback=self._succeeded(future),
                                       error_callback=self._failed(future))
            except BaseException as exc:  # the pool was terminated under us (terminate_workers)
                self._finish(future, exc, False)
        self._maybe_close_pool()

    def _succeeded(self, future: futures.Future[object]) -> Callable[[object], None]:
        return lambda value: self._finish(future, value, True)

    def _failed(self, future: futures.Future[object]) -> Callable[[BaseException], None]:
        return lambda exc: self._finish(future, exc, False)

    def _finish(self, future: futures.Future[object], value: object, ok: bool) -> None:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                assert isinstance(value, BaseException)
                future.set_exception(value)
        with self._lock:
            self._running -= 1
            batch = self._take_locked()
            self._changed.notify_all()
        self._hand_over(batch)

    def _maybe_close_pool(self) -> None:
        """After shutdown, once nothing is left to hand over: the pool takes no more and its workers may go."""
        with self._lock:
            if not self._shutdown or self._pending or self._pool_closed:
                return
            self._pool_closed = True
        self._pool.close()

    def map(self, fn: Returning[T], *iterables: Iterable[object], timeout: float | None = None,
            chunksize: int = 1, buffersize: int | None = None) -> Iterator[T]:
        """``Executor.map``; ``buffersize`` (3.14's) bounds how many calls are submitted ahead of the
        results consumed, and the iterables are then read lazily."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if buffersize is not None:
            if not isinstance(buffersize, int):
                raise TypeError("buffersize must be an integer or None")
            if buffersize < 1:
                raise ValueError("buffersize must be None or > 0")
        if chunksize == 1 and buffersize is None:
            return super().map(fn, *iterables, timeout=timeout)
        return self._chunked_map(fn, zip(*iterables, strict=False), timeout, chunksize, buffersize)

    def _chunked_map(self, fn: Returning[T], args: Iterator[tuple[object, ...]], timeout: float | None,
                     chunksize: int, buffersize: int | None) -> Iterator[T]:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        chunks = iter(lambda: list(itertools.islice(args, chunksize)), [])
        window: collections.deque[futures.Future[list[T]]] = collections.deque()
        if buffersize is None:
            window.extend(self.submit(_run_chunk, fn, chunk) for chunk in chunks)
        else:
            window.extend(self.submit(_run_chunk, fn, chunk) for chunk in itertools.islice(chunks, buffersize))

        def results() -> Iterator[T]:
            try:
                while window:
                    if buffersize is not None:
                        # Read one more chunk for the one about to be consumed: the window stays bounded.
                        for chunk in itertools.islice(chunks, 1):
                            window.append(self.submit(_run_chunk, fn, chunk))
                    future = window.popleft()
                    left = None if deadline is None else deadline - time.monotonic()
                    yield from future.result(left)
            finally:
                for future in window:
                    future.cancel()

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls; ``cancel_futures`` cancels those still PENDING (running ones finish); ``wait``
        returns once every call that was not cancelled has finished and the workers have exited."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._pending:
                    self._pending.popleft()[0].cancel()
                self._changed.notify_all()
        self._maybe_close_pool()
        if wait:
            with self._lock:
                while self._pending or self._running:
                    self._changed.wait(0.5)
            self._maybe_close_pool()
            self._pool.join()

    def terminate_workers(self) -> None:
        """Stop every worker at once with SIGTERM (3.14's ``ProcessPoolExecutor.terminate_workers``): pending
        calls are cancelled, running ones fail; the executor is shut down."""
        self._stop_workers(kill=False)

    def kill_workers(self) -> None:
        """Like ``terminate_workers`` with SIGKILL."""
        self._stop_workers(kill=True)

    def _stop_workers(self, kill: bool) -> None:
        self.shutdown(wait=False, cancel_futures=True)
        if kill:
            for process in self._pool._pool:
                if isinstance(process, BaseProcess) and process.exitcode is None:
                    process.kill()
        self._pool.terminate()
        self._pool.join()


def _run_chunk(fn: Returning[T], chunk: list[tuple[object, ...]]) -> list[T]:
    return [fn(*args) for args in chunk]
