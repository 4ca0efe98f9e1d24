"""Queues shared between processes (``multiprocessing.queues``)."""

from ._queues import Empty, Full, JoinableQueue, Queue, SimpleQueue

__all__ = ["Queue", "SimpleQueue", "JoinableQueue", "Empty", "Full"]
