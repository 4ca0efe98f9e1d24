"""The process pool's engine: one thread that feeds tasks to worker processes and collects their results.

Data flow of ``pool.map(f, items)`` (and of ``apply``, whose direct lane skips the engine's thread)::

    caller thread                       engine thread (_loop)                  worker process i
    -------------                       ---------------------                  ----------------
    Pool.map: cut chunks -> MapResult
    submit(job) --[lock]--> backlog ...
       | tries the mutex: hands out       poll(): wake pipe r, every worker's
       | the first tasks itself, or       sentinel, the sockets of workers
       | writes a byte to the wake pipe   holding its tasks
       v                                      |
    job.get() waits on the job's event        +--[mutex]-- replies read ------ socket i (its own pair) --+
       ^                                      |            (_protocol)                                   |
       |                                      +--[mutex]-- hand_out(): task messages --------------------+
       +---- job.set_outcome() (callbacks     |            (_handout, _encoding)          runs tasks, one
             run here, in the engine thread) -+--[mutex]-- sentinel: reap, requeue, replace  reply per task

    apply() direct lane: caller --[mutex]--> claims an idle worker, writes the task, then polls that worker's
    socket and sentinel itself and reads the reply under the mutex (CLAIMED: the engine does not watch it).

Who owns what:

* ``Backlog.lock`` guards the pool's state and the list of jobs (held briefly, by any thread).
* ``_mutex`` guards the workers' handles, their sockets' read-ahead stashes and the tasks set aside: held by
  the engine thread between two polls, by a submitting thread that hands out its job's first tasks, and by
  an ``apply()`` caller on its direct lane.
* ``WakePipe``'s own lock keeps a ``wake()`` from writing to the pipe while it is closed (``_wakeup``).
* The wake pipe and the worker sockets belong to the engine; a child forked from this process closes them
  (``_close_in_child``). Each worker's socket pair is made before the worker is forked, and its ``RunningTask``
  (which task it runs, in shared memory) is read when it dies.

What the loop does on each event:

* a result arrives: the task's job gets it (callbacks run here);
* a sentinel fires: the worker is gone. Results it sent before dying are collected; the task it was running
  fails with ``WorkerLostError`` naming the exit code or signal and its likely cause; the tasks it had not
  started go to another worker; a new worker takes its place and the pool goes on;
* a task runs past its time limit: its worker is killed and replaced, and that task alone fails;
* then idle capacity is filled (``_handout``).

Nothing waits forever: terminate() fails every unfinished task instead of leaving its result pending, and a
failure of the engine itself fails every job.
"""

from __future__ import annotations

import _thread
import select
import threading
import time
import warnings

from procpar_core.util import SIGNAL_SLICE, in_main_thread, is_exiting, register_after_fork
from procpar_sync.lowlevel import has_message, read_messages_stashed, spin_readable, write_messages

from ._backlog import Backlog
from ._encoding import TaskEncoder, drop_message, release
from ._errors import PoolClosedError, TaskTimeoutError
from ._fleet import WorkerFleet
from ._handle import WorkerState
from ._handout import hand_out
from ._protocol import INIT_FAILED, RETIRED, decode_reply
from ._scheduling import window_bonus
from ._task import PoolState
from ._wakeup import WakePipe
from ._worker import SPIN_SECONDS

TYPE_CHECKING = False
if TYPE_CHECKING:

    from procpar_core.context import BaseContext
    from procpar_core.process import BaseProcess

    from ._handle import WorkerHandle
    from ._stats import PoolStats
    from ._task import Task
    from ._typing import Function
    from .engine import TaskSource

__all__ = ["ProcessEngine"]

_POLLIN = select.POLLIN | select.POLLHUP | select.POLLERR
_SLICE_MS = int(SIGNAL_SLICE * 1000)
_RUN, _CLOSE, _TERMINATE = PoolState.RUN, PoolState.CLOSE, PoolState.TERMINATE
_GONE = WorkerState.GONE
# What a polled fd is (its kind in the poll map).
_WAKE, _SOCKET, _SENTINEL = 0, 1, 2


class ProcessEngine:
    """Runs a pool's tasks on worker processes (the ``procpar_pool.engine.Engine`` protocol)."""

    def __init__(self, ctx: BaseContext, processes: int, *, initializer: Function | None,
                 initargs: tuple[object, ...], maxtasksperchild: int | None, prefetch: int | None,
                 max_memory: int | None = None) -> None:
        self._prefetch = prefetch
        start_method = ctx.get_start_method()  # a method name: None only with allow_none
        assert start_method is not None
        self._backlog = Backlog()
        self._mutex = threading.Lock()
        self._state = _RUN
        self._broken: BaseException | None = None
        self._wakeup = WakePipe()
        self._watched: set[int] = set()  # worker sockets in the engine's poll set
        # Chunks an adaptive imap may read ahead beyond its window, to keep deep worker queues fed.
        self.window_bonus = 0
        self._fleet = WorkerFleet(ctx, initializer=initializer, initargs=initargs,
                                  maxtasksperchild=maxtasksperchild, max_memory=max_memory)
        self._encoder = TaskEncoder(start_method, self._fleet.shm_bytes)
        # A child forked from here (a worker, or any other process) must not hold the pool's fds: a worker
        # holding its siblings' sockets would never see end-of-file when the pool's process dies.
        register_after_fork(self, ProcessEngine._close_in_child)
        self._stopped = threading.Event()
        try:
            self._fleet.start(processes)
        except BaseException:
            self._wakeup.close()
            raise
        # Started after the workers, which so come from a process without another thread of ours (Python 3.12+
        # warns about forking a multi-threaded process). A bare thread: threading.Thread.start() waits until the
        # new thread runs, which just after forking (the new workers taking the CPUs) costs more than a fork.
        self._thread_ident = _thread.start_new_thread(self._run, ())

    # -- the Engine protocol (user threads) ------------------------------------------------------------------

    @property
    def workers(self) -> list[BaseProcess]:
        """The live workers' Process objects (the stdlib's ``Pool._pool``)."""
        return self._fleet.processes

    @property
    def state(self) -> PoolState:
        return self._state

    @state.setter
    def state(self, value: PoolState) -> None:
        with self._backlog.lock:
            self._state = PoolState(value)

    def submit(self, job: TaskSource) -> None:
        with self._backlog.lock:
            if self._state is not _RUN:
                raise ValueError("Pool not running")
            if self._broken is not None:
                raise self._broken
            self._backlog.add_locked(job)
        if self._mutex.acquire(False):
            try:
                self._fill()
                # The engine thread must start watching a worker that was idle, know of a new deadline, and hand
                # out what is left when no reply of a worker it watches is coming to wake it.
                needed = any(w.deadline is not None or (w.awaits_replies() and w.fd not in self._watched)
                             for w in self._fleet.workers)
                needed = needed or (not self._watched and self._backlog.pending())
            finally:
                self._mutex.release()
            if not needed:
                return
        self.wake()

    def call_direct(self, job: TaskSource) -> bool:
        """Run ``job`` (one task, no time limit) on an idle worker and wait for the reply in this thread.

        The engine thread only watches the sockets of workers holding its tasks, so the reply wakes this thread
        alone: no hand-off through the engine thread. False when the pool is busy or no worker is idle; the
        caller then submits the job as usual.
        """
        backlog = self._backlog
        if self._state is not _RUN or self._broken is not None or not backlog.empty():
            return False
        if not self._mutex.acquire(False):
            return False
        try:
            for worker in self._fleet.workers:
                if not worker.inflight and worker.accepts_work():
                    break
            else:
                return False
            if self._state is not _RUN:
                return False
            task = job.next_task()
            if task is None:
                return True
            data = self._encoder.encode(task)
            if data is None:
                return True  # it could not be pickled: the job holds that error already
            worker.claim()
            worker.assign([task])
            try:
                write_messages(worker.fd, [data], True)
            except OSError:
                pass  # it died: its sentinel fails the task
        finally:
            self._mutex.release()
        try:
            self._await_direct(worker, task)
        except KeyboardInterrupt:
            self.interrupted()
            raise
        finally:
            with self._mutex:
                worker.unclaim()
                # It still holds a task (this call was interrupted), work queued up meanwhile for lack of an
                # unclaimed worker, or the pool was closed and waits for this task to end: the engine takes over.
                wake = worker.awaits_replies() or backlog.pending() or self._state is not _RUN
            if wake:
                self.wake()
        return True

    def _await_direct(self, worker: WorkerHandle, task: Task) -> None:
        poller = select.poll()
        poller.register(worker.fd, _POLLIN)
        poller.register(worker.sentinel, select.POLLIN)
        # A short task's reply comes sooner than this thread could sleep and wake up: look for it first.
        readable = worker.service is not None and worker.service < SPIN_SECONDS
        readable = readable and spin_readable(worker.fd, SPIN_SECONDS)
        while True:
            with self._mutex:
                if task.id not in worker.inflight or worker.state is _GONE:
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
                return  # only its sentinel: it died, and the engine thread (which watches sentinels) fails the task

    def close(self) -> None:
        with self._backlog.lock:
            if self._state is _RUN:
                self._state = _CLOSE
        self.wake()

    def terminate(self) -> None:
        with self._backlog.lock:
            self._state = _TERMINATE
        self.wake()
        if threading.get_ident() != self._thread_ident:
            self._stopped.wait()

    def join(self, timeout: float | None = None) -> None:
        if self._state is _RUN:
            raise ValueError("Pool is still running")
        if threading.get_ident() != self._thread_ident:
            self._stopped.wait(timeout)

    def interrupted(self) -> None:
        """Ctrl-C in a thread waiting on a result: stop every worker."""
        self.terminate()

    def consumer_progress(self, job: TaskSource) -> None:
        self._wakeup.wake()  # an imap consumer made room: more of its iterable may be read

    def wake(self) -> None:
        """Make the engine thread look at everything again now."""
        self._wakeup.wake()

    def worker_line(self) -> str:
        """``progress="workers"``: tasks done per live worker, read without the mutex (a progress line may lag
        by a reply; it is drawn from the engine's thread, which may hold the mutex)."""
        return " ".join(f"{w.process.pid}:{w.tasks_done}" for w in list(self._fleet.workers))

    def stats(self) -> PoolStats:
        """``pool.stats()``: what the workers did so far."""
        with self._mutex:
            return self._fleet.stats()

    def warn_unclosed(self) -> None:
        if self._state is _RUN:
            warnings.warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, stacklevel=3)

    def _close_in_child(self) -> None:
        # Another thread of the parent may have held these at the fork; in the child nothing else runs here.
        self._backlog.lock = threading.Lock()
        self._mutex = threading.Lock()
        self._wakeup.close_in_child()
        self._fleet.close_in_child()

    # -- the loop (engine thread) ----------------------------------------------------------------------------

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
                    if self._fleet.changed:
                        poller, by_fd = self._new_poller()
                    self._watch(poller)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            import traceback
            traceback.print_exc()
            self._stop_all(RuntimeError(f"the pool's dispatcher failed: {exc!r}"))
        finally:
            self._wakeup.close()

    def _handle(self, events: list[tuple[int, int]], by_fd: dict[int, tuple[int, WorkerHandle | None]]) -> bool:
        """Act on what poll() reported, then hand out tasks; True when the pool has stopped."""
        workers = self._fleet.workers
        for fd, _ in events:
            kind, worker = by_fd.get(fd, (-1, None))
            if kind == _WAKE:
                self._wakeup.drain()
            elif worker is None or worker not in workers:
                continue
            elif kind == _SOCKET:
                if worker.awaits_replies():
                    self._read_available(worker)
            else:
                self._worker_exited(worker)
        self._expire_tasks()
        self._fleet.check_memory()
        state = self._state
        if state is _TERMINATE:
            self._stop_all(PoolClosedError("the pool was terminated before this task finished"))
            return True
        self._fill()
        if state is _CLOSE and self._all_done():
            self._fleet.stop()
            return True
        return False

    def _new_poller(self) -> tuple[select.poll, dict[int, tuple[int, WorkerHandle | None]]]:
        poller = select.poll()
        by_fd: dict[int, tuple[int, WorkerHandle | None]] = {self._wakeup.reader: (_WAKE, None)}
        poller.register(self._wakeup.reader, select.POLLIN)
        for worker in self._fleet.workers:
            by_fd[worker.fd] = (_SOCKET, worker)
            poller.register(worker.sentinel, select.POLLIN)
            by_fd[worker.sentinel] = (_SENTINEL, worker)
        self._watched = set()
        self._fleet.changed = False
        return poller, by_fd

    def _watch(self, poller: select.poll) -> None:
        """Poll the sockets of the workers holding the engine's tasks, and only those: an idle worker's death
        shows on its sentinel, and a claimed worker's reply is for the thread waiting on it."""
        for worker in self._fleet.workers:
            wanted = worker.awaits_replies()
            if wanted and worker.fd not in self._watched:
                poller.register(worker.fd, _POLLIN)
                self._watched.add(worker.fd)
            elif not wanted and worker.fd in self._watched:
                poller.unregister(worker.fd)
                self._watched.discard(worker.fd)

    def _poll_timeout_ms(self) -> int | None:
        deadline = self._fleet.next_deadline()
        if deadline is None:
            return None
        return max(0, int((deadline - time.monotonic()) * 1000) + 1)

    def _all_done(self) -> bool:
        return self._backlog.empty() and not any(w.inflight for w in self._fleet.workers)

    def _fill(self) -> None:
        if self._broken is not None:
            return
        workers = self._fleet.workers
        depths = [worker.depth(self._prefetch) for worker in workers]
        if self._prefetch is None:
            # Published before any job is asked for tasks: an imap reads ahead up to its window as it is then,
            # and its consumer wakes this thread only when it reopens the window it sees; a bonus raised after
            # the read would leave both waiting on each other.
            self.window_bonus = window_bonus(depths)
        hand_out(workers, depths, self._backlog, self._encoder)

    # -- results and deaths ----------------------------------------------------------------------------------

    def _read_available(self, worker: WorkerHandle) -> None:
        """Read the replies ``worker`` has sent (one read() usually brings several; at least one, waiting for
        it) and hand them to their jobs, each job once."""
        try:
            messages = read_messages_stashed(worker.fd, worker.stash, True)
        except (EOFError, OSError):
            worker.lost_socket()  # it is exiting; its sentinel says how
            self._fleet.changed = True
            return
        inflight = worker.inflight
        outcomes: list[tuple[Task, bool, object]] = []
        for message in messages:
            task_id, ok, value = decode_reply(message, self._fleet.shm_bytes)
            if task_id == INIT_FAILED:
                assert isinstance(value, BaseException)
                self._initializer_failed(value)
                continue
            if task_id == RETIRED:
                worker.stop_reason = "memory limit"
                worker.retire()  # over max_memory_per_child between tasks: it leaves, and is replaced
                continue
            task = inflight.pop(task_id, None)
            if task is None:
                continue
            release(task)
            outcomes.append((task, ok, value))
        if not outcomes:
            return
        worker.replied([task for task, _, _ in outcomes])
        start = 0
        while start < len(outcomes):
            job = outcomes[start][0].job
            end = start + 1
            while end < len(outcomes) and outcomes[end][0].job is job:
                end += 1
            if end - start == 1:
                task, ok, value = outcomes[start]
                job.set_outcome(task.index, ok, value)
            else:
                job.set_outcomes([(task.index, ok, value) for task, ok, value in outcomes[start:end]])
            start = end

    def _worker_exited(self, worker: WorkerHandle) -> None:
        # Collect what it managed to send before it went (results, or an initializer's failure, which an idle
        # worker sends while nobody watches its socket).
        while worker.state is not _GONE:
            if not has_message(worker.stash) and not select.select([worker.fd], [], [], 0)[0]:
                break
            self._read_available(worker)
        exitcode, running_id = self._fleet.reap(worker)
        if worker.inflight:
            # Only the task it was running dies with it; those it had not started go to another worker.
            running = worker.inflight.pop(running_id, None) if running_id is not None else None
            later = worker.take_all()
            if running is not None:
                release(running)
                running.job.set_outcome(running.index, False, self._fleet.lost_error(worker, exitcode))
            for task in later:
                drop_message(task)
            self._backlog.set_aside(later)
        state = self._state
        if state is not _TERMINATE and self._broken is None and (state is _RUN or not self._all_done()):
            if is_exiting():
                return  # the exit sequence is stopping this process's children: a new one would wait it out
            self._fleet.replace(worker.exit_cause)

    def _expire_tasks(self) -> None:
        for task in self._fleet.expire():
            release(task)
            task.job.set_outcome(task.index, False, TaskTimeoutError(
                f"the task ran longer than its time limit of {task.time_limit} s; its worker was stopped and "
                "replaced"))

    def _initializer_failed(self, exc: BaseException) -> None:
        broken = RuntimeError(f"the pool's initializer raised in a worker, so the pool cannot run tasks: {exc!r}")
        broken.__cause__ = exc
        with self._backlog.lock:
            self._broken = broken
            jobs = self._backlog.drain_jobs_locked()
        self._fail_everything(broken, jobs)

    # -- stopping --------------------------------------------------------------------------------------------

    def _stop_all(self, exc: BaseException) -> None:
        with self._backlog.lock:
            self._state = _TERMINATE
            jobs = self._backlog.drain_jobs_locked()
        self._fleet.kill()
        self._fail_everything(exc, jobs)
        for worker in list(self._fleet.workers):
            self._fleet.forget(worker)

    def _fail_everything(self, exc: BaseException, jobs: list[TaskSource]) -> None:
        failed: list[TaskSource] = []
        for worker in self._fleet.workers:
            for task in worker.take_all():
                release(task)
                failed.append(task.job)
        for task in self._backlog.drain_set_aside():
            release(task)
            failed.append(task.job)
        failed += jobs
        seen: set[int] = set()
        for job in failed:
            if id(job) not in seen:
                seen.add(id(job))
                job.fail_all(exc)
