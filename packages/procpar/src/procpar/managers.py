"""``multiprocessing.managers``, served by procpar-managers: the same names as ``procpar_managers.managers``."""

from procpar_managers.managers import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_managers.managers import __all__ as __all__
