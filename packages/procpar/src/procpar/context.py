"""``multiprocessing.context``, served by procpar-core: the same names as ``procpar_core.context``."""

from procpar_core.context import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.context import __all__ as __all__
