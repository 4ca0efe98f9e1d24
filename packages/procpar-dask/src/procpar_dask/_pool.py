"""``Pool`` and ``Executor`` on a Dask cluster: procpar-pool's classes with the Dask engine under them."""

from __future__ import annotations

import sys

from procpar_pool import Executor as _LocalExecutor
from procpar_pool.pool import Pool as _LocalPool

from ._cluster import connect
from ._engine import DaskEngine

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from procpar_core.context import BaseContext
    from procpar_pool.engine import Engine

    from ._cluster import Connection

__all__ = ["Pool", "Executor"]


def _check_retries(retries: int) -> int:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be an int >= 0 (how many times a task whose worker died is re-run), not "
                         f"{retries!r}")
    return retries


class Pool(_LocalPool):
    """``multiprocessing.pool.Pool``'s API on a Dask cluster.

    ``cluster``: a ``distributed.Client``, a scheduler address (``"tcp://host:port"``), a cluster object
    (``LocalCluster``, dask-jobqueue's ``SLURMCluster``, dask-kubernetes' ``KubeCluster``, ...) or None, a
    ``LocalCluster`` of ``processes`` worker processes on this machine, closed with the pool. ``processes``
    with a cluster: how many tasks run at a time at most (default: every thread of the cluster, following
    workers as they join and leave). ``retries``: how many times a task whose worker died is run again
    before it fails with ``WorkerLostError``.
    """

    def __init__(self, cluster: object = None, processes: int | None = None,
                 initializer: Callable[..., object] | None = None, initargs: Iterable[object] = (),
                 maxtasksperchild: int | None = None, *, task_timeout: float | None = None,
                 progress: bool = False, retries: int = 0) -> None:
        if processes is not None and (not isinstance(processes, int) or processes < 1):
            raise ValueError("Number of processes must be at least 1")
        self._retries = _check_retries(retries)
        self._requested = processes
        self._connection: Connection = connect(cluster, processes)
        try:
            threads = sum(self._connection.threads().values())
            super().__init__(processes or max(threads, 1), initializer, initargs, maxtasksperchild,
                             task_timeout=task_timeout, progress=progress)
        except BaseException:
            self._connection.close()
            raise
        if progress:
            link = self._connection.dashboard()
            if link:
                print(f"procpar-dask: the Dask dashboard is at {link}", file=sys.stderr)

    def _make_engine(self, processes: int, *, initializer: Callable[..., object] | None,
                     initargs: tuple[object, ...], maxtasksperchild: int | None, context: BaseContext | None,
                     prefetch: int | None) -> Engine:
        return DaskEngine(self._connection, self._requested, initializer=initializer, initargs=initargs,
                          maxtasksperchild=maxtasksperchild, retries=self._retries)

    @property
    def client(self) -> object:
        """The ``distributed.Client`` the pool submits through."""
        return self._connection.client

    @property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard's address, None when the scheduler runs none."""
        return self._connection.dashboard()


class Executor(_LocalExecutor):
    """``concurrent.futures.ProcessPoolExecutor``'s API on a Dask cluster (``cluster`` as for ``Pool``)."""

    def __init__(self, cluster: object = None, max_workers: int | None = None,
                 initializer: Callable[..., object] | None = None, initargs: tuple[object, ...] = (), *,
                 max_tasks_per_child: int | None = None, task_timeout: float | None = None,
                 retries: int = 0) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        super().__init__(pool=Pool(cluster, max_workers, initializer, initargs, max_tasks_per_child,
                                   task_timeout=task_timeout, retries=retries))
