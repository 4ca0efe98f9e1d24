"""``multiprocessing.resource_sharer``, served by procpar-core: the same names as ``procpar_core.resource_sharer``."""

from procpar_core.resource_sharer import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.resource_sharer import __all__ as __all__
