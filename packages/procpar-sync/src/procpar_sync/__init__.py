"""procpar-sync: process-shared Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier and queues.

Every primitive rests on one compiled process-shared semaphore (``procpar_sync._psem``) in anonymous shared
memory passed by file descriptor. Public submodules: ``procpar_sync.synchronize`` and ``procpar_sync.queues``.
"""

from __future__ import annotations

from .__about__ import __version__ as __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._queues import Empty as Empty
    from ._queues import Full as Full
    from ._queues import JoinableQueue as JoinableQueue
    from ._queues import Queue as Queue
    from ._queues import SimpleQueue as SimpleQueue
    from ._synchronize import AbandonedLockWarning as AbandonedLockWarning
    from ._synchronize import Barrier as Barrier
    from ._synchronize import BoundedSemaphore as BoundedSemaphore
    from ._synchronize import BrokenBarrierError as BrokenBarrierError
    from ._synchronize import Condition as Condition
    from ._synchronize import Event as Event
    from ._synchronize import Lock as Lock
    from ._synchronize import RLock as RLock
    from ._synchronize import Semaphore as Semaphore
    from ._synchronize import get_owner_death_policy as get_owner_death_policy
    from ._synchronize import set_owner_death_policy as set_owner_death_policy

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
           "BrokenBarrierError", "Queue", "SimpleQueue", "JoinableQueue", "Empty", "Full", "AbandonedLockWarning",
           "set_owner_death_policy", "get_owner_death_policy"]

# Loaded on first use: procpar-pool needs only procpar_sync.lowlevel (the framing), and a program's first pool
# should not pay for the queues' and locks' modules (~5 ms) it does not use.
_QUEUES = frozenset({"Queue", "SimpleQueue", "JoinableQueue", "Empty", "Full"})


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module 'procpar_sync' has no attribute {name!r}")
    import importlib

    module = importlib.import_module("._queues" if name in _QUEUES else "._synchronize", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
