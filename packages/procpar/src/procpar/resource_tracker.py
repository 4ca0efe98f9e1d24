"""``multiprocessing.resource_tracker``, served by procpar-core: the same names as ``procpar_core.resource_tracker``."""

from procpar_core.resource_tracker import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.resource_tracker import __all__ as __all__
