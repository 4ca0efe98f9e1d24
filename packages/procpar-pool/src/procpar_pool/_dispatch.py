"""The process pool's engine: one thread that feeds tasks to workers and collects their results.

Each worker has its own socket, so the dispatcher always knows which tasks a worker holds. One thread polls
every worker's socket and process sentinel and a wake-up pipe:

* a result arrives: the task's job gets it (callbacks run here);
* a sentinel fires: the worker is gone. Results it sent before dying are collected; the tasks it still held
  fail with ``WorkerLostError`` naming the exit code or signal and its likely cause; a new worker takes its
  place and the pool goes on;
* a task runs past its time limit: its worker is killed and replaced, and that task alone fails;
* then idle capacity is filled: each worker holds at most ``prefetch`` tasks (a task with a time limit, or a
  big one, only goes to a worker holding nothing). By default that depth adapts: 4 tasks, and up to 64 when
  tasks are short, so that a worker always holds about 2 ms of work (tiny tasks then cost one read and one
  write per batch instead of a wake-up each, and a slow task never leaves many others stuck behind it).

Tasks are pickled here, one at a time, so an argument that cannot be pickled fails its own task only. Nothing
waits forever: terminate() fails every unfinished task instead of leaving its result pending.
"""

from __future__ import annotations

import collections
import os
import select
import sys
import threading
import time
import warnings

from procpar_core import _serializer
from procpar_core.connection import Pipe
from procpar_core.util import register_after_fork
from procpar_sync._wire import has_message, read_message_stashed, write_messages

from . import _oob
from ._errors import (
    PicklingFailedError,
    PoolClosedError,
    RemoteTraceback,
    TaskTimeoutError,
    WorkerLostError,
    describe_exit,
)
from ._results import APPLY, Job, Task
from ._worker import INIT_FAILED, TASK_ID, worker_main

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Dispatcher", "RUN", "CLOSE", "TERMINATE"]

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
# A pickled task larger than this is only sent to a worker holding nothing: queueing it behind a running task
# would leave the dispatcher blocked on a full socket.
_BIG_TASK = 1 << 16
_POLLIN = select.POLLIN | select.POLLHUP | select.POLLERR
# Adaptive prefetch: hold about this much work per worker, between these many tasks.
_QUEUED_SECONDS = 0.002
_MIN_DEPTH, _MAX_DEPTH = 4, 64


class _Worker:
    __slots__ = ("busy_since", "claimed", "conn", "deadline", "doomed", "eof", "fd", "inflight", "last_reply",
                 "process", "quota", "sentinel", "service", "stash")

    def __init__(self, process: Any, conn: Any, quota: int | None) -> None:
        self.process = process
        self.conn = conn
        self.fd: int = conn.fileno()
        self.sentinel: int = getattr(process, "sentinel", -1)
        self.inflight: dict[int, Task] = {}
        self.quota = quota  # tasks it may still be given (maxtasksperchild), None: unlimited
        self.deadline: float | None = None  # when its (single, timed) task must be done
        self.eof = False
        self.doomed = False  # killed for running past a time limit; its replacement comes with its sentinel
        self.claimed = False  # a caller of apply() waits on this worker's socket itself (see call_direct)
        self.busy_since = 0.0  # when it last went from holding nothing to holding a task
        self.last_reply = 0.0
        self.service: float | None = None  # moving average of the seconds it takes per task
        # Replies read ahead from this worker's socket (read by whoever holds the dispatcher's mutex).
        self.stash = bytearray(8 + (1 << 16))


def _release(task: Task) -> None:
    """Drop the shared memory of a task that is over (its worker normally took it already)."""
    if task.segment is not None:
        _oob.discard(task.segment)
        task.segment = None


def _pickling_culprit(task: Task) -> str:
    """Which part of a task cannot be pickled, in words."""
    parts: list[tuple[str, Any]] = [("the function", task.func)]
    if task.kind == APPLY:
        args, kwds = task.payload
        parts += [(f"argument #{i}", a) for i, a in enumerate(args)]
        parts += [(f"keyword argument {k!r}", v) for k, v in kwds.items()]
    else:
        parts += [(f"item #{i} of the chunk", a) for i, a in enumerate(task.payload)]
    for label, obj in parts:
        try:
            _serializer.serialize(obj)
        except Exception as err:
            return f"{label} ({type(obj).__qualname__}: {obj!r:.80}) cannot be pickled: {type(err).__name__}: {err}"
    return "the task cannot be pickled"


def _needs_by_value(func: Any, start_method: str) -> bool:
    # A function of an interactive session's __main__ pickles by name, which only a forked child can resolve.
    if getattr(func, "__module__", None) != "__main__" or start_method == "fork":
        return False
    main = sys.modules.get("__main__")
    return main is not None and not hasattr(main, "__file__")


def _cloudpickle_dumps(obj: Any) -> bytes | None:
    try:
        import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    return bytes(cloudpickle.dumps(obj, protocol=5))


_NO_CLOUDPICKLE = ("lambdas, closures, nested functions and functions defined in an interactive session can "
                   "be sent to workers with cloudpickle: pip install 'procpar-pool[cloudpickle]'")


class Dispatcher:
    """Owns a pool's worker processes and its dispatching thread (see the module docstring)."""

    def __init__(self, ctx: Any, processes: int, initializer: Any, initargs: tuple[Any, ...],
                 maxtasksperchild: int | None, prefetch: int | None) -> None:
        self._ctx = ctx
        self._start_method = ctx.get_start_method()
        self._size = processes
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasks = maxtasksperchild
        self._prefetch = prefetch
        self._lock = threading.Lock()  # guards _state and _sources
        # Held while worker state is read or changed: by the dispatcher between polls, and by a submitting
        # thread that hands out its job's first tasks itself (saving a thread hop on the latency path).
        self._mutex = threading.Lock()
        self._state = RUN
        self._sources: collections.deque[Job] = collections.deque()
        self._ready: collections.deque[Task] = collections.deque()  # pulled from a job, not yet sent
        self._workers: list[_Worker] = []
        self._broken: BaseException | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._wake_pending = False
        self._poll_dirty = True
        self._watched: set[int] = set()  # worker sockets in the dispatcher's poll set
        self._starting: Any = None
        # A child forked from here (a worker, or any other process) must not hold the pool's fds: a worker
        # holding its siblings' sockets would never see end-of-file when the pool's process dies.
        register_after_fork(self, Dispatcher._close_in_child)
        # Large buffers travel in shared memory registered with the resource tracker; the workers must
        # share the pool's tracker (one started later would be theirs alone and misreport their segments).
        _oob.ensure_tracker()
        try:
            for _ in range(processes):
                self._start_worker()
        except BaseException:
            # A worker could not start: stop the ones that did rather than leak them.
            for worker in self._workers:
                worker.process.terminate()
            for worker in self._workers:
                worker.process.join()
                worker.conn.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
            raise
        self._thread = threading.Thread(target=self._loop, name="procpar-pool-dispatcher", daemon=True)
        self._thread.start()

    # -- called from user threads --------------------------------------------------------------------------

    @property
    def processes(self) -> list[Any]:
        """The live workers' Process objects (the stdlib's ``Pool._pool``)."""
        return [worker.process for worker in self._workers]

    @property
    def state(self) -> str:
        return self._state

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._state != RUN:
                raise ValueError("Pool not running")
            if self._broken is not None:
                raise self._broken
            self._sources.append(job)
        if self._mutex.acquire(False):
            try:
                self._fill()
                # The dispatcher must start watching a worker that was idle, know of a new deadline, and hand
                # out what is left when no reply of a worker it watches is coming to wake it.
                needed = any(w.deadline is not None or (w.inflight and w.fd not in self._watched)
                             for w in self._workers if not w.claimed)
                needed = needed or (not self._watched and self._pending_work())
            finally:
                self._mutex.release()
            if not needed:
                return
        self._wake()

    def call_direct(self, job: Job) -> bool:
        """Run ``job`` (one task, no time limit) on an idle worker and wait for the reply in this thread.

        The dispatcher only watches the sockets of workers that hold its tasks, so the reply wakes this
        thread alone: no hand-off through the dispatcher thread. False when the pool is busy or no worker
        is idle; the caller then submits the job as usual.
        """
        if self._state != RUN or self._broken is not None or self._sources or self._ready:
            return False
        if not self._mutex.acquire(False):
            return False
        try:
            idle = [w for w in self._workers if not w.eof and not w.doomed and not w.claimed and not w.inflight
                    and w.deadline is None and (w.quota is None or w.quota > 0)]
            if not idle or self._state != RUN:
                return False
            task = job.next_task()
            if task is None:
                return True
            data = self._encode(task)
            if data is None:
                return True  # it could not be pickled: the job holds that error already
            worker = idle[0]
            worker.claimed = True
            self._assign(worker, task)
            try:
                write_messages(worker.fd, [data])
            except OSError:
                pass  # it died: its sentinel fails the task
        finally:
            self._mutex.release()
        try:
            self._await_direct(worker, task)
        except KeyboardInterrupt:
            self._interrupted()
            raise
        finally:
            with self._mutex:
                worker.claimed = False
                # It still holds a task (this call was interrupted), work queued up meanwhile for lack of an
                # unclaimed worker, or the pool was closed and waits for this task to end: the dispatcher
                # takes over.
                wake = (bool(worker.inflight) and not worker.eof) or self._pending_work() or self._state != RUN
            if wake:
                self._wake()
        return True

    def _depth(self, worker: _Worker) -> int:
        """How many tasks ``worker`` may hold."""
        if self._prefetch is not None:
            return self._prefetch
        if worker.service is None or worker.service <= 0:
            return _MIN_DEPTH
        return max(_MIN_DEPTH, min(_MAX_DEPTH, int(_QUEUED_SECONDS / worker.service)))

    def extra_window(self) -> int:
        """Chunks an ``imap`` may read ahead beyond its default window, to keep deep worker queues fed."""
        if self._prefetch is not None:
            return 0
        return 2 * sum(max(0, self._depth(w) - _MIN_DEPTH) for w in self._workers)

    def _pending_work(self) -> bool:
        return bool(self._ready) or any(not job.exhausted() for job in list(self._sources))

    def _await_direct(self, worker: _Worker, task: Task) -> None:
        poller = select.poll()
        poller.register(worker.fd, _POLLIN)
        poller.register(worker.sentinel, select.POLLIN)
        readable = False
        while True:
            with self._mutex:
                if task.id not in worker.inflight or worker.eof or worker not in self._workers:
                    return
                if readable or has_message(worker.stash):
                    self._read_one(worker)
                    readable = False
                    continue
            events = poller.poll()
            readable = any(fd == worker.fd for fd, _ in events)
            if not readable:
                return  # only its sentinel: it died, and the dispatcher (which watches sentinels) fails the task

    def close(self) -> None:
        with self._lock:
            if self._state == RUN:
                self._state = CLOSE
        self._wake()

    def terminate(self) -> None:
        with self._lock:
            self._state = TERMINATE
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def join(self, timeout: float | None = None) -> None:
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _interrupted(self) -> None:
        """Ctrl-C in a thread waiting on a result: stop every worker."""
        self.terminate()

    def _consumer_progress(self, job: Job) -> None:
        self._wake()  # an imap consumer made room: more of its iterable may be read

    def _wake(self) -> None:
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass

    def _close_in_child(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        for conn in [w.conn for w in self._workers] + ([self._starting] if self._starting is not None else []):
            try:
                conn.close()
            except OSError:
                pass
        self._workers = []

    # -- workers ---------------------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        parent_end, child_end = Pipe(duplex=True)
        # Known before the fork, so that the new worker closes it too (see _close_in_child).
        self._starting = parent_end
        process = self._ctx.Process(target=worker_main, args=(child_end, self._initializer, self._initargs,
                                                              self._maxtasks), daemon=True)
        process.name = process.name.replace("Process", "PoolWorker")
        try:
            process.start()
        finally:
            self._starting = None
            child_end.close()
        self._workers.append(_Worker(process, parent_end, self._maxtasks))
        self._poll_dirty = True

    def _forget(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        try:
            worker.conn.close()
        except OSError:
            pass
        self._poll_dirty = True

    # -- the loop --------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            with self._mutex:
                poller, by_fd = self._new_poller()
                self._watch(poller)
            while True:
                events = poller.poll(self._poll_timeout_ms())
                with self._mutex:
                    if self._handle(events, by_fd):
                        return
                    if self._poll_dirty:
                        poller, by_fd = self._new_poller()
                    self._watch(poller)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            import traceback

            traceback.print_exc()
            self._stop_all(RuntimeError(f"the pool's dispatcher failed: {exc!r}"))
        finally:
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _handle(self, events: list[tuple[int, int]], by_fd: dict[int, tuple[str, _Worker | None]]) -> bool:
        """Act on what poll() reported, then hand out tasks; True when the pool has stopped."""
        for fd, _ in events:
            kind, worker = by_fd.get(fd, ("gone", None))
            if kind == "wake":
                try:
                    os.read(self._wake_r, 4096)
                except BlockingIOError:
                    pass
                # Only now: a _wake() between the flag reset and the read would have had its byte drained
                # with its flag still set, and every later _wake() would skip the pipe (the state it changed
                # is looked at below, after this).
                self._wake_pending = False
            elif worker is None or worker not in self._workers:
                continue
            elif kind == "conn":
                if worker.claimed:
                    continue
                self._read_one(worker)
                while not worker.eof and has_message(worker.stash):
                    self._read_one(worker)
            else:
                self._worker_exited(worker)
        self._expire_tasks()
        state = self._state
        if state == TERMINATE:
            self._stop_all(PoolClosedError("the pool was terminated before this task finished"))
            return True
        self._fill()
        if state == CLOSE and self._all_done():
            self._finish()
            return True
        return False

    def _new_poller(self) -> tuple[Any, dict[int, tuple[str, _Worker | None]]]:
        poller = select.poll()
        by_fd: dict[int, tuple[str, _Worker | None]] = {self._wake_r: ("wake", None)}
        poller.register(self._wake_r, select.POLLIN)
        for worker in self._workers:
            by_fd[worker.fd] = ("conn", worker)
            poller.register(worker.sentinel, select.POLLIN)
            by_fd[worker.sentinel] = ("sentinel", worker)
        self._watched = set()
        self._poll_dirty = False
        return poller, by_fd

    def _watch(self, poller: Any) -> None:
        """Poll the sockets of the workers holding the dispatcher's tasks, and only those: an idle worker's
        death shows on its sentinel, and a claimed worker's reply is for the thread waiting on it."""
        for worker in self._workers:
            wanted = bool(worker.inflight) and not worker.eof and not worker.claimed
            if wanted and worker.fd not in self._watched:
                poller.register(worker.fd, _POLLIN)
                self._watched.add(worker.fd)
            elif not wanted and worker.fd in self._watched:
                poller.unregister(worker.fd)
                self._watched.discard(worker.fd)

    def _poll_timeout_ms(self) -> int | None:
        deadlines = [w.deadline for w in self._workers if w.deadline is not None]
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def _all_done(self) -> bool:
        return not self._sources and not self._ready and not any(w.inflight for w in self._workers)

    # -- results ---------------------------------------------------------------------------------------------

    def _read_one(self, worker: _Worker) -> None:
        try:
            message = read_message_stashed(worker.fd, worker.stash)
        except (EOFError, OSError):
            worker.eof = True  # it is exiting; its sentinel says how
            self._poll_dirty = True
            return
        (task_id,) = TASK_ID.unpack_from(message)
        try:
            ok, value = _oob.loads_message(memoryview(message)[TASK_ID.size :])
        except Exception as err:
            ok, value = False, (PicklingFailedError(
                f"the worker's reply could not be unpickled here: {type(err).__name__}: {err}"), "")
        if task_id == INIT_FAILED:
            self._initializer_failed(value[0])
            return
        task = worker.inflight.pop(task_id, None)
        if task is None:
            return
        now = time.monotonic()
        took = now - max(worker.last_reply, worker.busy_since)
        worker.service = took if worker.service is None else 0.8 * worker.service + 0.2 * took
        worker.last_reply = now
        _release(task)
        if worker.deadline is not None:
            worker.deadline = None
        if not ok:
            exc, tb = value
            if tb:
                exc.__cause__ = RemoteTraceback(tb)
            value = exc
        task.job._set(task.index, ok, value)

    def _worker_exited(self, worker: _Worker) -> None:
        # Collect what it managed to send before it went (results, or an initializer's failure, which an idle
        # worker sends while nobody watches its socket).
        while not worker.eof:
            if not has_message(worker.stash) and not select.select([worker.fd], [], [], 0)[0]:
                break
            self._read_one(worker)
        worker.process.join(5)
        exitcode = worker.process.exitcode
        self._forget(worker)
        if worker.inflight:
            reason = describe_exit(exitcode)
            for task in worker.inflight.values():
                _release(task)
                task.job._set(task.index, False, WorkerLostError(
                    f"the task could not finish: {reason}. The worker was replaced; other tasks go on.", exitcode))
            worker.inflight.clear()
        if self._state != TERMINATE and self._broken is None and (self._state == RUN or not self._all_done()):
            self._start_worker()

    def _initializer_failed(self, exc: BaseException) -> None:
        broken = RuntimeError(f"the pool's initializer raised in a worker, so the pool cannot run tasks: {exc!r}")
        broken.__cause__ = exc
        with self._lock:
            self._broken = broken
            sources = list(self._sources)
            self._sources.clear()
        self._fail_everything(broken, sources)

    def _expire_tasks(self) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.deadline is None or now < worker.deadline:
                continue
            worker.deadline = None
            for task in worker.inflight.values():
                _release(task)
                task.job._set(task.index, False, TaskTimeoutError(
                    f"the task ran longer than its time limit of {task.time_limit} s; its worker was stopped and "
                    "replaced"))
            worker.inflight.clear()
            worker.doomed = True
            worker.process.kill()  # its sentinel fires next, and it is replaced then

    # -- handing out tasks -----------------------------------------------------------------------------------

    def _next_task(self) -> Task | None:
        if self._ready:
            return self._ready.popleft()
        with self._lock:
            sources = list(self._sources)
        for job in sources:
            task = job.next_task()
            if task is not None:
                return task
            if job.exhausted():
                with self._lock:
                    try:
                        self._sources.remove(job)
                    except ValueError:
                        pass
        return None

    def _encode(self, task: Task) -> bytes | None:
        """The task's message, or None after failing the task because it cannot be pickled."""
        if task.data is not None:
            return task.data
        body = (task.kind, task.func, task.payload)
        try:
            if _needs_by_value(task.func, self._start_method):
                data = _cloudpickle_dumps(body)
                if data is None:
                    raise PicklingFailedError(f"{task.func!r} is defined in an interactive session, which a "
                                              f"{self._start_method} worker cannot import; {_NO_CLOUDPICKLE}")
                data = _oob.PLAIN + data
            else:
                data, task.segment = _oob.dumps(body)
        except PicklingFailedError as exc:
            task.job._set(task.index, False, exc)
            return None
        except Exception as err:
            data = self._encode_by_value(task, body, err)
            if data is None:
                return None
        task.data = TASK_ID.pack(task.id) + data
        task.func = task.payload = None  # the message holds them now
        return task.data

    def _encode_by_value(self, task: Task, body: Any, err: Exception) -> bytes | None:
        culprit = _pickling_culprit(task)
        hint = ""
        if culprit.startswith("the function"):
            # A lambda, a closure or a nested function: cloudpickle sends it by value, if it is installed.
            try:
                data = _cloudpickle_dumps(body)
            except Exception:
                data = None
            else:
                if data is not None:
                    return _oob.PLAIN + data
                hint = f"; {_NO_CLOUDPICKLE}"
        failure = PicklingFailedError(f"the task cannot be sent to a worker: {culprit}{hint}")
        failure.__cause__ = err
        task.job._set(task.index, False, failure)
        return None

    @staticmethod
    def _assign(worker: _Worker, task: Task) -> None:
        """``worker`` holds ``task`` from now on (the caller sends it)."""
        if not worker.inflight:
            worker.busy_since = time.monotonic()
        worker.inflight[task.id] = task
        if worker.quota is not None:
            worker.quota -= 1
        if task.time_limit is not None:
            worker.deadline = time.monotonic() + task.time_limit

    def _fill(self) -> None:
        if self._broken is not None:
            return
        batches: dict[_Worker, list[bytes]] = {}
        while True:
            candidates = [w for w in self._workers if not w.eof and not w.doomed and not w.claimed
                          and w.deadline is None and len(w.inflight) < self._depth(w)
                          and (w.quota is None or w.quota > 0)]
            if not candidates:
                break
            worker = min(candidates, key=lambda w: len(w.inflight))
            task = self._next_task()
            if task is None:
                break
            data = self._encode(task)
            if data is None:
                continue
            if worker.inflight and (task.time_limit is not None or len(data) > _BIG_TASK):
                idle = [w for w in candidates if not w.inflight]
                if not idle:
                    self._ready.appendleft(task)  # waits for a worker with nothing in hand
                    break
                worker = idle[0]
            self._assign(worker, task)
            batches.setdefault(worker, []).append(data)
        for worker, messages in batches.items():
            try:
                write_messages(worker.fd, messages)
            except OSError:
                pass  # it died: its sentinel fails what it held

    # -- stopping --------------------------------------------------------------------------------------------

    def _finish(self) -> None:
        """Closed and idle: ask every worker to stop and wait for them."""
        for worker in self._workers:
            try:
                write_messages(worker.fd, [b""])
            except OSError:
                pass
        for worker in list(self._workers):
            worker.process.join(10)
            if worker.process.exitcode is None:
                worker.process.terminate()
                worker.process.join(5)
            self._forget(worker)

    def _stop_all(self, exc: BaseException) -> None:
        with self._lock:
            self._state = TERMINATE
            sources = list(self._sources)
            self._sources.clear()
        for worker in self._workers:
            if worker.process.exitcode is None:
                worker.process.terminate()
        for worker in list(self._workers):
            worker.process.join(5)
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join(5)
        self._fail_everything(exc, sources)
        for worker in list(self._workers):
            self._forget(worker)

    def _fail_everything(self, exc: BaseException, sources: list[Job]) -> None:
        jobs: list[Job] = []
        for worker in self._workers:
            for task in worker.inflight.values():
                _release(task)
                jobs.append(task.job)
            worker.inflight.clear()
        for task in self._ready:
            _release(task)
            jobs.append(task.job)
        self._ready.clear()
        jobs += sources
        seen: set[int] = set()
        for job in jobs:
            if id(job) not in seen:
                seen.add(id(job))
                job._fail_all(exc)

    def warn_unclosed(self) -> None:
        if self._state == RUN:
            warnings.warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, stacklevel=3)
