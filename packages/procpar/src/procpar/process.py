"""``multiprocessing.process``, served by procpar-core."""

from procpar_core.process import (
    ORIGINAL_DIR as ORIGINAL_DIR,
)
from procpar_core.process import (
    AuthenticationString as AuthenticationString,
)
from procpar_core.process import (
    BaseProcess as BaseProcess,
)
from procpar_core.process import (
    _cleanup as _cleanup,
)
from procpar_core.process import (
    _dangling as _dangling,
)
from procpar_core.process import (
    active_children as active_children,
)
from procpar_core.process import (
    current_process as current_process,
)
from procpar_core.process import (
    parent_process as parent_process,
)

__all__ = [
    "BaseProcess",
    "current_process",
    "parent_process",
    "active_children",
    "AuthenticationString",
    "ORIGINAL_DIR",
    "_cleanup",
    "_dangling",
]
