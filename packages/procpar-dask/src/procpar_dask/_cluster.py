"""Which Dask cluster a pool runs on, and what the pool owns of it.

``cluster`` may be a ``distributed.Client`` (the caller's: left open), a scheduler address such as
``"tcp://10.0.0.5:8786"`` or a cluster object (``LocalCluster``, dask-jobqueue's, dask-kubernetes'...: anything
with a ``scheduler_address``), for which the pool opens its own client, or None: a ``LocalCluster`` of
processes on this machine, started for the pool and closed with it.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from typing import cast

import dask.config
import distributed

from . import _remote

__all__ = ["Connection", "connect"]


class Connection:
    """A client, and whether the pool must close it (and its cluster) when it stops."""

    def __init__(self, client: distributed.Client, owns_client: bool,
                 cluster: distributed.LocalCluster | None) -> None:
        self.client = client
        self.owns_client = owns_client
        self.cluster = cluster  # started by the pool

    def threads(self) -> dict[str, int]:
        """Worker address -> its threads, as the scheduler sees them now."""
        nthreads = cast("dict[str, int]", self.client.nthreads())  # a sync client's answer, not a coroutine
        return {str(address): int(n) for address, n in nthreads.items()}

    def dashboard(self) -> str | None:
        """The dashboard's address, when the scheduler serves one. Its HTTP server runs without the dashboard
        too (no bokeh, ``--no-dashboard``: health checks and metrics only), so the page itself is asked for."""
        try:
            if "dashboard" not in self.client.scheduler_info().get("services", {}):
                return None
            link = str(self.client.dashboard_link)
            with urllib.request.urlopen(link, timeout=5) as page:
                return link if page.status == 200 else None
        except Exception:
            return None

    def close(self) -> None:
        if self.owns_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _local_cluster(processes: int | None) -> Connection:
    # A task may start processes of its own (a worker running a local procpar pool): workers not daemonic.
    # No task is re-run elsewhere behind the pool's back when a worker dies: allowed-failures 0.
    with dask.config.set({"distributed.worker.daemon": False, "distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(n_workers=processes or os.cpu_count() or 1, threads_per_worker=1,
                                           processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
    try:
        client = distributed.Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return Connection(client, True, cluster)


def connect(cluster: object, processes: int | None) -> Connection:
    """Open (or adopt) the cluster; its scheduler then fails a task at its worker's first death, which the
    pool reports (and re-runs only when asked to, with ``retries``)."""
    if cluster is None:
        connection = _local_cluster(processes)
    elif isinstance(cluster, distributed.Client):
        connection = Connection(cluster, False, None)
    elif isinstance(cluster, str) or hasattr(cluster, "scheduler_address"):
        connection = Connection(distributed.Client(cluster, set_as_default=False), True, None)
    else:
        raise TypeError(f"cluster must be a distributed.Client, a scheduler address ('tcp://host:port'), a Dask "
                        f"cluster object or None (a LocalCluster on this machine), not {type(cluster).__name__}")
    try:
        connection.client.run_on_scheduler(_remote.set_allowed_failures, 0)
    except BaseException:
        connection.close()
        raise
    return connection
