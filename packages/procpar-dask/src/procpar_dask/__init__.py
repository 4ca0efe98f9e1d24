"""procpar-dask: procpar's ``Pool`` and ``Executor`` on a Dask cluster.

``Pool(2)`` becomes ``procpar_dask.Pool(cluster)``: the same API and semantics (every call runs, a dead worker
fails what it held with ``WorkerLostError``, callbacks run in the caller), tasks cut into bundles large enough
that Dask's per-task cost does not dominate.
"""

from __future__ import annotations

from procpar_pool import PoolClosedError as PoolClosedError
from procpar_pool import TaskTimeoutError as TaskTimeoutError
from procpar_pool import WorkerLostError as WorkerLostError

from .__about__ import __version__ as __version__
from ._pool import Executor as Executor
from ._pool import Pool as Pool

__all__ = ["Pool", "Executor", "WorkerLostError", "TaskTimeoutError", "PoolClosedError"]
