"""Helpers libraries build on: finalizers, after-fork hooks, the temp dir, logging shortcuts."""

from __future__ import annotations

import os
import sys
import threading

from ._log import (
    DEBUG,
    DEFAULT_LOGGING_FORMAT,
    INFO,
    LOGGER_NAME,
    NOTSET,
    SUBDEBUG,
    SUBWARNING,
    debug,
    get_logger,
    info,
    log_to_stderr,
    sub_debug,
    sub_warning,
)
from ._util import (
    SIGNAL_SLICE,
    Finalize,
    _afterfork_registry,
    _exit_function,
    _finalizer_registry,
    _run_finalizers,
    close_all_fds_except,
    close_fds,
    exiting_on_interrupt,
    get_temp_dir,
    in_main_thread,
    is_exiting,
    owned_name_prefix,
    process_alive,
    process_start_time,
    program_identity,
    register_after_fork,
    register_before_fork,
    track_folder,
    wait_in_slices,
    wait_process_exit,
)

try:
    MAXFD = os.sysconf("SC_OPEN_MAX")  # the stdlib's name: the highest file descriptor number, plus one
except (AttributeError, ValueError, OSError):
    MAXFD = 256

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Finalize",
    "register_after_fork",
    "register_before_fork",
    "get_temp_dir",
    "is_exiting",
    "get_logger",
    "log_to_stderr",
    "sub_debug",
    "debug",
    "info",
    "sub_warning",
    "SUBDEBUG",
    "SUBWARNING",
    "NOTSET",
    "DEBUG",
    "INFO",
    "MAXFD",
    "DEFAULT_LOGGING_FORMAT",
    "LOGGER_NAME",
    "ForkAwareThreadLock",
    "ForkAwareLocal",
    "close_all_fds_except",
    "close_fds",
    "SIGNAL_SLICE",
    "in_main_thread",
    "wait_in_slices",
    "exiting_on_interrupt",
    "process_start_time",
    "process_alive",
    "wait_process_exit",
    "program_identity",
    "owned_name_prefix",
    "track_folder",
]


class ForkAwareThreadLock:
    """A ``threading.Lock`` that a forked child gets back unlocked (a fresh one)."""

    def __init__(self) -> None:
        self._reset()
        register_after_fork(self, ForkAwareThreadLock._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *args: Any) -> None:
        self._lock.__exit__(*args)


class ForkAwareLocal(threading.local):
    """Thread-local storage that a forked child gets back empty."""

    def __init__(self) -> None:
        register_after_fork(self, lambda obj: obj.__dict__.clear())

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), ()


# Linux has the abstract unix-socket namespace (addresses starting with a NUL byte).
abstract_sockets_supported = sys.platform.startswith("linux")


def _cleanup_tests() -> None:
    """Used by CPython's test suite between test modules: stop the forkserver and the resource tracker this
    process started, then run and forget finalizers."""
    from ._forkserver import _forkserver
    from ._resource_tracker import _resource_tracker

    _forkserver._stop()
    _resource_tracker._stop()
    _run_finalizers(0)
    _run_finalizers()


__all__ += ["_exit_function", "_run_finalizers", "_cleanup_tests", "_finalizer_registry", "_afterfork_registry",
            "abstract_sockets_supported"]
