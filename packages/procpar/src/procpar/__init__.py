"""procpar: the ``multiprocessing`` API, faster and harder to break.

``import procpar as multiprocessing`` gives the names and submodules of the stdlib package, served by the
procpar packages installed (procpar-core always; procpar-sync, -shm, -managers and -pool as they are present).
Importing this module is cheap: names load on first use.
"""

from __future__ import annotations

import importlib

from procpar_core import (
    AuthenticationError as AuthenticationError,
)
from procpar_core import (
    BufferTooShort as BufferTooShort,
)
from procpar_core import (
    Process as Process,
)
from procpar_core import (
    ProcessError as ProcessError,
)
from procpar_core import (
    TimeoutError as TimeoutError,
)
from procpar_core import (
    active_children as active_children,
)
from procpar_core import (
    current_process as current_process,
)
from procpar_core import (
    parent_process as parent_process,
)

from .__about__ import __version__ as __version__
from ._context import default_context as _default_context
from ._extensions import EXTENSIONS as _EXTENSIONS
from ._extensions import load as _load

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from procpar_core import Pipe as Pipe
    from procpar_managers import Manager as Manager
    from procpar_pool import Pool as Pool
    from procpar_pool import get_reusable_executor as get_reusable_executor
    from procpar_pool import get_reusable_pool as get_reusable_pool
    from procpar_shm import Array as Array
    from procpar_shm import RawArray as RawArray
    from procpar_shm import RawValue as RawValue
    from procpar_shm import Value as Value
    from procpar_sync import AbandonedLockWarning as AbandonedLockWarning
    from procpar_sync import Barrier as Barrier
    from procpar_sync import BoundedSemaphore as BoundedSemaphore
    from procpar_sync import Condition as Condition
    from procpar_sync import Event as Event
    from procpar_sync import JoinableQueue as JoinableQueue
    from procpar_sync import Lock as Lock
    from procpar_sync import Queue as Queue
    from procpar_sync import RLock as RLock
    from procpar_sync import Semaphore as Semaphore
    from procpar_sync import SimpleQueue as SimpleQueue
    from procpar_sync import get_owner_death_policy as get_owner_death_policy
    from procpar_sync import set_owner_death_policy as set_owner_death_policy

    from . import connection as connection
    from . import context as context
    from . import dummy as dummy
    from . import heap as heap
    from . import managers as managers
    from . import pool as pool
    from . import process as process
    from . import queues as queues
    from . import reduction as reduction
    from . import shared_memory as shared_memory
    from . import sharedctypes as sharedctypes
    from . import synchronize as synchronize
    from . import util as util
del TYPE_CHECKING  # not part of the API: check__all__-style tools would count it as a public name

__all__ = [
    "Array", "AuthenticationError", "Barrier", "BoundedSemaphore", "BufferTooShort", "Condition", "Event",
    "JoinableQueue", "Lock", "Manager", "Pipe", "Pool", "Process", "ProcessError", "Queue", "RLock",
    "RawArray", "RawValue", "Semaphore", "SimpleQueue", "TimeoutError", "Value", "active_children",
    "allow_connection_pickling", "cpu_count", "current_process", "freeze_support", "get_all_start_methods",
    "get_context", "get_logger", "get_start_method", "log_to_stderr", "parent_process", "reducer",
    "set_executable", "set_forkserver_preload", "set_start_method", "set_serializer", "get_serializer",
    "AbandonedLockWarning", "set_owner_death_policy", "get_owner_death_policy",
]

cpu_count = _default_context.cpu_count
freeze_support = _default_context.freeze_support
get_context = _default_context.get_context
get_start_method = _default_context.get_start_method
set_start_method = _default_context.set_start_method
get_all_start_methods = _default_context.get_all_start_methods
set_executable = _default_context.set_executable
set_forkserver_preload = _default_context.set_forkserver_preload
get_logger = _default_context.get_logger
log_to_stderr = _default_context.log_to_stderr
allow_connection_pickling = _default_context.allow_connection_pickling
set_serializer = _default_context.set_serializer
get_serializer = _default_context.get_serializer

_SUBMODULES = frozenset({"connection", "context", "process", "reduction", "util", "synchronize", "queues",
                         "forkserver", "spawn", "resource_sharer", "popen_fork", "popen_forkserver",
                         "popen_spawn_posix",
                         "resource_tracker", "sharedctypes", "shared_memory", "heap", "pool", "managers", "dummy"})


def __getattr__(name: str) -> Any:
    if name == "install":
        from ._install import install

        return install
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "Pipe":
        from procpar_core import Pipe

        return Pipe
    if name == "reducer":
        return _default_context.reducer
    if name in _EXTENSIONS:
        return _load(name)
    raise AttributeError(f"module 'procpar' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
