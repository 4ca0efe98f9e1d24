# mypy: disallow-untyped-calls=False
# (distributed is typed only in part)
"""What is Dask's own in procpar-dask: the clusters a pool accepts, the scheduler's re-runs turned off, a worker
killed from outside, retries, bundles, and workers that may start processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import cloudpickle
import distributed
import pytest

import procpar_dask
import procpar_pool
from procpar_dask._bundles import MAX_TASKS, TARGET_SECONDS, bundle_size, updated_estimate

pytestmark = pytest.mark.timeout(120)

# The external cluster's workers cannot import this test module: its functions travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def pid_then_wait(path: str) -> int:
    """Write this worker's pid to ``path``, then wait to be killed (at most a minute)."""
    with open(path + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(60)
    return os.getpid()


def die_the_first_time(marker: str) -> str:
    """Kill the worker unless ``marker`` exists (it is created just before): a task its first worker dies of."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return "survived"


def local_pool_in_a_worker(n: int) -> list[int]:
    with procpar_pool.Pool(1) as p:
        return p.map(abs, range(-n, 0))


def _wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


def test_a_worker_killed_from_outside_fails_its_task_with_its_address(pools: Any, tmp_path: Path) -> None:
    p = pools.pool(2)
    gate = tmp_path / "pid"
    r = p.apply_async(pid_then_wait, (str(gate),))
    os.kill(int(_wait_for(gate)), signal.SIGKILL)
    with pytest.raises(procpar_pool.WorkerLostError, match=r"Dask worker tcp://127\.0\.0\.1:\d+ .*died"):
        r.get(60)
    assert p.map(abs, [-1, -2]) == [1, 2]


def test_retries_run_a_task_again_after_its_worker_died(pools: Any, tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    with pools.pool(2, retries=1) as p:
        assert p.apply(die_the_first_time, (marker,)) == "survived"
    os.remove(marker)
    with pools.pool(2) as p, pytest.raises(procpar_pool.WorkerLostError):
        p.apply(die_the_first_time, (marker,))


def test_stats_count_per_dask_worker(pools: Any, cluster: Any) -> None:
    with pools.pool(2) as p:
        assert p.map(abs, range(-40, 0), chunksize=1) == list(range(40, 0, -1))
        stats = p.stats()
        line = p._engine.worker_line()
    addresses = set(cluster.worker_pids())
    assert stats.tasks == 40 and {w.address for w in stats.workers if w.tasks} <= addresses
    assert all(w.alive and w.pid is None for w in stats.workers) and stats.restarts == {}
    assert stats.working >= 0 and stats.shm_bytes_sent == 0
    assert str(stats).splitlines()[0].split()[:3] == ["worker", "address", "tasks"]
    assert all(part.rsplit(":", 1)[0] in {a.removeprefix("tcp://") for a in addresses} for part in line.split())
    p.join(60)
    assert all(w.exit_cause == "pool closed" for w in p.stats().workers)


def test_stats_count_a_worker_killed_from_outside_once(pools: Any, tmp_path: Path) -> None:
    p = pools.pool(2)
    gate = tmp_path / "pid"
    r = p.apply_async(pid_then_wait, (str(gate),))
    os.kill(int(_wait_for(gate)), signal.SIGKILL)
    with pytest.raises(procpar_pool.WorkerLostError):
        r.get(60)
    assert p.stats().restarts == {"died": 1}


def test_stats_count_the_restarts_the_pool_made(pools: Any) -> None:
    with pools.pool(2) as p:
        with pytest.raises(procpar_pool.TaskTimeoutError):
            p.apply(time.sleep, (60,), task_timeout=0.5)
        # The engine counts the restart as it ends the task, before it files the next result.
        assert p.apply(abs, (-2,)) == 2
        assert p.stats().restarts == {"time limit": 1}


def test_the_scheduler_does_not_rerun_a_task_behind_the_pools_back(pools: Any) -> None:
    with pools.pool(2) as p:
        assert p.apply(abs, (-1,)) == 1
        allowed = p.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    assert allowed == 0


def test_a_task_may_start_processes_on_a_worker(pools: Any) -> None:
    """Dask's workers are daemonic by default, and a daemonic process may not have children: the clusters here
    run theirs with distributed.worker.daemon=False, as the pool's own LocalCluster does."""
    with pools.pool(1) as p:
        assert p.apply(local_pool_in_a_worker, (3,)) == [3, 2, 1]


def test_the_dashboard_link_is_printed_when_the_scheduler_serves_one(cluster: Any,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The local cluster runs its dashboard (bokeh is installed for the tests), the external scheduler runs
    with --no-dashboard."""
    with procpar_dask.Pool(cluster.target, 1, progress=True) as p:
        link = p.dashboard_link
        assert p.map(abs, [-1]) == [1]
    err = capsys.readouterr().err
    if cluster.name == "local":
        assert link is not None and link.startswith("http://") and link.endswith("/status")
        assert f"the Dask dashboard is at {link}" in err
    else:
        assert link is None
        assert "dashboard" not in err


def test_the_default_is_a_local_cluster_the_pool_owns() -> None:
    with procpar_dask.Pool(processes=1) as p:
        client = p.client
        assert isinstance(client, distributed.Client)
        assert len(client.nthreads()) == 1
        assert p.map(abs, range(-50, 0)) == list(range(50, 0, -1))
    p.join(60)
    assert client.status == "closed"


def test_a_client_given_by_the_caller_stays_open(cluster: Any) -> None:
    if not isinstance(cluster.target, distributed.Client):
        pytest.skip("the local cluster is the one given as a Client")
    with procpar_dask.Pool(cluster.target, 1) as p:
        assert p.apply(abs, (-3,)) == 3
    p.join(60)
    assert cluster.target.status == "running"


def test_bad_arguments_say_what_is_wrong() -> None:
    with pytest.raises(TypeError, match=r"cluster must be a distributed\.Client, a scheduler address"):
        procpar_dask.Pool(42)
    with pytest.raises(ValueError, match=r"retries must be an int >= 0"):
        procpar_dask.Pool("tcp://127.0.0.1:1", retries=-1)
    with pytest.raises(ValueError, match="Number of processes must be at least 1"):
        procpar_dask.Pool("tcp://127.0.0.1:1", 0)
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        procpar_dask.Executor("tcp://127.0.0.1:1", 0)


def test_the_executor_on_a_cluster(pools: Any) -> None:
    with pools.executor(2) as ex:
        assert ex.submit(abs, -5).result(60) == 5
        assert list(ex.map(abs, range(-300, 0), chunksize=7)) == list(range(300, 0, -1))


def test_results_on_a_cluster_are_awaited_as_on_a_local_pool(pools: Any) -> None:
    import asyncio

    async def main(p: Any, ex: Any) -> tuple[int, list[int], list[int], int]:
        return (await p.apply_async(abs, (-3,)), await p.map_async(abs, [-1, -2]),
                [x async for x in p.imap(abs, [-4, -5])], await ex.submit(abs, -6))

    with pools.pool(2) as p, pools.executor(2) as ex:
        assert asyncio.run(main(p, ex)) == (3, [1, 2], [4, 5], 6)


def test_many_apply_async_calls_share_dask_tasks(pools: Any) -> None:
    """A flood of apply_async goes out in bundles, not one Dask task (milliseconds each) per call."""
    with pools.pool(2) as p:
        results = [p.apply_async(abs, (-i,)) for i in range(3000)]
        assert [r.get(60) for r in results] == list(range(3000))
        dask_tasks = p._engine._seq  # an itertools.count of the keys it submitted
        assert next(dask_tasks) < 1000


def test_bundles_start_small_and_grow_to_the_target_time() -> None:
    assert [bundle_size(None, sent) for sent in range(5)] == [1, 2, 4, 8, 16]
    assert bundle_size(None, 40) == MAX_TASKS
    assert bundle_size(1e-9, 3) == MAX_TASKS
    assert bundle_size(TARGET_SECONDS / 10, 3) == 10
    assert bundle_size(10.0, 3) == 1
    assert updated_estimate(None, 1.0, 4) == 0.25
    assert updated_estimate(0.25, 0.0, 4) == 0.125


@pytest.mark.timeout(240)
def test_the_documentation_example_of_scaling_out() -> None:
    import subprocess

    examples = Path(__file__).resolve().parents[3] / "docs" / "site" / "examples"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, str(examples / "scaling_out.py")], capture_output=True, text=True,
                          timeout=200, cwd=str(examples), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (examples / "scaling_out.out").read_text()
