"""``multiprocessing.forkserver``, served by procpar-core: the same names as ``procpar_core.forkserver``."""

from procpar_core.forkserver import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.forkserver import __all__ as __all__
