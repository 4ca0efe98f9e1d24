"""``multiprocessing.spawn``, served by procpar-core: the same names as ``procpar_core.spawn``."""

from procpar_core.spawn import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.spawn import __all__ as __all__
