"""``Pool`` and ``ThreadPool``: the stdlib's API over procpar's engines (``procpar_pool.engine.Engine``).

The documented signatures are kept; what procpar adds is keyword-only: ``task_timeout`` (a per-task time
limit), ``progress`` (a progress bar for the map family; given to the pool, the default of its calls),
``max_ahead`` (how far imap reads its iterable ahead of the consumer) and the pool-wide ``prefetch``.

A pool whose tasks run elsewhere (procpar-dask's) subclasses ``Pool`` and overrides ``_make_engine``, the
one hook of the engine API (``procpar_pool.engine``): everything else about the pool stays the same.
"""

from __future__ import annotations

import os
import threading

from procpar_core.process import BaseProcess
from procpar_core.util import Finalize, is_exiting

from ._process_engine import ProcessEngine
from ._progress import make_progress
from ._results import ApplyResult, IMapIterator, IMapUnorderedIterator, MapResult
from ._task import MAP, STARMAP, PoolState
from ._thread_engine import ThreadEngine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import NoReturn, TypeVar

    from procpar_core.context import BaseContext

    from ._progress import Progress
    from ._stats import PoolStats
    from ._typing import Function, Returning
    from .engine import Engine

    T = TypeVar("T")
    R = TypeVar("R")
    _P = TypeVar("_P", bound="Pool")

__all__ = ["Pool", "ThreadPool"]

# How many chunks map() cuts per worker when no chunksize is given.
_CHUNKS_PER_WORKER = 8


def _check_time_limit(task_timeout: float | None) -> float | None:
    if task_timeout is None:
        return None
    if not isinstance(task_timeout, (int, float)) or task_timeout <= 0:
        raise ValueError(f"task_timeout must be a positive number of seconds or None, not {task_timeout!r}")
    return float(task_timeout)


class Pool:
    """A pool of worker processes (the ``multiprocessing.pool.Pool`` API).

    A worker that dies fails only the tasks it held (``WorkerLostError``) and is replaced; an argument,
    result or exception that cannot be pickled fails its own task (``PicklingFailedError``). Exiting the
    ``with`` block terminates the pool, as in the stdlib.
    """

    def __init__(self, processes: int | None = None, initializer: Function | None = None,
                 initargs: Iterable[object] = (), maxtasksperchild: int | None = None,
                 context: BaseContext | None = None, *,
                 task_timeout: float | None = None, prefetch: int | None = None,
                 max_memory_per_child: int | None = None, progress: Progress = False) -> None:
        if processes is None:
            processes = os.cpu_count() or 1
        if not isinstance(processes, int) or processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None and (not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if prefetch is not None and (not isinstance(prefetch, int) or prefetch < 1):
            raise ValueError(f"prefetch must be a positive int or None (adaptive), not {prefetch!r}")
        if max_memory_per_child is not None and (not isinstance(max_memory_per_child, int)
                                                 or isinstance(max_memory_per_child, bool)
                                                 or max_memory_per_child <= 0):
            raise ValueError(f"max_memory_per_child must be a positive number of bytes or None, not "
                             f"{max_memory_per_child!r}")
        if not isinstance(progress, bool) and progress != "workers" and not (
                hasattr(progress, "update") and hasattr(progress, "close")):
            raise TypeError("progress must be True, False, 'workers' or an object with update(n) and close() (a tqdm "
                            "bar)")
        self._processes = processes
        self._progress: Progress = progress  # the map family's default when a call does not say
        self._task_timeout = _check_time_limit(task_timeout)
        self._max_memory = max_memory_per_child
        self._engine = self._make_engine(processes, initializer=initializer, initargs=tuple(initargs),
                                         maxtasksperchild=maxtasksperchild, context=context, prefetch=prefetch)
        # Collected without close()/terminate(): warn and stop the workers, as the stdlib does. Still open at
        # exit: stopped before the exit sequence terminates daemonic children (priority above 0), so the engine
        # cannot start a replacement behind that sweep, which would then wait on it forever. A process made by
        # fork runs no atexit hook before 3.13, only this sequence.
        Finalize(self, _collected, args=(self._engine,), exitpriority=_EXIT_PRIORITY)

    def _make_engine(self, processes: int, *, initializer: Function | None,
                     initargs: tuple[object, ...], maxtasksperchild: int | None, context: BaseContext | None,
                     prefetch: int | None) -> Engine:
        """The engine that runs this pool's tasks (the subclass hook of ``procpar_pool.engine``); called once,
        from ``__init__``, after the arguments were checked."""
        if context is None:
            import procpar_core

            context = procpar_core.get_context()
        self._ctx = context
        return ProcessEngine(context, processes, initializer=initializer, initargs=initargs,
                             maxtasksperchild=maxtasksperchild, prefetch=prefetch, max_memory=self._max_memory)

    @property
    def _pool(self) -> list[BaseProcess]:
        """The live worker processes (the stdlib's attribute)."""
        return [worker for worker in self._engine.workers if isinstance(worker, BaseProcess)]

    @property
    def _state(self) -> PoolState:
        return self._engine.state

    @_state.setter
    def _state(self, value: PoolState) -> None:
        self._engine.state = value

    def _repopulate_pool(self) -> None:
        """Dead workers are replaced as soon as they exit; this only makes the engine look now."""
        self._engine.wake()

    def _check_running(self) -> None:
        if self._engine.state is not PoolState.RUN:
            raise ValueError("Pool not running")

    def _time_limit(self, task_timeout: float | None) -> float | None:
        return _check_time_limit(task_timeout) if task_timeout is not None else self._task_timeout

    # -- the documented API ----------------------------------------------------------------------------------

    def apply(self, func: Returning[R], args: Iterable[object] = (), kwds: dict[str, object] | None = None, *,
              task_timeout: float | None = None) -> R:
        """Call ``func(*args, **kwds)`` in a worker and return its result."""
        limit = self._time_limit(task_timeout)
        if limit is None:
            self._check_running()
            result: ApplyResult[R] = ApplyResult(self._engine, func, args, kwds)
            if not self._engine.call_direct(result):
                self._engine.submit(result)
            return result.get()
        return self.apply_async(func, args, kwds, task_timeout=task_timeout).get()

    def apply_async(self, func: Returning[R], args: Iterable[object] = (), kwds: dict[str, object] | None = None,
                    callback: Callable[[R], object] | None = None,
                    error_callback: Callable[[BaseException], object] | None = None, *,
                    task_timeout: float | None = None) -> ApplyResult[R]:
        """Start ``func(*args, **kwds)`` in a worker; returns an ``AsyncResult``."""
        self._check_running()
        result = ApplyResult(self._engine, func, args, kwds, callback, error_callback, self._time_limit(task_timeout))
        self._engine.submit(result)
        return result

    def map(self, func: Callable[[T], R], iterable: Iterable[T], chunksize: int | None = None, *,
            progress: Progress | None = None, task_timeout: float | None = None) -> list[R]:
        """``list(map(func, iterable))``, computed in chunks by the workers."""
        return self._map_async(func, iterable, MAP, chunksize=chunksize, progress=progress,
                               task_timeout=task_timeout).get()

    def map_async(self, func: Callable[[T], R], iterable: Iterable[T], chunksize: int | None = None,
                  callback: Callable[[list[R]], object] | None = None,
                  error_callback: Callable[[BaseException], object] | None = None, *,
                  progress: Progress | None = None, task_timeout: float | None = None) -> MapResult[R]:
        """``map`` returning an ``AsyncResult`` of the list."""
        return self._map_async(func, iterable, MAP, chunksize=chunksize, callback=callback,
                               error_callback=error_callback, progress=progress, task_timeout=task_timeout)

    def starmap(self, func: Returning[R], iterable: Iterable[Iterable[object]], chunksize: int | None = None,
                *, progress: Progress | None = None, task_timeout: float | None = None) -> list[R]:
        """``[func(*args) for args in iterable]``, computed in chunks by the workers."""
        return self._map_async(func, iterable, STARMAP, chunksize=chunksize, progress=progress,
                               task_timeout=task_timeout).get()

    def starmap_async(self, func: Returning[R], iterable: Iterable[Iterable[object]],
                      chunksize: int | None = None, callback: Callable[[list[R]], object] | None = None,
                      error_callback: Callable[[BaseException], object] | None = None, *,
                      progress: Progress | None = None, task_timeout: float | None = None) -> MapResult[R]:
        """``starmap`` returning an ``AsyncResult`` of the list."""
        return self._map_async(func, iterable, STARMAP, chunksize=chunksize, callback=callback,
                               error_callback=error_callback, progress=progress, task_timeout=task_timeout)

    def _map_async(self, func: Returning[R], iterable: Iterable[object], kind: int, *, chunksize: int | None,
                   callback: Callable[[list[R]], object] | None = None,
                   error_callback: Callable[[BaseException], object] | None = None,
                   progress: Progress | None, task_timeout: float | None) -> MapResult[R]:
        self._check_running()
        # Sequences are sliced, not copied: a chunk of a range is a range, which pickles in a few bytes.
        items: Sequence[object] = iterable if isinstance(iterable, (list, tuple, range)) else list(iterable)
        if chunksize is None:
            # Eight chunks per worker (the stdlib cuts four): a worker holds at most four at a time, so the
            # last ones go to whichever finishes first, and a worker slowed down (sharing its CPU with the
            # engine thread, say) leaves less for the end. Pool(2).map of 200k short calls: ~10% faster here.
            chunksize, extra = divmod(len(items), self._processes * _CHUNKS_PER_WORKER)
            if extra:
                chunksize += 1
        elif not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be a positive int, not {chunksize!r}")
        chunks: list[Sequence[object]] = ([items[i : i + chunksize] for i in range(0, len(items), chunksize)]
                                          if items else [])
        bar = make_progress(self._progress if progress is None else progress, len(items),
                            getattr(self._engine, "worker_line", None)) if items else None
        result = MapResult(self._engine, func, chunks, kind, callback=callback, error_callback=error_callback,
                           time_limit=self._time_limit(task_timeout), progress=bar)
        if chunks:
            self._engine.submit(result)
        return result

    def imap(self, func: Callable[[T], R], iterable: Iterable[T], chunksize: int = 1,
             buffersize: int | None = None, *, progress: Progress | None = None,
             task_timeout: float | None = None, max_ahead: int | None = None) -> IMapIterator[R]:
        """A lazy ``map``: results in order as they come; the iterable is read at most ``max_ahead`` chunks
        ahead of the consumer (default: 4 per worker, at least 16). ``buffersize`` is 3.15's name for it."""
        return self._imap(IMapIterator, func, iterable, chunksize, progress, task_timeout,
                          _ahead(buffersize, max_ahead))

    def imap_unordered(self, func: Callable[[T], R], iterable: Iterable[T], chunksize: int = 1,
                       buffersize: int | None = None, *, progress: Progress | None = None,
                       task_timeout: float | None = None, max_ahead: int | None = None) -> IMapIterator[R]:
        """Like ``imap``, results in the order they finish."""
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize, progress, task_timeout,
                          _ahead(buffersize, max_ahead))

    def _imap(self, cls: type[IMapIterator[R]], func: Returning[R], iterable: Iterable[object], chunksize: int,
              progress: Progress | None, task_timeout: float | None,
              max_ahead: int | None) -> IMapIterator[R]:
        self._check_running()
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize!r}")
        adaptive = max_ahead is None
        if max_ahead is None:
            max_ahead = max(16, 4 * self._processes)
        elif not isinstance(max_ahead, int) or max_ahead < 1:
            raise ValueError(f"max_ahead must be a positive int, not {max_ahead!r}")
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        bar = make_progress(self._progress if progress is None else progress, total,
                            getattr(self._engine, "worker_line", None))
        result = cls(self._engine, func, iterable, chunksize=chunksize, kind=MAP, max_ahead=max_ahead,
                     time_limit=self._time_limit(task_timeout), progress=bar, adaptive=adaptive)
        self._engine.submit(result)
        return result

    def stats(self) -> PoolStats:
        """What the pool did so far, per worker and in total: tasks done, seconds working, waiting and starting,
        workers replaced and why, bytes through shared memory (``print()`` it for a table). Kept on the way at a
        few attribute updates per batch of replies; built when called."""
        stats = getattr(self._engine, "stats", None)
        if stats is None:
            raise NotImplementedError(f"pool.stats(): the {type(self._engine).__name__} running this pool keeps no "
                                      f"per-worker figures (the process and thread pools do)")
        result: PoolStats = stats()
        return result

    def close(self) -> None:
        """No more tasks; the workers exit once the submitted ones are done."""
        self._engine.close()

    def terminate(self) -> None:
        """Stop the workers now; unfinished tasks fail with ``PoolClosedError``."""
        self._engine.terminate()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the workers to exit (after ``close()`` or ``terminate()``)."""
        self._engine.join(timeout)

    def __enter__(self: _P) -> _P:
        self._check_running()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.terminate()

    def __reduce__(self) -> NoReturn:
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} state={self._state} pool_size={self._processes}>"


def _ahead(buffersize: int | None, max_ahead: int | None) -> int | None:
    if buffersize is None:
        return max_ahead
    if max_ahead is not None and max_ahead != buffersize:
        raise ValueError("give buffersize or max_ahead (the same bound), not both")
    if not isinstance(buffersize, int) or isinstance(buffersize, bool):
        raise TypeError(f"buffersize must be an integer or None, not {type(buffersize).__name__}")
    if buffersize < 1:
        raise ValueError(f"buffersize must be None or > 0, not {buffersize}")
    return buffersize


_EXIT_PRIORITY = 15  # the stdlib's pools use the same: before queues' feeders (10) and managers (0)


def _collected(engine: Engine) -> None:
    if is_exiting():
        if engine.state is not PoolState.TERMINATE:
            engine.terminate()  # closed but not joined: at exit, as in the stdlib, the workers are stopped
    elif engine.state is PoolState.RUN:
        engine.warn_unclosed()
        engine.terminate()


class ThreadPool(Pool):
    """The same API on worker threads of this process (nothing is pickled; threads cannot be killed, so
    ``terminate()`` fails the tasks not started and lets running ones finish)."""

    def __init__(self, processes: int | None = None, initializer: Function | None = None,
                 initargs: Iterable[object] = ()) -> None:
        super().__init__(processes, initializer, initargs)

    def _make_engine(self, processes: int, *, initializer: Function | None,
                     initargs: tuple[object, ...], maxtasksperchild: int | None, context: BaseContext | None,
                     prefetch: int | None) -> Engine:
        return ThreadEngine(processes, initializer=initializer, initargs=initargs)

    @property
    def _pool(self) -> list[threading.Thread]:  # type: ignore[override]  # a thread pool's workers are threads
        """The worker threads (the stdlib's attribute)."""
        return [worker for worker in self._engine.workers if isinstance(worker, threading.Thread)]
