"""What runs on the Dask side: the scheduler tweak, the worker plugin and the function every Dask task calls.

This module travels *by value* (``cloudpickle.register_pickle_by_value``): a cluster's workers and scheduler
need ``distributed`` and ``cloudpickle``, not procpar. So it imports nothing of procpar, and its results are
plain tuples the pool turns into its own errors.

A Dask task runs a *bundle*: several pool tasks (a call, or a chunk of a map, each) pickled together. What it
returns, pickled into one ``bytes`` (Dask would otherwise serialize a list of thousands of outcomes item by
item, ~50 ms for 4,096): ``(worker address, seconds spent running the tasks, [one pickled outcome per task])``,
each outcome
``(True, result)``, ``(False, (exception, traceback text))`` or ``(None, (what failed, message))`` when
something could not be pickled. Outcomes are pickled one by one so that one unpicklable result fails its own
task, not the bundle.
"""

from __future__ import annotations

import itertools
import pickle
import time
import traceback

from distributed.diagnostics.plugin import WorkerPlugin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from distributed import Worker
    from distributed.scheduler import Scheduler

__all__ = ["PoolPlugin", "run_bundle", "set_allowed_failures", "processing_on"]

# The pool's task kinds (procpar_pool.engine's APPLY, MAP, STARMAP), repeated here: this module cannot import
# procpar on a worker.
_APPLY, _MAP = 0, 1

BUNDLE_UNPICKLABLE = "bundle"
RESULT_UNPICKLABLE = "result"
EXCEPTION_UNPICKLABLE = "exception"


def set_allowed_failures(count: int, dask_scheduler: Scheduler) -> int:
    """Run on the scheduler: how many worker deaths a task may see before it fails (``KilledWorker``).
    Returns the previous value."""
    previous = int(dask_scheduler.allowed_failures)
    dask_scheduler.allowed_failures = count
    return previous


def processing_on(key: str, dask_scheduler: Scheduler) -> str | None:
    """Run on the scheduler: the address of the worker running task ``key``, None if it runs nowhere now."""
    state = dask_scheduler.tasks.get(key)
    if state is None or state.processing_on is None:
        return None
    return str(state.processing_on.address)


class PoolPlugin(WorkerPlugin):  # type: ignore[misc]  # distributed is untyped here
    """One per pool, on every worker, including workers that join or restart later: runs the pool's
    initializer once in the worker, and counts the pool's tasks there for ``maxtasksperchild``."""

    def __init__(self, initializer: bytes | None, maxtasks: int | None) -> None:
        self.initializer = initializer
        self.maxtasks = maxtasks
        self.done = 0
        self.restarting = False
        self.worker: Worker | None = None

    def setup(self, worker: Worker) -> None:
        self.worker = worker
        self.done = 0
        self.restarting = False
        if self.initializer is not None:
            import cloudpickle

            func, args = cloudpickle.loads(self.initializer)
            func(*args)

    def count(self, tasks: int) -> None:
        """``tasks`` more ran here; past ``maxtasks``, the worker leaves gracefully (its queued tasks go to
        others, its results are moved first) and its nanny starts a fresh one."""
        self.done += tasks
        worker = self.worker
        if self.maxtasks is None or self.done < self.maxtasks or self.restarting or worker is None:
            return
        self.restarting = True
        worker.loop.add_callback(worker.close_gracefully, restart=True, reason="procpar maxtasksperchild")


def _run(kind: int, func: Callable[..., object], payload: object) -> object:
    if kind == _APPLY:
        args, kwds = payload  # type: ignore[misc]
        return func(*args, **kwds)
    if kind == _MAP:
        return list(map(func, payload))  # type: ignore[call-overload]
    return list(itertools.starmap(func, payload))  # type: ignore[call-overload]


def _dump(ok: bool, value: object) -> bytes:
    try:
        return pickle.dumps((ok, value), pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass
    import cloudpickle  # lambdas, classes of __main__: what plain pickle refuses

    try:
        return cloudpickle.dumps((ok, value), pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
    except Exception as err:
        if ok:
            what, detail = RESULT_UNPICKLABLE, f"{type(value).__qualname__}: {value!r:.80}"
        else:
            exc = value[0]  # type: ignore[index]
            what, detail = EXCEPTION_UNPICKLABLE, f"{type(exc).__qualname__}: {exc}"
        return pickle.dumps((None, (what, f"{detail} ({type(err).__name__}: {err})")))


def _plugin(name: str | None) -> PoolPlugin | None:
    if name is None:
        return None
    from distributed import get_worker

    plugin = get_worker().plugins.get(name)
    return plugin if isinstance(plugin, PoolPlugin) else None


def _address() -> str:
    from distributed import get_worker

    try:
        return str(get_worker().address)
    except ValueError:  # not on a worker (a test calling this function directly)
        return ""


def run_bundle(plugin_name: str | None, blob: bytes) -> bytes:
    """The function of every Dask task a pool submits: run the bundle's tasks, return their outcomes."""
    import cloudpickle

    try:
        tasks = cloudpickle.loads(blob)
    except Exception as exc:
        message = (f"{type(exc).__name__}: {exc} (the function and its arguments must be importable on the "
                   "workers: install their modules there, or send them by value with "
                   "cloudpickle.register_pickle_by_value(module))")
        return pickle.dumps((_address(), 0.0, [pickle.dumps((None, (BUNDLE_UNPICKLABLE, message)))]))
    outcomes = []
    started = time.perf_counter()
    for kind, func, payload in tasks:
        try:
            result = _run(kind, func, payload)
        except Exception as exc:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            outcomes.append(_dump(False, (exc, tb)))
        else:
            outcomes.append(_dump(True, result))
        result = None
    elapsed = time.perf_counter() - started
    plugin = _plugin(plugin_name)
    if plugin is not None:
        plugin.count(len(tasks))
    return pickle.dumps((_address(), elapsed, outcomes), pickle.HIGHEST_PROTOCOL)
