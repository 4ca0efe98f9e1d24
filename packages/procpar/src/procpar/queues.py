"""``multiprocessing.queues``, served by procpar-sync."""

from procpar_sync.queues import Empty as Empty
from procpar_sync.queues import Full as Full
from procpar_sync.queues import JoinableQueue as JoinableQueue
from procpar_sync.queues import Queue as Queue
from procpar_sync.queues import SimpleQueue as SimpleQueue

__all__ = ["Queue", "SimpleQueue", "JoinableQueue", "Empty", "Full"]
