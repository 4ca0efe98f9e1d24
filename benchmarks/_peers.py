"""The implementations the benchmarks compare, behind one small interface per kind of workload.

* Process-level rows (start, Pipe, Queue, Lock, Value, Manager): procpar, the stdlib and ``multiprocess`` (the
  dill-based fork of the stdlib), all with the ``multiprocessing`` API.
* Pool rows: those three, and loky's executor, ``concurrent.futures.ProcessPoolExecutor`` and mpire's
  ``WorkerPool``, each used the way its documentation shows, behind ``PoolLike``.

A peer that is not installed is left out of the run (the bench session installs them all).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

# The rows' order of columns.
PROCESS_PEERS = ("procpar", "stdlib", "multiprocess")
POOL_PEERS = ("procpar", "stdlib", "multiprocess", "loky", "futures", "mpire")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def process_modules() -> dict[str, Any]:
    """name -> a module with the ``multiprocessing`` API."""
    import multiprocessing

    import procpar

    found: dict[str, Any] = {"procpar": procpar, "stdlib": multiprocessing}
    if _installed("multiprocess"):
        import multiprocess

        found["multiprocess"] = multiprocess
    return found


def module_named(name: str) -> Any:
    """The module of implementation ``name`` alone (a fresh process measuring one should load only it)."""
    return importlib.import_module({"stdlib": "multiprocessing"}.get(name, name))


def default_method() -> str:
    """The stdlib's default start method here: every pool and child of a row uses it. Handed to the harness's
    fresh interpreters in ``PROCPAR_BENCH_METHOD``, so that measuring procpar there imports only procpar."""
    import os

    method = os.environ.get("PROCPAR_BENCH_METHOD")
    if method:
        return method
    import multiprocessing

    return multiprocessing.get_start_method()


class PoolLike:
    """One pool of ``processes`` workers: ``map`` (a list), ``imap`` (chunks of 1, lazily), ``apply`` and ``close``."""

    def __init__(self, processes: int) -> None:
        self.processes = processes

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        raise NotImplementedError

    def map_one_each(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``map`` with one item per task (large items: arrays)."""
        raise NotImplementedError

    def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def stdlib_chunksize(count: int, processes: int) -> int:
    """``multiprocessing.Pool.map``'s default chunk size, given to the executors, whose default is 1."""
    chunks, extra = divmod(count, processes * 4)
    return chunks + 1 if extra else max(chunks, 1)


class _MpPool(PoolLike):
    def __init__(self, module: Any, processes: int) -> None:
        super().__init__(processes)
        self._pool = module.get_context(default_method()).Pool(processes)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._pool.map(fn, items))

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return iter(self._pool.imap(fn, items, chunksize=1))

    def map_one_each(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._pool.map(fn, items, chunksize=1))

    def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.apply(fn, args)

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


class _Executor(PoolLike):
    def __init__(self, executor: Any, processes: int) -> None:
        super().__init__(processes)
        self._executor = executor

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._executor.map(fn, items, chunksize=stdlib_chunksize(len(items), self.processes)))

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return iter(self._executor.map(fn, items))

    def map_one_each(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._executor.map(fn, items))

    def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._executor.submit(fn, *args).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class _Mpire(PoolLike):
    def __init__(self, processes: int) -> None:
        super().__init__(processes)
        import mpire

        self._pool = mpire.WorkerPool(n_jobs=processes, start_method=default_method(), keep_alive=True)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._pool.map(fn, items, iterable_len=len(items)))

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        return iter(self._pool.imap(fn, items, chunk_size=1))

    def map_one_each(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return list(self._pool.map(fn, items, chunk_size=1))

    def apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.apply(fn, args)

    def close(self) -> None:
        self._pool.stop_and_join()


def make_pool(name: str, processes: int = 2) -> PoolLike:
    """A started pool of implementation ``name`` (one of ``pool_peers()``)."""
    if name in ("procpar", "stdlib", "multiprocess"):
        return _MpPool(module_named(name), processes)
    if name == "loky":
        import loky

        return _Executor(loky.ProcessPoolExecutor(processes), processes)
    if name == "futures":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return _Executor(ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context(default_method())),
                         processes)
    if name == "mpire":
        return _Mpire(processes)
    raise ValueError(f"unknown pool implementation {name!r}")


def pool_peers() -> list[str]:
    """The pool implementations installed here, procpar and the stdlib first."""
    wanted = {"multiprocess": "multiprocess", "loky": "loky", "mpire": "mpire"}
    return [name for name in POOL_PEERS if name not in wanted or _installed(wanted[name])]
