"""``multiprocessing.popen_fork``, served by procpar-core: the same names as ``procpar_core.popen_fork``."""

from procpar_core.popen_fork import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.popen_fork import __all__ as __all__
