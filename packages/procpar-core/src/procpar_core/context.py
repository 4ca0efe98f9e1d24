"""Context classes: the API bound to one start method."""

from ._context import (
    BaseContext,
    DefaultContext,
    ForkContext,
    ForkProcess,
    ForkServerContext,
    ForkServerProcess,
    Process,
    SpawnContext,
    SpawnProcess,
    default_start_method,
    make_family,
)
from ._errors import AuthenticationError, BufferTooShort, ProcessError, TimeoutError
from ._reduction import assert_spawning, get_spawning_popen, set_spawning_popen

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
    "get_spawning_popen",
    "set_spawning_popen",
    "assert_spawning",
]
