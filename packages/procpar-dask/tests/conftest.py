# mypy: disallow-untyped-calls=False
# (distributed is typed only in part)
"""procpar-dask's fixtures: the two clusters the tests run on, and the pools made on them.

* ``local``: a ``LocalCluster`` of two worker processes (one thread each) started in the test process, shared by
  the session, reached through one ``distributed.Client`` that the pools adopt;
* ``external``: a real ``dask scheduler`` and two ``dask worker`` processes started on 127.0.0.1 (port 0, a
  scheduler file), reached by the pools through its address, as a user's program reaches a cluster; stopped at
  the end of the session.

Both keep their workers under nannies, so a worker a test kills comes back; every test starts once both are back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import distributed
import pytest

import procpar_dask

WORKERS = 2
START_SECONDS = 90  # a loaded machine starts a Python process with distributed imported in seconds, not 0.5


class Cluster:
    """A running cluster: what a pool is given to reach it, and a client the fixtures use to watch it."""

    def __init__(self, name: str, target: object, client: distributed.Client) -> None:
        self.name = name
        self.target = target  # what Pool(cluster=...) is given: a Client or an address
        self.client = client

    def ready(self) -> None:
        """Both workers up, nothing of an earlier test still running on them."""
        self.client.wait_for_workers(WORKERS, timeout=START_SECONDS)
        deadline = time.monotonic() + START_SECONDS
        while True:
            processing = self.client.processing()
            if len(processing) >= WORKERS and not any(processing.values()):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {self.name} cluster still runs tasks of an earlier test: {processing}")
            time.sleep(0.05)

    def worker_pids(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.client.run(os.getpid).items()}


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[Cluster]:
    # A LocalCluster closes a nanny whose worker has been away for lost-worker-timeout (15 s) when the timer
    # fires: 15 s after one restart, it can fire in the middle of the next one (the tests restart workers every
    # second or so), and the cluster loses a worker for good. Set for the whole session: the timer reads it late.
    dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"})
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield Cluster("local", client, client)
    finally:
        client.close()
        cluster.close()


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


@pytest.fixture(scope="session")
def external_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    where = tmp_path_factory.mktemp("dask")
    scheduler_file = where / "scheduler.json"
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    dask_cli = [sys.executable, "-m", "dask"]
    with open(where / "cluster.log", "wb") as logs:
        processes = [subprocess.Popen([*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                       "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                      env=env, stdout=logs, stderr=subprocess.STDOUT)]
        try:
            _wait_for_file(scheduler_file, processes[0], where / "cluster.log")
            for n in range(WORKERS):
                processes.append(subprocess.Popen([*dask_cli, "worker", "--scheduler-file", str(scheduler_file),
                                                   "--nthreads", "1", "--name", f"external-{n}", "--host",
                                                   "127.0.0.1", "--no-dashboard"],
                                                  env=env, stdout=logs, stderr=subprocess.STDOUT))
            client = distributed.Client(scheduler_file=str(scheduler_file), set_as_default=False)
            try:
                yield Cluster("external", str(client.scheduler_info()["address"]), client)
            finally:
                client.close()
        finally:
            _stop(processes[1:])
            _stop(processes[:1])


def _wait_for_file(path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not path.exists() or not path.read_text().strip():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"dask scheduler did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)


@pytest.fixture(params=["local", "external"])
def cluster(request: pytest.FixtureRequest) -> Cluster:
    c: Cluster = request.getfixturevalue(f"{request.param}_cluster")
    c.ready()
    return c


class DaskPools:
    """The shared behaviour tests' ``PoolMaker`` for Dask pools on one cluster."""

    kind = "dask"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._made: list[Any] = []

    def pool(self, processes: int = 2, **kwargs: Any) -> procpar_dask.Pool:
        p = procpar_dask.Pool(self.cluster.target, processes, **kwargs)
        self._made.append(p)
        return p

    def executor(self, max_workers: int = 2, **kwargs: Any) -> procpar_dask.Executor:
        ex = procpar_dask.Executor(self.cluster.target, max_workers, **kwargs)
        self._made.append(ex)
        return ex

    def close(self) -> None:
        for made in self._made:
            with contextlib.suppress(Exception):
                if isinstance(made, procpar_dask.Pool):
                    made.terminate()
                else:
                    made.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def pools(cluster: Cluster) -> Iterator[DaskPools]:
    maker = DaskPools(cluster)
    try:
        yield maker
    finally:
        maker.close()


@pytest.fixture
def pool(pools: DaskPools) -> procpar_dask.Pool:
    return pools.pool(2)
