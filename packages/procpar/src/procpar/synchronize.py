"""``multiprocessing.synchronize``, served by procpar-sync."""

from procpar_sync.synchronize import (
    SEM_VALUE_MAX as SEM_VALUE_MAX,
)
from procpar_sync.synchronize import (
    Barrier as Barrier,
)
from procpar_sync.synchronize import (
    BoundedSemaphore as BoundedSemaphore,
)
from procpar_sync.synchronize import (
    BrokenBarrierError as BrokenBarrierError,
)
from procpar_sync.synchronize import (
    Condition as Condition,
)
from procpar_sync.synchronize import (
    Event as Event,
)
from procpar_sync.synchronize import (
    Lock as Lock,
)
from procpar_sync.synchronize import (
    RLock as RLock,
)
from procpar_sync.synchronize import (
    Semaphore as Semaphore,
)
from procpar_sync.synchronize import (
    SemLock as SemLock,
)

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier", "SemLock",
           "BrokenBarrierError", "SEM_VALUE_MAX"]
