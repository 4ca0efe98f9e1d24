"""``multiprocessing.util``, served by procpar-core: the same names as ``procpar_core.util``."""

from procpar_core.util import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.util import __all__ as __all__
