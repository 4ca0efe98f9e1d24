"""``multiprocessing.synchronize``, served by procpar-sync: the same names as ``procpar_sync.synchronize``."""

from procpar_sync.synchronize import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_sync.synchronize import __all__ as __all__
