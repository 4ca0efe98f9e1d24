"""``multiprocessing.process``, served by procpar-core: the same names as ``procpar_core.process``."""

from procpar_core.process import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.process import __all__ as __all__
