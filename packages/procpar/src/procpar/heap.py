"""``multiprocessing.heap``, served by procpar-shm: the same names as ``procpar_shm.heap``."""

from procpar_shm.heap import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_shm.heap import __all__ as __all__
