"""What runs on the Dask side: the scheduler tweak, the worker plugin and the function every Dask task calls.

This module travels *by value* (``cloudpickle.register_pickle_by_value``): a cluster's workers and scheduler
need ``distributed`` and ``cloudpickle``, not procpar. So it imports nothing of procpar, and its results are
plain tuples the pool turns into its own errors.

A Dask task runs a *bundle*: several pool tasks (a call, or a chunk of a map, each) pickled together. What it
returns, pickled into one ``bytes`` (Dask would otherwise serialize a list of thousands of outcomes item by
item, ~50 ms for 4,096): ``(worker address, seconds spent running the tasks, [one pickled outcome per task run],
problem, spent)``. Each outcome is ``(True, result)``, ``(False, (exception, traceback text))`` or ``(None, (what
failed, message))`` when something could not be pickled; outcomes are pickled one by one so that one
unpicklable result fails its own task, not the bundle. Fewer outcomes than tasks: the worker declined the rest
(it reached ``maxtasksperchild`` and is leaving), to be sent elsewhere. ``problem`` is None, or why the bundle
could not be read at all; ``spent``: the worker has reached ``maxtasksperchild``.
"""

from __future__ import annotations

import itertools
import pickle
import time
import traceback
from typing import Any, cast

from distributed.diagnostics.plugin import WorkerPlugin

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from distributed import Worker
    from distributed.scheduler import Scheduler

__all__ = ["PoolPlugin", "restart_topic", "run_bundle", "set_allowed_failures", "processing_on", "processing_on_many"]

# The pool's task kinds (procpar_pool.engine's APPLY, MAP, STARMAP), repeated here: this module cannot import
# procpar on a worker.
_APPLY, _MAP = 0, 1

RESULT_UNPICKLABLE = "result"
EXCEPTION_UNPICKLABLE = "exception"


def set_allowed_failures(count: int, dask_scheduler: Scheduler) -> int | None:
    """Run on the scheduler: how many worker deaths a task may see before it fails (``KilledWorker``).
    Returns the previous value."""
    previous = dask_scheduler.allowed_failures
    dask_scheduler.allowed_failures = count
    return previous


def processing_on(key: str, dask_scheduler: Scheduler) -> str | None:
    """Run on the scheduler: the address of the worker running task ``key``, None if it runs nowhere now."""
    state = dask_scheduler.tasks.get(key)
    if state is None or state.processing_on is None:
        return None
    return str(state.processing_on.address)


def processing_on_many(keys: list[str], dask_scheduler: Scheduler) -> dict[str, str]:
    """Run on the scheduler: key -> the worker running it (or holding it for a free thread), for those that
    are on a worker now."""
    found = {}
    for key in keys:
        state = dask_scheduler.tasks.get(key)
        if state is not None and state.processing_on is not None:
            found[key] = str(state.processing_on.address)
    return found


class PoolPlugin(WorkerPlugin):
    """One per pool, on every worker, including workers that join or restart later: runs the pool's
    initializer once in the worker, and counts the pool's tasks there for ``maxtasksperchild``.

    A worker at the limit declines the pool's further tasks (they go elsewhere), says so in its replies, and
    asks the pool to restart it (an event on the topic ``restart_topic(prefix)``; the pool's client has the
    scheduler's nanny restart it) once it holds none of the pool's Dask tasks: their keys released here mean the
    pool has its replies. Leaving sooner would lose replies the pool has not fetched yet, and the scheduler would
    run their tasks a second time. The worker does not ask the scheduler itself: a request whose sender dies
    mid-way leaves the nanny without a worker."""

    procpar_pool_plugin = True

    def __init__(self, initializer: bytes | None, maxtasks: int | None, prefix: str) -> None:
        self.initializer = initializer
        self.maxtasks = maxtasks
        self.prefix = prefix  # of the pool's Dask keys
        self.done = 0
        self.held: set[str] = set()  # the pool's Dask tasks on this worker: to run, running, or their replies
        self.leaving = False
        self.worker: Worker | None = None

    def setup(self, worker: Worker) -> None:
        self.worker = worker
        self.done = 0
        self.held = set()
        self.leaving = False
        if self.initializer is not None:
            import cloudpickle

            func, args = cloudpickle.loads(self.initializer)
            func(*args)

    def room(self) -> int | None:
        """How many of the pool's tasks this worker may still run; None: no limit."""
        if self.maxtasks is None:
            return None
        return max(0, self.maxtasks - self.done)

    def ran(self, tasks: int) -> bool:
        """``tasks`` more of the pool's tasks ran here; True: the worker has reached ``maxtasks``."""
        self.done += tasks
        return self.maxtasks is not None and self.done >= self.maxtasks

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if self.maxtasks is None or not isinstance(key, str) or not key.startswith(self.prefix):
            return
        if finish not in ("released", "forgotten"):
            self.held.add(key)
            return
        self.held.discard(key)
        worker = self.worker
        if self.held or self.leaving or worker is None or self.done < self.maxtasks:
            return
        self.leaving = True
        worker.log_event(restart_topic(self.prefix), {"worker": str(worker.address)})


def restart_topic(prefix: str) -> str:
    """The event topic on which a pool's workers at ``maxtasksperchild`` ask to be restarted."""
    return f"{prefix}restart"


def _run(kind: int, func: Callable[..., object], payload: Any) -> object:
    if kind == _APPLY:
        args, kwds = payload
        return func(*args, **kwds)
    if kind == _MAP:
        return list(map(func, payload))
    return list(itertools.starmap(func, payload))


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
    # Not isinstance: the plugin and this function travelled by value separately, each rebuilding its own copy
    # of the PoolPlugin class on the worker.
    return cast("PoolPlugin", plugin) if getattr(plugin, "procpar_pool_plugin", False) else None


def _address() -> str:
    from distributed import get_worker

    try:
        return str(get_worker().address)
    except ValueError:  # not on a worker (a test calling this function directly)
        return ""


def run_bundle(plugin_name: str | None, blob: bytes) -> bytes:
    """The function of every Dask task a pool submits: run the bundle's tasks, return their outcomes."""
    import cloudpickle

    address = _address()
    try:
        tasks = cloudpickle.loads(blob)
    except Exception as exc:
        message = (f"{type(exc).__name__}: {exc} (the function and its arguments must be importable on the "
                   "workers: install their modules there, or send them by value with "
                   "cloudpickle.register_pickle_by_value(module))")
        return pickle.dumps((address, 0.0, [], message, False))
    plugin = _plugin(plugin_name)
    room = None if plugin is None else plugin.room()
    if room is not None:
        tasks = tasks[:room]
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
    spent = plugin is not None and plugin.ran(len(tasks))
    return pickle.dumps((address, elapsed, outcomes, None, spent), pickle.HIGHEST_PROTOCOL)
