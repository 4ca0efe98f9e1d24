"""``multiprocessing.popen_forkserver``, served by procpar-core: the same names as ``procpar_core.popen_forkserver``."""

from procpar_core.popen_forkserver import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.popen_forkserver import __all__ as __all__
