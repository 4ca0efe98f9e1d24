"""Synchronisation primitives shared between processes (``multiprocessing.synchronize``)."""

from ._synchronize import (
    SEM_VALUE_MAX,
    Barrier,
    BoundedSemaphore,
    BrokenBarrierError,
    Condition,
    Event,
    Lock,
    RLock,
    Semaphore,
    SemLock,
)

__all__ = ["Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier", "SemLock",
           "BrokenBarrierError", "SEM_VALUE_MAX"]
