"""``multiprocessing.connection``, served by procpar-core: the same names as ``procpar_core.connection``."""

from procpar_core.connection import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.connection import __all__ as __all__
