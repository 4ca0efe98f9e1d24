"""``multiprocessing.queues``, served by procpar-sync: the same names as ``procpar_sync.queues``."""

from procpar_sync.queues import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_sync.queues import __all__ as __all__
