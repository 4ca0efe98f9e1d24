"""``multiprocessing.connection``, served by procpar-core: the same names as ``procpar_core.connection``."""

from procpar_core.connection import *  # noqa: F403 - the whole public face, as listed by its __all__

# The stdlib's private spellings, which its tests and some tools use: the same objects as the public names.
from procpar_core.connection import CHALLENGE as _CHALLENGE  # noqa: F401
from procpar_core.connection import FAILURE as _FAILURE  # noqa: F401
from procpar_core.connection import WELCOME as _WELCOME  # noqa: F401
from procpar_core.connection import __all__ as __all__
from procpar_core.connection import create_response as _create_response  # noqa: F401
from procpar_core.connection import verify_challenge as _verify_challenge  # noqa: F401
