"""``multiprocessing.pool``: ``Pool``, ``ThreadPool``, ``AsyncResult`` and the other result types."""

from __future__ import annotations

from ._errors import MaybeEncodingError as MaybeEncodingError
from ._errors import MemoryLimitError as MemoryLimitError
from ._errors import PicklingFailedError as PicklingFailedError
from ._errors import PoolClosedError as PoolClosedError
from ._errors import RemoteTraceback as RemoteTraceback
from ._errors import TaskTimeoutError as TaskTimeoutError
from ._errors import TimeoutError as TimeoutError
from ._errors import WorkerLostError as WorkerLostError
from ._pool import Pool as Pool
from ._pool import ThreadPool as ThreadPool
from ._results import ApplyResult as ApplyResult
from ._results import AsyncResult as AsyncResult
from ._results import IMapIterator as IMapIterator
from ._results import IMapUnorderedIterator as IMapUnorderedIterator
from ._results import MapResult as MapResult
from ._task import PoolState as PoolState

RUN, CLOSE, TERMINATE = PoolState.RUN, PoolState.CLOSE, PoolState.TERMINATE

__all__ = ["Pool", "ThreadPool", "AsyncResult", "ApplyResult", "MapResult", "IMapIterator", "IMapUnorderedIterator",
           "RemoteTraceback", "MaybeEncodingError", "WorkerLostError", "MemoryLimitError", "TaskTimeoutError",
           "PicklingFailedError", "PoolClosedError", "TimeoutError", "RUN", "CLOSE", "TERMINATE", "PoolState"]
