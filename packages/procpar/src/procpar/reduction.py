"""``multiprocessing.reduction``, served by procpar-core."""

from procpar_core.reduction import (
    HAVE_SEND_HANDLE as HAVE_SEND_HANDLE,
)
from procpar_core.reduction import (
    HIGHEST_PROTOCOL as HIGHEST_PROTOCOL,
)
from procpar_core.reduction import (
    DupFd as DupFd,
)
from procpar_core.reduction import (
    ForkingPickler as ForkingPickler,
)
from procpar_core.reduction import (
    assert_spawning as assert_spawning,
)
from procpar_core.reduction import (
    dump as dump,
)
from procpar_core.reduction import (
    dumps as dumps,
)
from procpar_core.reduction import (
    loads as loads,
)
from procpar_core.reduction import (
    recv_handle as recv_handle,
)
from procpar_core.reduction import (
    recvfds as recvfds,
)
from procpar_core.reduction import (
    register as register,
)
from procpar_core.reduction import (
    send_handle as send_handle,
)
from procpar_core.reduction import (
    sendfds as sendfds,
)

__all__ = [
    "ForkingPickler",
    "register",
    "dump",
    "dumps",
    "loads",
    "DupFd",
    "send_handle",
    "recv_handle",
    "sendfds",
    "recvfds",
    "assert_spawning",
    "HAVE_SEND_HANDLE",
    "HIGHEST_PROTOCOL",
]
