"""The Dask engine: procpar-pool's jobs run as Dask tasks on a cluster (``procpar_pool.engine.Engine``).

    caller threads            engine thread ("procpar-dask-engine")           Dask
    --------------            ----------------------------------------        ----
    Pool.map/imap/apply  ->   backlog of jobs (the lock)
                              _fill: bundles of tasks (_bundles), pickled  -> client.submit(run_bundle, blob)
                              _events <- done callbacks (Dask's thread)    <- a worker ran the bundle
    AsyncResult.get()   <-    _collect: gather, outcomes to their jobs
                              deadlines: task_timeout -> restart worker    -> client.restart_workers

One thread owns the Dask futures: submission, collection, retries and time limits all happen in it, so none of
them takes a lock but the backlog's. Dask's callback thread only puts finished bundles on ``_events``; a
caller only appends to the backlog and wakes the thread the same way (None on ``_events``).

Local semantics kept on Dask: every call runs (no key is reused, ``pure=False``); a worker's death fails the
bundle it held with ``WorkerLostError`` unless ``retries`` re-runs it (the scheduler is told never to re-run a
task by itself); callbacks run here, in the caller's process.
"""

from __future__ import annotations

import collections
import itertools
import queue
import sys
import threading
import time
import warnings
import weakref
from typing import cast

import cloudpickle

from procpar_pool import PoolClosedError, TaskTimeoutError, WorkerLostError
from procpar_pool.engine import APPLY, PoolState

from . import _remote
from ._bundles import bundle_size, updated_estimate
from ._encoding import decode_outcome, decode_reply, encode_bundle, encode_initializer, unreadable_bundle
from ._stats import ClusterFigures

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    import distributed

    from procpar_pool.engine import PoolStats, Task, TaskSource

    from ._cluster import Connection

__all__ = ["DaskEngine"]

# The workers and scheduler may not have procpar installed: what runs there travels by value.
cloudpickle.register_pickle_by_value(_remote)

_RUN, _CLOSE, _TERMINATE = PoolState.RUN, PoolState.CLOSE, PoolState.TERMINATE
# Dask tasks in flight per worker thread: one running, one ready to start when it ends (a round trip to the
# scheduler and back takes milliseconds, which a second task in hand hides).
_DEPTH = 2
# How often the engine asks the scheduler which workers there are (workers join, leave, scale).
_REFRESH_SECONDS = 2.0
_names = itertools.count(1)
# How many times a bundle is sent again after losing its worker to a restart the pool caused (a bound, so that
# a task that kills its workers on a cluster that reuses addresses cannot go round for ever).
_EXCUSALS = 3
# A worker that reached maxtasksperchild restarts within moments; past this its address is ordinary again.
_LEAVING_SECONDS = 120.0
# How often the engine looks at a bundle the scheduler runs again.
_RECOMPUTE_POLL = 0.05


class _Bundle:
    """Pool tasks sent together as one Dask task."""

    __slots__ = ("attempts", "blob", "deadline", "excusals", "excused", "future", "key", "tasks")

    def __init__(self, tasks: list[Task], blob: bytes) -> None:
        self.tasks = tasks
        self.blob = blob
        self.attempts = 0
        self.excused = False  # on a worker the engine restarts: its loss is not the tasks' doing
        self.excusals = 0
        self.future: distributed.Future[bytes] | None = None
        self.key = ""  # of its Dask task now
        self.deadline: float | None = None


class _JobPace:
    """What the engine has measured of one job: seconds per task, bundles sent."""

    __slots__ = ("estimate", "sent")

    def __init__(self) -> None:
        self.estimate: float | None = None
        self.sent = 0


class DaskEngine:
    """Runs a pool's jobs on a Dask cluster."""

    def __init__(self, connection: Connection, processes: int | None, *, initializer: Callable[..., object] | None,
                 initargs: tuple[object, ...], maxtasksperchild: int | None, retries: int) -> None:
        self.window_bonus = 0
        self._connection = connection
        self._client = connection.client
        self._limit = processes  # tasks at a time asked by the caller; None: the cluster's threads
        self._retries = retries
        self._maxtasks = maxtasksperchild
        self._name = f"procpar-{id(self):x}-{next(_names)}"
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._state = _RUN
        self._backlog: collections.deque[TaskSource] = collections.deque()
        self._ready: collections.deque[Task] = collections.deque()  # taken from jobs, not sent yet
        # finished bundles, None (a wake-up), or the address of a worker at maxtasksperchild to restart
        self._events: queue.SimpleQueue[_Bundle | str | None] = queue.SimpleQueue()
        self._inflight: dict[str, _Bundle] = {}  # Dask key -> bundle
        self._paces: weakref.WeakKeyDictionary[TaskSource, _JobPace] = weakref.WeakKeyDictionary()
        self._apply_pace = _JobPace()
        self._restarting: set[str] = set()  # workers the engine is restarting now
        self._leaving: dict[str, float] = {}  # worker at maxtasksperchild -> since when
        # Bundles whose reply was lost with its worker before the engine fetched it: the scheduler runs them
        # again, and their futures fire no second callback, so the engine looks at them itself.
        self._recomputing: dict[str, _Bundle] = {}
        self._broken: BaseException | None = None
        self._threads: dict[str, int] = {}
        self._figures = ClusterFigures()
        self._refreshed = 0.0
        self._plugin: str | None = None
        self._topic: str | None = None
        self._refresh()
        if initializer is not None or maxtasksperchild is not None:
            self._register_plugin(initializer, initargs, maxtasksperchild)
        self._thread = threading.Thread(target=self._loop, name="procpar-dask-engine", daemon=True)
        self._thread.start()

    # -- the Engine protocol ---------------------------------------------------------------------------------

    @property
    def workers(self) -> list[str]:
        """The Dask workers' addresses (as of the last look, at most a few seconds old)."""
        return list(self._threads)

    @property
    def state(self) -> PoolState:
        return self._state

    @state.setter
    def state(self, value: PoolState) -> None:
        with self._lock:
            self._state = PoolState(value)
        self.wake()

    @property
    def dashboard(self) -> str | None:
        return self._connection.dashboard()

    def submit(self, job: TaskSource) -> None:
        with self._lock:
            if self._state is not _RUN:
                raise ValueError("Pool not running")
            broken = self._broken
            if broken is None:
                self._backlog.append(job)
        if broken is not None:
            job.fail_all(broken)
            return
        self._events.put(None)

    def call_direct(self, job: TaskSource) -> bool:
        return False  # every task goes through the scheduler

    def close(self) -> None:
        with self._lock:
            if self._state is _RUN:
                self._state = _CLOSE
        self._events.put(None)

    def terminate(self) -> None:
        with self._lock:
            if self._state is _TERMINATE and not self._thread.is_alive():
                return
            self._state = _TERMINATE
        self._events.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def join(self, timeout: float | None = None) -> None:
        if self._state is _RUN:
            raise ValueError("Pool is still running")
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._events.put(None)

    def interrupted(self) -> None:
        self.terminate()

    def consumer_progress(self, job: TaskSource) -> None:
        self._events.put(None)

    def stats(self) -> PoolStats:
        """``pool.stats()``: per Dask worker (by address), tasks done and seconds working and waiting, as of the
        engine's last look at the scheduler; restarts the pool caused or saw, by cause."""
        return self._figures.stats()

    def worker_line(self) -> str:
        """``progress="workers"``: tasks done per Dask worker."""
        return self._figures.worker_line()

    def warn_unclosed(self) -> None:
        if self._state is _RUN:
            warnings.warn(f"unclosed running procpar-dask pool {self!r}", ResourceWarning, stacklevel=3)

    # -- set-up ----------------------------------------------------------------------------------------------

    def _register_plugin(self, initializer: Callable[..., object] | None, initargs: tuple[object, ...],
                         maxtasks: int | None) -> None:
        blob = None if initializer is None else encode_initializer(initializer, initargs)
        name = f"{self._name}-plugin"
        prefix = f"{self._name}-"
        if maxtasks is not None:
            events = self._events
            self._topic = _remote.restart_topic(prefix)
            self._client.subscribe_topic(self._topic, lambda event: events.put(str(event[1]["worker"])))
        try:
            plugin = _remote.PoolPlugin(blob, maxtasks, prefix=prefix)
            replies = self._client.register_plugin(plugin, name=name)
        except Exception as exc:
            self._initializer_failed(exc)
            return
        self._plugin = name
        for address, reply in (replies or {}).items():
            if isinstance(reply, dict) and reply.get("status") == "error":
                self._initializer_failed(RuntimeError(f"on worker {address}: {reply.get('exception_text', reply)}"))
                return

    def _initializer_failed(self, exc: BaseException) -> None:
        broken = RuntimeError(f"the pool's initializer raised on a Dask worker, so the pool cannot run tasks: "
                              f"{exc!r}")
        broken.__cause__ = exc
        self._broken = broken

    def _refresh(self) -> None:
        try:
            self._threads = self._connection.threads()
        except Exception:
            return  # the scheduler is away: keep the last view; the futures will say what happened
        self._refreshed = time.monotonic()
        self._figures.seen(self._threads)

    def _capacity(self) -> int:
        threads = sum(self._threads.values())
        if self._limit is not None:
            threads = min(threads, self._limit) if threads else self._limit
        return _DEPTH * max(threads, 1)

    # -- the engine thread -----------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                try:
                    item = self._events.get(timeout=self._wait_time())
                except queue.Empty:
                    item = None
                items = [item]
                while True:
                    try:
                        items.append(self._events.get_nowait())
                    except queue.Empty:
                        break
                done = [i for i in items if isinstance(i, _Bundle)]
                for worker in {i for i in items if isinstance(i, str)}:
                    if worker not in self._restarting:
                        # it reached maxtasksperchild and the pool has its replies
                        self._restart(worker, cause="maxtasksperchild")
                if self._state is _TERMINATE:
                    break
                if self._recomputing:
                    done.extend(self._recomputed())
                if done:
                    self._collect(done)
                self._check_deadlines()
                if time.monotonic() - self._refreshed > _REFRESH_SECONDS and (self._backlog or self._inflight):
                    self._refresh()
                self._fill()
                if self._state is _CLOSE and not self._backlog and not self._ready and not self._inflight:
                    break
        except BaseException as exc:  # a bug here must not leave callers waiting for ever
            self._broken = RuntimeError(f"procpar-dask's engine stopped: {exc!r}")
            self._broken.__cause__ = exc
            raise
        finally:
            self._stop()
            self._figures.ended()

    def _wait_time(self) -> float | None:
        deadlines = [b.deadline for b in self._inflight.values() if b.deadline is not None]
        wait = None if not deadlines else max(0.0, min(deadlines) - time.monotonic())
        if self._backlog or self._inflight:
            wait = _REFRESH_SECONDS if wait is None else min(wait, _REFRESH_SECONDS)
        if self._recomputing:
            wait = _RECOMPUTE_POLL if wait is None else min(wait, _RECOMPUTE_POLL)
        return wait

    def _recomputed(self) -> list[_Bundle]:
        """The recomputed bundles that have finished (or failed) since the last look."""
        ready = []
        for key, bundle in list(self._recomputing.items()):
            future = bundle.future
            if future is None or self._inflight.get(key) is not bundle:
                del self._recomputing[key]
            elif future.status not in ("lost", "pending"):
                del self._recomputing[key]
                ready.append(bundle)
        return ready

    def _fill(self) -> None:
        capacity = self._capacity()
        timed = sum(1 for b in self._inflight.values() if b.deadline is not None)
        threads = max(1, capacity // _DEPTH)
        while len(self._inflight) < capacity:
            tasks = self._take(capacity)
            if not tasks:
                return
            if tasks[0].time_limit is not None and timed >= threads:
                # A time limit counts from when the task is handed to a free thread: hold it until one is.
                self._ready.extendleft(reversed(tasks))
                return
            self._send(tasks)
            if tasks[0].time_limit is not None:
                timed += 1

    def _take(self, capacity: int) -> list[Task]:
        """The tasks of the next bundle: tasks of one job or of several (a flood of ``apply_async``), sized by
        the first one's job; a task with a time limit goes alone, as its clock is the bundle's."""
        ready = self._ready
        if not ready:
            self._pull(1)
            if not ready:
                return []
        first = ready.popleft()
        if first.time_limit is not None:
            return [first]
        pace = self._pace(first)
        size = bundle_size(pace.estimate, pace.sent)
        if self._maxtasks is not None:
            size = min(size, self._maxtasks)  # a worker runs at most that many before it is replaced
        pace.sent += 1
        # Let an adaptive imap read ahead what full bundles on every slot need.
        self.window_bonus = max(self.window_bonus, min(size * capacity, 4 * 4096))
        tasks = [first]
        while len(tasks) < size:
            if not ready:
                self._pull(size - len(tasks))
                if not ready:
                    break
            if ready[0].time_limit is not None:
                break
            tasks.append(ready.popleft())
        return tasks

    def _pull(self, count: int) -> None:
        """Move up to ``count`` tasks from the jobs of the backlog (oldest first) to ``_ready``."""
        with self._lock:
            jobs = list(self._backlog)
        for job in jobs:
            if count <= 0:
                return
            tasks = job.next_tasks(count)
            self._ready.extend(tasks)
            count -= len(tasks)
            if job.exhausted():
                with self._lock:
                    try:
                        self._backlog.remove(job)
                    except ValueError:
                        pass

    def _pace(self, task: Task) -> _JobPace:
        """A map's pace is its own; every ``apply`` shares one, as each call is a job of a single task and a
        flood of them must reach full bundles too."""
        if task.kind == APPLY:
            return self._apply_pace
        job = task.job
        pace = self._paces.get(job)
        if pace is None:
            pace = self._paces[job] = _JobPace()
        return pace

    def _send(self, tasks: list[Task], avoid: str | None = None) -> None:
        blob, tasks, unpicklable = encode_bundle(tasks)
        for task, error in unpicklable:
            task.job.set_outcome(task.index, False, error)
        if blob is None:
            return
        bundle = _Bundle(tasks, blob)
        self._submit(bundle, avoid)

    def _submit(self, bundle: _Bundle, avoid: str | None = None) -> None:
        """Hand the bundle to the scheduler; ``avoid``: a worker that declined it (it is leaving), which the
        scheduler is asked to pass over while another can take it."""
        key = f"{self._name}-{next(self._seq)}"
        events = self._events
        leaving = [w for w in list(self._leaving) if self._is_leaving(w)]  # _is_leaving drops stale ones
        if avoid is not None:
            leaving.append(avoid)
        others = [w for w in self._threads if w not in leaving] if leaving else []
        try:
            future = self._client.submit(_remote.run_bundle, self._plugin, bundle.blob, key=key, pure=False,
                                         workers=others or None, allow_other_workers=bool(others))
        except Exception as exc:
            self._fail(bundle, WorkerLostError(f"the task could not be sent to the Dask scheduler: {exc!r}"))
            return
        bundle.future = future
        bundle.key = key
        limit = bundle.tasks[0].time_limit
        bundle.deadline = None if limit is None else time.monotonic() + limit
        self._inflight[key] = bundle
        future.add_done_callback(lambda _future: events.put(bundle))

    def _collect(self, done: list[_Bundle]) -> None:
        finished: list[_Bundle] = []
        for bundle in done:
            future = bundle.future
            if future is None or self._inflight.get(bundle.key) is not bundle:
                continue  # timed out, or resubmitted under a new key
            if future.status == "finished":
                finished.append(bundle)
            elif future.status in ("lost", "pending"):
                # Finished, then its worker died before the engine fetched the reply: Dask runs it again. (In a
                # maxtasksperchild restart that is a declined bundle, which ran nothing the first time.)
                self._recomputing[bundle.key] = bundle
            else:
                del self._inflight[bundle.key]
                self._lost(bundle)
        if not finished:
            return
        futures = [b.future for b in finished]
        try:
            replies = cast("list[bytes]", self._client.gather(futures, errors="raise"))  # (sync client)
        except Exception:
            replies = None
        for position, bundle in enumerate(finished):
            assert bundle.future is not None
            del self._inflight[bundle.key]
            if replies is not None:
                reply = replies[position]
            else:
                try:
                    reply = bundle.future.result()
                except Exception:
                    self._lost(bundle)
                    continue
            bundle.future = None  # Dask forgets the result once no future refers to it
            self._file(bundle, reply)

    def _file(self, bundle: _Bundle, reply: bytes) -> None:
        try:
            address, seconds, outcomes, problem, spent = decode_reply(reply)
        except Exception as exc:
            self._fail(bundle, RuntimeError(f"a Dask task's reply could not be read: {exc!r}"))
            return
        if problem is not None:
            self._fail(bundle, unreadable_bundle(problem))
            return
        if spent:  # maxtasksperchild: the worker restarts itself once the pool has its replies
            self._leaving.setdefault(address, time.monotonic())
        tasks = bundle.tasks[:len(outcomes)]
        declined = bundle.tasks[len(outcomes):]
        if declined:  # the worker reached maxtasksperchild: the rest goes elsewhere, as a bundle of its own
            self._send(declined, avoid=address)
        if not tasks:
            return
        self._figures.ran(address, len(tasks), seconds)  # before the outcomes wake a caller who may ask
        pace = self._pace(tasks[0])
        pace.estimate = updated_estimate(pace.estimate, seconds, len(tasks))
        by_job: dict[int, tuple[TaskSource, list[tuple[int, bool, object]]]] = {}
        for task, data in zip(tasks, outcomes, strict=True):
            ok, value = decode_outcome(data)
            entry = by_job.get(id(task.job))
            if entry is None:
                entry = by_job[id(task.job)] = (task.job, [])
            entry[1].append((task.index, ok, value))
        for job, results in by_job.values():
            job.set_outcomes(results)

    def _lost(self, bundle: _Bundle) -> None:
        """A bundle's Dask task ended without a result: its worker died, or the scheduler dropped it."""
        future = bundle.future
        assert future is not None
        if future.status == "cancelled":
            if self._state is _TERMINATE:
                self._fail(bundle, PoolClosedError("the pool was terminated before this task finished"))
            else:
                self._fail(bundle, WorkerLostError("the Dask scheduler cancelled this task (it restarted, or this "
                                                   "client lost its connection to it)"))
            return
        try:
            exc = future.exception()
        except Exception as err:
            exc = err
        worker = getattr(getattr(exc, "last_worker", None), "address", None)
        if worker is not None:
            expected = bundle.excused or worker in self._restarting or self._is_leaving(worker)
            if expected and bundle.excusals < _EXCUSALS:
                # The engine restarted that worker (another task's time limit) or it restarted itself
                # (maxtasksperchild): not the tasks' doing.
                bundle.excused = False
                bundle.excusals += 1
                self._submit(bundle)
                return
            self._figures.going(worker, "died")
            if bundle.attempts < self._retries:
                bundle.attempts += 1
                self._submit(bundle)
                return
            tries = f" ({bundle.attempts + 1} attempts, each on a worker that died)" if bundle.attempts else ""
            self._fail(bundle, WorkerLostError(f"the Dask worker {worker} running this task died before it "
                                               f"reported its result{tries}"))
            return
        error = exc if isinstance(exc, BaseException) else RuntimeError(f"the Dask task failed: {exc!r}")
        self._fail(bundle, error)

    def _is_leaving(self, worker: str) -> bool:
        since = self._leaving.get(worker)
        if since is None:
            return False
        if time.monotonic() - since > _LEAVING_SECONDS:  # long gone; its address may serve a new worker
            del self._leaving[worker]
            return False
        return True

    def _fail(self, bundle: _Bundle, error: BaseException) -> None:
        for task in bundle.tasks:
            task.job.set_outcome(task.index, False, error)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        late = [(key, b) for key, b in self._inflight.items() if b.deadline is not None and b.deadline <= now]
        for key, bundle in late:
            del self._inflight[key]
            limit = bundle.tasks[0].time_limit
            self._fail(bundle, TaskTimeoutError(f"the task ran past its time limit of {limit} s; its Dask worker "
                                                f"is being restarted"))
            self._restart_worker_of(key, bundle)

    def _restart_worker_of(self, key: str, bundle: _Bundle) -> None:
        try:
            worker = cast("str | None", self._client.run_on_scheduler(_remote.processing_on, key))
        except Exception:
            worker = None
        future, bundle.future = bundle.future, None
        if worker is None:
            if future is not None:
                future.cancel()
            return
        self._restart(worker, future, cause="time limit")

    def _restart(self, worker: str, future: distributed.Future[bytes] | None = None, *, cause: str) -> None:
        """Restart ``worker`` (its nanny starts a fresh process), then cancel ``future``, the task that made the
        engine restart it; what else of the pool's it held is sent again, as the restart is not its doing."""
        self._figures.going(worker, cause)
        self._restarting.add(worker)
        self._excuse(worker)

        def restart() -> None:
            # Off the engine thread: a restart takes a second or more, and the other tasks go on meanwhile.
            try:
                self._client.restart_workers([worker], timeout=60, raise_for_error=False)
            except Exception as exc:
                print(f"procpar-dask: could not restart the Dask worker {worker}: {exc!r}", file=sys.stderr)
            finally:
                if future is not None:
                    try:
                        future.cancel()
                    except Exception:
                        pass  # the pool has stopped and closed its client meanwhile: nothing left to cancel
                self._restarting.discard(worker)
                self.wake()

        threading.Thread(target=restart, name="procpar-dask-restart", daemon=True).start()

    def _where(self) -> dict[str, str]:
        """Key -> the worker it runs on (or waits for a thread on), for the bundles in flight."""
        try:
            found = cast("dict[str, str]", self._client.run_on_scheduler(_remote.processing_on_many,
                                                                          list(self._inflight)))
        except Exception:
            return {}
        return {str(k): str(v) for k, v in found.items()}

    def _excuse(self, worker: str) -> None:
        for key, address in self._where().items():
            if address == worker and key in self._inflight:
                self._inflight[key].excused = True

    def _stop_running_tasks(self) -> None:
        """terminate() on a cluster the pool does not own: Dask cannot stop a running task, so the workers
        running the pool's tasks are restarted (by their nannies), as the local pool kills its workers."""
        workers = sorted(set(self._where().values()))
        if not workers:
            return
        try:
            self._client.restart_workers(workers, timeout=60, raise_for_error=False)
        except Exception as exc:
            print(f"procpar-dask: terminate() could not restart the Dask workers {workers} running the pool's "
                  f"tasks (do they run under nannies?): {exc!r}", file=sys.stderr)

    def _stop(self) -> None:
        """The engine thread's last act: nothing left running, everything unfinished failed, the cluster the
        pool started closed."""
        error: BaseException = self._broken or PoolClosedError("the pool was terminated before this task ran")
        if self._state is _TERMINATE and self._inflight and self._connection.cluster is None:
            self._stop_running_tasks()
        bundles = list(self._inflight.values())
        self._inflight.clear()
        futures = [b.future for b in bundles if b.future is not None]
        if futures:
            try:
                self._client.cancel(futures, force=True)
            except Exception:
                pass
        with self._lock:
            self._state = _TERMINATE if self._state is _RUN else self._state
            jobs = list(self._backlog)
            self._backlog.clear()
        for bundle in bundles:
            self._fail(bundle, error)
        for task in self._ready:
            task.job.set_outcome(task.index, False, error)
        self._ready.clear()
        for job in jobs:
            job.fail_all(error)
        if self._topic is not None:
            try:
                self._client.unsubscribe_topic(self._topic)
            except Exception:
                pass
        if self._plugin is not None and self._connection.cluster is None:  # a cluster that outlives the pool
            try:
                self._client.unregister_worker_plugin(self._plugin)
            except Exception:
                pass
        try:
            self._connection.close()
        except Exception as exc:
            print(f"procpar-dask: closing the pool's Dask cluster failed: {exc!r}", file=sys.stderr)
