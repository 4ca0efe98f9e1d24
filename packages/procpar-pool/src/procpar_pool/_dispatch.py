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

import _thread
import collections
import os
import select
import sys
import threading
import time
import warnings

from procpar_core import lowlevel
from procpar_core.connection import Pipe
from procpar_core.reduction import loads
from procpar_core.util import SIGNAL_SLICE, in_main_thread, register_after_fork
from procpar_sync.lowlevel import has_message, read_messages_stashed, spin_readable, unpack_numbers, write_messages

from . import _oob
from ._errors import (
    MemoryLimitError,
    PicklingFailedError,
    PoolClosedError,
    RemoteTraceback,
    TaskTimeoutError,
    WorkerLostError,
    describe_exit,
    oom_kill_count,
)
from ._results import APPLY, Job, Task
from ._running import RunningTask
from ._worker import (
    BATCH,
    INIT_FAILED,
    RETIRED,
    SINGLE,
    SPIN_SECONDS,
    TASK_ID,
    batch_header,
    resident_bytes,
    worker_main,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Dispatcher", "RUN", "CLOSE", "TERMINATE"]

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"
# A pickled task larger than this is only sent to a worker holding nothing: queueing it behind a running task
# would leave the dispatcher blocked on a full socket.
_BIG_TASK = 1 << 16
_POLLIN = select.POLLIN | select.POLLHUP | select.POLLERR
_PLAIN, _NUMBERS = _oob.PLAIN[0], _oob.NUMBERS[0]
# Adaptive prefetch: hold about this much work per worker, between these many tasks.
_QUEUED_SECONDS = 0.002
_MIN_DEPTH, _MAX_DEPTH = 4, 64
_SLICE_MS = int(SIGNAL_SLICE * 1000)
# With max_memory_per_child, how often the resident memory of busy workers is looked at.
_MEMORY_CHECK_SECONDS = 0.05


class _Worker:
    __slots__ = ("busy_since", "claimed", "conn", "deadline", "doomed", "eof", "fd", "inflight", "last_reply",
                 "oom_kills", "over_memory", "process", "quota", "running", "sentinel", "service", "stash")

    def __init__(self, process: Any, conn: Any, quota: int | None, running: RunningTask) -> None:
        self.process = process
        self.conn = conn
        self.running = running  # which task it runs: read when it dies (see _running)
        self.oom_kills = oom_kill_count()  # the kernel's count when it started: did the OOM killer take it?
        self.over_memory: int | None = None  # its resident memory when the pool stopped it for using too much
        self.fd: int = conn.fileno()
        self.sentinel = -1  # known once the process has started
        self.inflight: dict[int, Task] = {}
        self.quota = quota  # tasks it may still be given (maxtasksperchild), None: unlimited
        self.deadline: float | None = None  # when its (single, timed) task must be done
        self.eof = False
        # Takes no more work (killed for a time limit or its memory, or retiring); replaced when it exits.
        self.doomed = False
        self.claimed = False  # a caller of apply() waits on this worker's socket itself (see call_direct)
        self.busy_since = 0.0  # when it last went from holding nothing to holding a task
        self.last_reply = 0.0
        self.service: float | None = None  # moving average of the seconds it takes per task
        # Replies read ahead from this worker's socket (read by whoever holds the dispatcher's mutex).
        self.stash = bytearray(8 + (1 << 16))


def _held(slot: list[Any]) -> int:
    return int(slot[2])


def _share(slots: list[tuple[int, int]], count: int) -> list[int]:
    """How many of ``count`` tasks each ``(room, held)`` slot takes, as if each task in turn went to the slot
    holding fewest (ties: the first) among those with room left: the level ``held + taken`` is evened out."""
    def taken_below(level: int) -> int:
        return sum(min(room, max(0, level - held)) for room, held in slots)

    low = min(held for _, held in slots)
    high = max(held + room for room, held in slots)
    # The least level reaching ``count`` (or the top, when there is less room than tasks).
    while low < high:
        middle = (low + high) // 2
        if taken_below(middle) >= count:
            high = middle
        else:
            low = middle + 1
    shares = [min(room, max(0, low - 1 - held)) for room, held in slots]
    left = count - sum(shares)
    for index, (room, held) in enumerate(slots):
        if left <= 0:
            break
        if shares[index] < room and held + shares[index] == low - 1:
            shares[index] += 1
            left -= 1
    return shares


def _release(task: Task) -> None:
    """A task is over: drop what it carried (the function and arguments were kept in case its worker died
    before starting it) and its shared memory (its worker normally took that already)."""
    if task.segment is not None:
        _oob.discard(task.segment)
        task.segment = None
    task.func = task.payload = task.data = None


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
            lowlevel.serialize(obj)
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


def _by_value(body: Any) -> bytes | None:
    """A message body pickled by cloudpickle (functions by value); None when that cannot be done."""
    try:
        pickled = _cloudpickle_dumps(body)
    except Exception:
        return None
    return None if pickled is None else _oob.PLAIN + pickled


_NO_CLOUDPICKLE = ("lambdas, closures, nested functions and functions defined in an interactive session can "
                   "be sent to workers with cloudpickle: pip install 'procpar-pool[cloudpickle]'")


class Dispatcher:
    """Owns a pool's worker processes and its dispatching thread (see the module docstring)."""

    def __init__(self, ctx: Any, processes: int, initializer: Any, initargs: tuple[Any, ...],
                 maxtasksperchild: int | None, prefetch: int | None, max_memory: int | None = None) -> None:
        self._ctx = ctx
        self._start_method = ctx.get_start_method()
        self._size = processes
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasks = maxtasksperchild
        self._prefetch = prefetch
        self._max_memory = max_memory
        self._memory_checked = 0.0
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
        # Sockets of workers made but not started yet: a child forked meanwhile must close them (see
        # _close_in_child), except its own end, which it keeps.
        self._unstarted: list[Any] = []
        # Chunks an imap may read ahead beyond its default window, to keep deep worker queues fed (set by _fill).
        self.window_bonus = 0
        # A child forked from here (a worker, or any other process) must not hold the pool's fds: a worker
        # holding its siblings' sockets would never see end-of-file when the pool's process dies.
        register_after_fork(self, Dispatcher._close_in_child)
        # Large buffers travel in shared memory registered with the resource tracker; the workers must
        # share the pool's tracker (one started later would be theirs alone and misreport their segments).
        _oob.ensure_tracker()
        self._stopped = threading.Event()
        try:
            # Everything the workers need is made before the first fork: until a new worker runs, each page
            # the parent writes is copied first, and the workers wait for the CPU the parent holds.
            prepared = [self._prepare_worker() for _ in range(processes)]
            for worker, child_end in prepared:
                self._launch_worker(worker, child_end)
        except BaseException:
            # A worker could not start: stop the ones that did rather than leak them.
            for conn in self._unstarted:
                conn.close()
            self._unstarted.clear()
            for worker in self._workers:
                worker.process.terminate()
            for worker in self._workers:
                worker.process.join()
                worker.conn.close()
                worker.running.close()
            self._workers.clear()
            self._close_wake_pipe()
            raise
        # Started after the workers, which so come from a process without another thread of ours (Python 3.12+
        # warns about forking a multi-threaded process). A bare thread: threading.Thread.start() waits until
        # the new thread runs, which just after forking (the new workers taking the CPUs) costs more than a
        # fork.
        self._thread_ident = _thread.start_new_thread(self._run, ())

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
                write_messages(worker.fd, [data], True)
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

    def _pending_work(self) -> bool:
        return bool(self._ready) or any(not job.exhausted() for job in list(self._sources))

    def _await_direct(self, worker: _Worker, task: Task) -> None:
        poller = select.poll()
        poller.register(worker.fd, _POLLIN)
        poller.register(worker.sentinel, select.POLLIN)
        # A short task's reply comes sooner than this thread could sleep and wake up: look for it first.
        readable = worker.service is not None and worker.service < SPIN_SECONDS
        readable = readable and spin_readable(worker.fd, SPIN_SECONDS)
        while True:
            with self._mutex:
                if task.id not in worker.inflight or worker.eof or worker not in self._workers:
                    return
                if readable or has_message(worker.stash):
                    self._read_available(worker)
                    readable = False
                    continue
            # In slices in the main thread, so that a Ctrl-C that comes just before the sleep is seen.
            events = poller.poll(_SLICE_MS if in_main_thread() else None)
            if not events:
                continue
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
        if threading.get_ident() != self._thread_ident:
            self._stopped.wait()

    def join(self, timeout: float | None = None) -> None:
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if threading.get_ident() != self._thread_ident:
            self._stopped.wait(timeout)

    def _interrupted(self) -> None:
        """Ctrl-C in a thread waiting on a result: stop every worker."""
        self.terminate()

    def _consumer_progress(self, job: Job) -> None:
        self._wake()  # an imap consumer made room: more of its iterable may be read

    def _wake(self) -> None:
        if self._wake_pending:
            return
        self._wake_pending = True
        with self._lock:  # not while the pipe is being closed: its number could belong to another file by then
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"\0")
                except (BlockingIOError, OSError):
                    pass

    def _close_in_child(self) -> None:
        # Another thread of the parent may have held these at the fork; in the child nothing else runs here.
        self._lock = threading.Lock()
        self._mutex = threading.Lock()
        self._close_wake_pipe()
        for conn in [w.conn for w in self._workers] + self._unstarted:
            try:
                conn.close()
            except OSError:
                pass
        for worker in self._workers:
            worker.running.close()
        self._workers = []
        self._unstarted = []

    def _close_wake_pipe(self) -> None:
        # Once closed, the numbers are forgotten: a child forked later must not close whatever reuses them.
        with self._lock:
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    # -- workers ---------------------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._launch_worker(*self._prepare_worker())

    def _prepare_worker(self) -> tuple[_Worker, Any]:
        """A worker's socket pair and Process object, not started (its end of the pair comes with it)."""
        parent_end, child_end = Pipe(duplex=True)
        self._unstarted += [parent_end, child_end]
        running = RunningTask()
        process = self._ctx.Process(target=worker_main, args=(child_end, self._initializer, self._initargs,
                                                              self._maxtasks, running, self._max_memory),
                                    daemon=True)
        process.name = process.name.replace("Process", "PoolWorker")
        return _Worker(process, parent_end, self._maxtasks, running), child_end

    def _launch_worker(self, worker: _Worker, child_end: Any) -> None:
        self._unstarted.remove(child_end)  # the new worker keeps this one
        try:
            worker.process.start()
        except BaseException:
            worker.conn.close()
            worker.running.close()
            raise
        finally:
            self._unstarted.remove(worker.conn)
            child_end.close()
        worker.sentinel = getattr(worker.process, "sentinel", -1)
        self._workers.append(worker)
        self._poll_dirty = True

    def _forget(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        try:
            worker.conn.close()
        except OSError:
            pass
        worker.running.close()
        self._poll_dirty = True

    # -- the loop --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._stopped.set()

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
            self._close_wake_pipe()

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
                if not worker.claimed:
                    self._read_available(worker)
            else:
                self._worker_exited(worker)
        self._expire_tasks()
        if self._max_memory is not None:
            self._check_memory()
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
        if self._max_memory is not None and any(w.inflight for w in self._workers):
            deadlines.append(self._memory_checked + _MEMORY_CHECK_SECONDS)
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def _all_done(self) -> bool:
        return not self._sources and not self._ready and not any(w.inflight for w in self._workers)

    # -- results ---------------------------------------------------------------------------------------------

    def _read_available(self, worker: _Worker) -> None:
        """Read the replies ``worker`` has sent (one read() usually brings several; at least one, waiting for
        it) and hand them to their jobs, each job once."""
        try:
            messages = read_messages_stashed(worker.fd, worker.stash, True)
        except (EOFError, OSError):
            worker.eof = True  # it is exiting; its sentinel says how
            self._poll_dirty = True
            return
        inflight = worker.inflight
        outcomes: list[tuple[Task, bool, Any]] = []
        for message in messages:
            (task_id,) = TASK_ID.unpack_from(message)
            body = memoryview(message)[TASK_ID.size :]
            try:
                tag = body[0]
                if tag == _PLAIN:
                    ok, value = loads(body[1:])
                elif tag == _NUMBERS:
                    ok, value = True, unpack_numbers(body[1:])
                else:
                    ok, value = _oob.loads_message(body)
            except Exception as err:
                ok, value = False, (PicklingFailedError(
                    f"the worker's reply could not be unpickled here: {type(err).__name__}: {err}"), "")
            if task_id == INIT_FAILED:
                self._initializer_failed(value[0])
                continue
            if task_id == RETIRED:
                worker.doomed = True  # over max_memory_per_child between tasks: it leaves, and is replaced
                continue
            task = inflight.pop(task_id, None)
            if task is None:
                continue
            _release(task)
            if not ok:
                exc, tb = value
                if tb:
                    exc.__cause__ = RemoteTraceback(tb)
                value = exc
            outcomes.append((task, ok, value))
        if not outcomes:
            return
        # Its time per task, averaged over the replies that came together.
        now = time.monotonic()
        took = (now - max(worker.last_reply, worker.busy_since)) / len(outcomes)
        keep = 0.8 ** len(outcomes)
        worker.service = took if worker.service is None else keep * worker.service + (1 - keep) * took
        worker.last_reply = now
        worker.deadline = None
        start = 0
        while start < len(outcomes):
            job = outcomes[start][0].job
            end = start + 1
            while end < len(outcomes) and outcomes[end][0].job is job:
                end += 1
            if end - start == 1:
                task, ok, value = outcomes[start]
                job._set(task.index, ok, value)
            else:
                job._set_many([(task.index, ok, value) for task, ok, value in outcomes[start:end]])
            start = end

    def _worker_exited(self, worker: _Worker) -> None:
        # Collect what it managed to send before it went (results, or an initializer's failure, which an idle
        # worker sends while nobody watches its socket).
        while not worker.eof:
            if not has_message(worker.stash) and not select.select([worker.fd], [], [], 0)[0]:
                break
            self._read_available(worker)
        worker.process.join(5)
        exitcode = worker.process.exitcode
        running_id = worker.running.get()
        self._forget(worker)
        if worker.inflight:
            # Only the task it was running dies with it; those it had not started go to another worker.
            running = worker.inflight.pop(running_id, None) if running_id is not None else None
            later = list(worker.inflight.values())
            worker.inflight.clear()
            if running is not None:
                _release(running)
                running.job._set(running.index, False, self._lost(worker, exitcode))
            self._requeue(later)
        if self._state != TERMINATE and self._broken is None and (self._state == RUN or not self._all_done()):
            self._start_worker()

    def _lost(self, worker: _Worker, exitcode: int | None) -> WorkerLostError:
        """Why the task a dead worker was running failed."""
        pid = worker.process.pid
        status = "no exit code" if exitcode is None else f"exit code {exitcode}"
        if worker.over_memory is not None:
            return MemoryLimitError(
                f"the task used too much memory: its worker reached {worker.over_memory >> 20} MiB, over "
                f"max_memory_per_child={self._max_memory} bytes ({(self._max_memory or 0) >> 20} MiB), and was "
                f"stopped (worker pid {pid}, {status}). The worker was replaced; other tasks go on.", exitcode, pid)
        reason = describe_exit(exitcode, oom_killed=exitcode == -9 and oom_kill_count() > worker.oom_kills)
        return WorkerLostError(
            f"the task could not finish: {reason} (worker pid {pid}, {status}). The worker was replaced; other "
            f"tasks go on.", exitcode, pid)

    def _requeue(self, tasks: list[Task]) -> None:
        """Tasks sent to a worker that died before it began them: they go first, in order, to the others."""
        for task in tasks:
            if task.segment is not None:
                _oob.discard(task.segment)  # the dead worker may have taken it already: pickled afresh
                task.segment = None
            task.data = None
        self._ready.extendleft(reversed(tasks))

    def _check_memory(self) -> None:
        """With max_memory_per_child: stop a busy worker whose resident memory is over the limit."""
        now = time.monotonic()
        if now - self._memory_checked < _MEMORY_CHECK_SECONDS:
            return
        self._memory_checked = now
        for worker in self._workers:
            if worker.inflight and not worker.doomed and worker.process.pid is not None:
                rss = resident_bytes(worker.process.pid)
                if rss is not None and self._max_memory is not None and rss > self._max_memory:
                    worker.over_memory = rss
                    worker.doomed = True
                    worker.process.kill()  # its sentinel fires next: its task fails, it is replaced

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

    def _take_tasks(self, limit: int) -> list[Task]:
        """Up to ``limit`` tasks: those set aside first, then from the jobs in the order they came."""
        tasks: list[Task] = []
        ready = self._ready
        while ready and len(tasks) < limit:
            tasks.append(ready.popleft())
        if len(tasks) >= limit:
            return tasks
        with self._lock:
            sources = list(self._sources)
        for job in sources:
            tasks += job.next_tasks(limit - len(tasks))
            if len(tasks) >= limit:
                break
            if job.exhausted():
                with self._lock:
                    try:
                        self._sources.remove(job)
                    except ValueError:
                        pass
        return tasks

    def _encode(self, task: Task) -> bytes | None:
        """The task's message, or None after failing the task because it cannot be pickled."""
        if task.data is not None:
            return task.data
        body = (task.kind, task.func, [task.payload])
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
        task.data = batch_header([task.id], SINGLE) + data
        return task.data

    def _encode_batch(self, tasks: list[Task]) -> tuple[bytes | None, list[Task], list[Task]]:
        """One message for the tasks (of one function) whose arguments pickle small, those tasks, and the tasks
        left for one-by-one messages: those whose arguments hold a buffer for shared memory or cannot be pickled (each
        then fails alone, its culprit named). No message when the function itself must go another way."""
        first = tasks[0]
        payloads: list[bytes] = []
        batched: list[Task] = []
        alone: list[Task] = []
        size = 0
        for task, pickled in zip(tasks, _oob.dumps_each_inband([task.payload for task in tasks]), strict=True):
            if isinstance(pickled, Exception):
                alone.append(task)
                continue
            size += len(pickled)
            if size > _BIG_TASK:
                alone.append(task)
                continue
            payloads.append(pickled)
            batched.append(task)
        if not batched:
            return None, [], alone
        body = (first.kind, first.func, payloads)
        data = None
        if not _needs_by_value(first.func, self._start_method):
            try:
                data = _oob.PLAIN + _oob.dumps_inband(body)
            except Exception:
                pass
        if data is None:
            # The function goes by value (a lambda, a closure, an interactive session's function).
            data = _by_value(body)
            if data is None:
                return None, [], tasks  # one by one: each fails with the error that says why
        return batch_header([task.id for task in batched], BATCH) + data, batched, alone

    def _messages_for(self, worker: _Worker, planned: list[Task]) -> list[bytes]:
        """The messages carrying ``planned`` (just assigned to ``worker``): consecutive tasks of one function in
        one batch. A task that cannot be pickled is failed and taken back. A worker already holding tasks is
        sent at most ``_BIG_TASK`` bytes more at a time (a big task only goes to a worker holding nothing):
        queued behind a running task, more could fill its socket and block this thread. What does not go
        waits, in order, for the next round."""
        budget = _BIG_TASK
        idle = len(worker.inflight) == len(planned)
        messages: list[bytes] = []
        start = 0
        while start < len(planned):
            first = planned[start]
            end = start + 1
            if first.data is None:
                while (end < len(planned) and planned[end].data is None and planned[end].func is first.func
                       and planned[end].kind == first.kind):
                    end += 1
            run = planned[start:end]
            alone = run
            if len(run) > 1:
                batch, _, alone = self._encode_batch(run)
                if batch is not None:
                    if not (idle and not messages) and len(batch) > budget:
                        self._put_back(worker, run + planned[end:])
                        return messages
                    budget -= len(batch)
                    messages.append(batch)
            for position, task in enumerate(alone):
                data = self._encode(task)
                if data is None:
                    self._unassign(worker, task)  # its job holds the pickling error already
                    continue
                if not (idle and not messages) and len(data) > budget:
                    self._put_back(worker, alone[position:] + planned[end:])
                    return messages
                budget -= len(data)
                messages.append(data)
            start = end
        return messages

    def _encode_by_value(self, task: Task, body: Any, err: Exception) -> bytes | None:
        culprit = _pickling_culprit(task)
        hint = ""
        if culprit.startswith("the function"):
            # A lambda, a closure or a nested function: cloudpickle sends it by value, if it is installed.
            try:
                data = _cloudpickle_dumps(body)
            except Exception:
                data = None  # cloudpickle is there but cannot pickle it either
            else:
                if data is not None:
                    return _oob.PLAIN + data
                hint = f"; {_NO_CLOUDPICKLE}"
        failure = PicklingFailedError(f"the task cannot be sent to a worker: {culprit}{hint}")
        failure.__cause__ = err
        task.job._set(task.index, False, failure)
        return None

    def _put_back(self, worker: _Worker, tasks: list[Task]) -> None:
        """Take back tasks assigned to ``worker`` but not sent: they go first, in order, next time."""
        for task in tasks:
            self._unassign(worker, task)
        self._ready.extendleft(reversed(tasks))

    @classmethod
    def _assign(cls, worker: _Worker, task: Task) -> None:
        """``worker`` holds ``task`` from now on (the caller sends it)."""
        cls._assign_many(worker, [task])
        if task.time_limit is not None:
            worker.deadline = time.monotonic() + task.time_limit

    @staticmethod
    def _assign_many(worker: _Worker, tasks: list[Task]) -> None:
        """``worker`` holds ``tasks`` (none with a time limit: see ``_assign``) from now on."""
        inflight = worker.inflight
        if not inflight:
            worker.busy_since = time.monotonic()
        for task in tasks:
            inflight[task.id] = task
        if worker.quota is not None:
            worker.quota -= len(tasks)

    @staticmethod
    def _unassign(worker: _Worker, task: Task) -> None:
        """Undo ``_assign``: the task was not sent after all."""
        if worker.inflight.pop(task.id, None) is None:
            return
        if worker.quota is not None:
            worker.quota += 1
        if task.time_limit is not None:
            worker.deadline = None

    def _fill(self) -> None:
        if self._broken is not None:
            return
        # [worker, tasks it may still take, tasks it holds]
        slots: list[list[Any]] = []
        depths = []
        for w in self._workers:
            depth = self._depth(w)
            depths.append(depth)
            if w.eof or w.doomed or w.claimed or w.deadline is not None:
                continue
            room = depth - len(w.inflight)
            if w.quota is not None:
                room = min(room, w.quota)
            if room > 0:
                slots.append([w, room, len(w.inflight)])
        if self._prefetch is None:
            self.window_bonus = 2 * sum(max(0, depth - _MIN_DEPTH) for depth in depths)
        if not slots:
            return
        tasks = self._take_tasks(sum(slot[1] for slot in slots))
        if not tasks:
            return
        if any(task.time_limit is not None for task in tasks):
            plan = self._plan_one_by_one(slots, tasks)
        else:
            plan = {}
            start = 0
            for (worker, _, _), count in zip(slots, _share([(room, held) for _, room, held in slots], len(tasks)),
                                             strict=True):
                if count:
                    planned = tasks[start : start + count]
                    start += count
                    self._assign_many(worker, planned)
                    plan[worker] = planned
        for worker, planned in plan.items():
            messages = self._messages_for(worker, planned)
            if messages:
                try:
                    write_messages(worker.fd, messages, True)
                except OSError:
                    pass  # it died: its sentinel fails what it held

    def _plan_one_by_one(self, slots: list[list[Any]], tasks: list[Task]) -> dict[_Worker, list[Task]]:
        """Assign ``tasks`` one at a time, each to the worker holding fewest; a task with a time limit only to
        a worker holding nothing (it then runs alone)."""
        plan: dict[_Worker, list[Task]] = {}
        for position, task in enumerate(tasks):
            if not slots:
                self._ready.extendleft(reversed(tasks[position:]))
                break
            slot = min(slots, key=_held)  # the worker holding the fewest tasks
            if slot[2] and task.time_limit is not None:
                # A task with a time limit runs alone: it waits for a worker holding nothing, and so do the
                # tasks after it.
                idle = [s for s in slots if not s[2]]
                if not idle:
                    self._ready.extendleft(reversed(tasks[position:]))
                    break
                slot = idle[0]
            worker = slot[0]
            self._assign(worker, task)
            plan.setdefault(worker, []).append(task)
            slot[1] -= 1
            slot[2] += 1
            if slot[1] <= 0 or task.time_limit is not None:
                slots.remove(slot)
        return plan

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
