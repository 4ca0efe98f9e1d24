"""``multiprocessing.pool``, served by procpar-pool: the same names as ``procpar_pool.pool``."""

from procpar_pool.pool import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_pool.pool import __all__ as __all__
