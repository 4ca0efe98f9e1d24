"""procpar-pool: a process pool with the ``multiprocessing.pool`` API that never hangs on a dead worker.

``from procpar_pool import Pool`` is all a data-parallel program needs. Also ``ThreadPool``, and
``Executor`` for code written against ``concurrent.futures``, and ``get_reusable_pool``/``get_reusable_executor``
for one warm pool shared by every caller. Public submodule: ``procpar_pool.pool``.
"""

from __future__ import annotations

from .__about__ import __version__ as __version__
from ._errors import MaybeEncodingError as MaybeEncodingError
from ._errors import MemoryLimitError as MemoryLimitError
from ._errors import PicklingFailedError as PicklingFailedError
from ._errors import PoolClosedError as PoolClosedError
from ._errors import RemoteTraceback as RemoteTraceback
from ._errors import TaskTimeoutError as TaskTimeoutError
from ._errors import TimeoutError as TimeoutError
from ._errors import WorkerLostError as WorkerLostError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._executor import Executor as Executor
    from ._executor import Future as Future
    from ._pool import Pool as Pool
    from ._pool import ThreadPool as ThreadPool
    from ._results import AsyncResult as AsyncResult
    from ._reusable import ReusablePool as ReusablePool
    from ._reusable import get_reusable_executor as get_reusable_executor
    from ._reusable import get_reusable_pool as get_reusable_pool
    from ._stats import PoolStats as PoolStats
    from ._stats import WorkerStats as WorkerStats

# Loaded on first use: a worker process imports this package to reach its own module, and should not pay for
# the dispatcher, nor for concurrent.futures and logging (the Executor's), about 10 ms per spawned worker.
_LAZY = {"Pool": "._pool", "ThreadPool": "._pool", "Executor": "._executor", "Future": "._executor",
         "PoolStats": "._stats", "WorkerStats": "._stats", "AsyncResult": "._results",
         "get_reusable_pool": "._reusable", "get_reusable_executor": "._reusable", "ReusablePool": "._reusable"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'procpar_pool' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

__all__ = ["Pool", "ThreadPool", "Executor", "Future", "PoolStats", "WorkerStats", "AsyncResult",
           "get_reusable_pool", "get_reusable_executor",
           "ReusablePool", "TimeoutError", "WorkerLostError", "TaskTimeoutError",
           "PicklingFailedError", "MaybeEncodingError", "MemoryLimitError", "PoolClosedError", "RemoteTraceback"]
