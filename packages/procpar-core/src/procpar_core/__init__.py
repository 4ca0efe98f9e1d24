"""procpar-core: processes, start methods, contexts, connections and serialisation.

The names mirror ``multiprocessing``'s; the module-level functions act on the default context.
Submodules: ``procpar_core.connection``, ``.context``, ``.process``, ``.reduction``, ``.util``.
"""

from __future__ import annotations

from .__about__ import __version__
from ._context import Process as Process
from ._context import _default_context
from ._errors import AuthenticationError as AuthenticationError
from ._errors import BufferTooShort as BufferTooShort
from ._errors import ProcessError as ProcessError
from ._errors import TimeoutError as TimeoutError
from ._process import active_children as active_children
from ._process import current_process as current_process
from ._process import parent_process as parent_process

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any

    from ._connection import Pipe as Pipe

__all__ = [
    "__version__",
    "Process",
    "current_process",
    "parent_process",
    "active_children",
    "cpu_count",
    "freeze_support",
    "Pipe",
    "get_context",
    "get_start_method",
    "set_start_method",
    "get_all_start_methods",
    "set_executable",
    "set_forkserver_preload",
    "get_logger",
    "log_to_stderr",
    "allow_connection_pickling",
    "set_serializer",
    "get_serializer",
    "ProcessError",
    "BufferTooShort",
    "TimeoutError",
    "AuthenticationError",
    "SUBDEBUG",
    "SUBWARNING",
]

SUBDEBUG = 5
SUBWARNING = 25

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


def __getattr__(name: str) -> Any:
    # Pipe lives in the connection module, which the spawn child's bootstrap does not need at import.
    if name == "Pipe":
        from ._connection import Pipe

        return Pipe
    raise AttributeError(f"module 'procpar_core' has no attribute {name!r}")
