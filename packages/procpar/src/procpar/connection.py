"""``multiprocessing.connection``, served by procpar-core: the same names as ``procpar_core.connection``."""

from procpar_core.connection import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.connection import (  # the stdlib's private spellings, which its tests and some tools use
    _CHALLENGE as _CHALLENGE,
)
from procpar_core.connection import (
    _FAILURE as _FAILURE,
)
from procpar_core.connection import (
    _WELCOME as _WELCOME,
)
from procpar_core.connection import __all__ as __all__
from procpar_core.connection import (
    _create_response as _create_response,
)
from procpar_core.connection import (
    _verify_challenge as _verify_challenge,
)
