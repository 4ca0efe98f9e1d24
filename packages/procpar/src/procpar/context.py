"""``multiprocessing.context``, served by procpar-core."""

from procpar_core.context import (
    AuthenticationError as AuthenticationError,
)
from procpar_core.context import (
    BaseContext as BaseContext,
)
from procpar_core.context import (
    BufferTooShort as BufferTooShort,
)
from procpar_core.context import (
    DefaultContext as DefaultContext,
)
from procpar_core.context import (
    ForkContext as ForkContext,
)
from procpar_core.context import (
    ForkProcess as ForkProcess,
)
from procpar_core.context import (
    ForkServerContext as ForkServerContext,
)
from procpar_core.context import (
    ForkServerProcess as ForkServerProcess,
)
from procpar_core.context import (
    Process as Process,
)
from procpar_core.context import (
    ProcessError as ProcessError,
)
from procpar_core.context import (
    SpawnContext as SpawnContext,
)
from procpar_core.context import (
    SpawnProcess as SpawnProcess,
)
from procpar_core.context import (
    TimeoutError as TimeoutError,
)
from procpar_core.context import (
    default_start_method as default_start_method,
)
from procpar_core.context import (
    make_family as make_family,
)

__all__ = [
    "BaseContext",
    "DefaultContext",
    "ForkContext",
    "SpawnContext",
    "ForkServerContext",
    "Process",
    "ForkProcess",
    "SpawnProcess",
    "ForkServerProcess",
    "default_start_method",
    "make_family",
    "ProcessError",
    "BufferTooShort",
    "TimeoutError",
    "AuthenticationError",
]
