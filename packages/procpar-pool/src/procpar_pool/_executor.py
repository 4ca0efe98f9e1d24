"""``concurrent.futures`` on procpar's pool: code written for ``ProcessPoolExecutor`` can switch to it."""

from __future__ import annotations

from concurrent import futures

from ._pool import Pool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable

__all__ = ["Executor"]


class Executor(futures.Executor):
    """``ProcessPoolExecutor``'s constructor and methods on procpar's pool.

    A dead worker fails its futures with ``WorkerLostError`` and is replaced; the executor keeps working
    (where ``ProcessPoolExecutor`` breaks for good).
    """

    def __init__(self, max_workers: int | None = None, mp_context: Any = None,
                 initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = (), *,
                 max_tasks_per_child: int | None = None, task_timeout: float | None = None) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._pool = Pool(max_workers, initializer, initargs, max_tasks_per_child, mp_context,
                          task_timeout=task_timeout)
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future[Any]:
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: futures.Future[Any] = futures.Future()
        future.set_running_or_notify_cancel()

        def done(value: Any) -> None:
            future.set_result(value)

        def failed(exc: BaseException) -> None:
            future.set_exception(exc)

        self._pool.apply_async(fn, args, kwargs, callback=done, error_callback=failed)
        return future

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Any:
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if chunksize == 1:
            return super().map(fn, *iterables, timeout=timeout)
        results = self._pool.starmap_async(fn, zip(*iterables, strict=False), chunksize)
        return iter(results.get(timeout))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        if cancel_futures:
            self._pool.terminate()
        else:
            self._pool.close()
        if wait:
            self._pool.join()
