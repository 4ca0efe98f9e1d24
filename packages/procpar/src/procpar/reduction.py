"""``multiprocessing.reduction``, served by procpar-core: the same names as ``procpar_core.reduction``."""

from procpar_core.reduction import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.reduction import __all__ as __all__
