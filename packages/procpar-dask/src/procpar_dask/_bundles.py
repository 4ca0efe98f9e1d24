"""How many pool tasks go in one Dask task: pure policy, no I/O.

A Dask task costs milliseconds (scheduler round trips, a thread hop on the worker) where a local pool task
costs microseconds; ``client.map`` of 10,000 trivial calls takes ~30 s for that reason. So the engine puts
several pool tasks in one Dask task, a *bundle*, sized from the measured time per task of its job so that a
bundle runs about ``TARGET_SECONDS``. Until a job has a measurement, bundles double from one task (1, 2, 4,
...): a long task is never stuck behind others in one bundle, and short ones reach full size in a few rounds.
"""

from __future__ import annotations

__all__ = ["TARGET_SECONDS", "MAX_TASKS", "bundle_size", "updated_estimate"]

# Long enough that Dask's few milliseconds per task are a small share, short enough that the work still
# spreads over the workers and a death loses little.
TARGET_SECONDS = 0.05
MAX_TASKS = 4096


def bundle_size(estimate: float | None, sent: int) -> int:
    """Tasks for the next bundle of a job whose tasks take ``estimate`` seconds each (None: not measured yet),
    ``sent`` bundles of it having gone out."""
    if estimate is None:
        return 1 << min(sent, 12)
    if estimate <= TARGET_SECONDS / MAX_TASKS:
        return MAX_TASKS
    return max(1, min(MAX_TASKS, int(TARGET_SECONDS / estimate)))


def updated_estimate(estimate: float | None, seconds: float, tasks: int) -> float:
    """The per-task time after a bundle of ``tasks`` ran in ``seconds`` (a moving average: jobs change pace)."""
    measured = seconds / max(tasks, 1)
    return measured if estimate is None else 0.5 * estimate + 0.5 * measured
