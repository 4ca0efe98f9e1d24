"""``concurrent.futures.process`` under ``procpar.install()``: ``ProcessPoolExecutor`` is procpar's executor.

Its futures fail one by one with ``WorkerLostError`` when a worker dies (the pool goes on); code that catches
``BrokenProcessPool`` or ``concurrent.futures.BrokenExecutor`` for a pool that broke for good finds those
names here and never sees them raised for a dead worker.
"""

from __future__ import annotations

from concurrent.futures import BrokenExecutor

from procpar_pool import Executor

__all__ = ["ProcessPoolExecutor", "BrokenProcessPool"]

# What the stdlib's module offers besides the executor, for code that reads them.
EXTRA_QUEUED_CALLS = 1
_MAX_WINDOWS_WORKERS = 63 - 2


class BrokenProcessPool(BrokenExecutor):
    """The stdlib's name for a process pool that can no longer run anything."""


class ProcessPoolExecutor(Executor):
    """``concurrent.futures.ProcessPoolExecutor`` on procpar's pool (see ``procpar_pool.Executor``)."""


def _check_system_limits() -> None:
    """The stdlib checks the system's semaphore limits here; procpar's pool needs no named semaphore."""
