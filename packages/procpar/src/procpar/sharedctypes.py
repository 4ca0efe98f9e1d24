"""``multiprocessing.sharedctypes``, served by procpar-shm: the same names as ``procpar_shm.sharedctypes``."""

from procpar_shm.sharedctypes import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_shm.sharedctypes import __all__ as __all__
