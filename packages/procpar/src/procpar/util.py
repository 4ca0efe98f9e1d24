"""``multiprocessing.util``, served by procpar-core."""

from procpar_core.util import DEFAULT_LOGGING_FORMAT as DEFAULT_LOGGING_FORMAT
from procpar_core.util import LOGGER_NAME as LOGGER_NAME
from procpar_core.util import SUBDEBUG as SUBDEBUG
from procpar_core.util import SUBWARNING as SUBWARNING
from procpar_core.util import Finalize as Finalize
from procpar_core.util import ForkAwareLocal as ForkAwareLocal
from procpar_core.util import ForkAwareThreadLock as ForkAwareThreadLock
from procpar_core.util import _afterfork_registry as _afterfork_registry
from procpar_core.util import _cleanup_tests as _cleanup_tests
from procpar_core.util import _exit_function as _exit_function
from procpar_core.util import _finalizer_registry as _finalizer_registry
from procpar_core.util import _run_finalizers as _run_finalizers
from procpar_core.util import abstract_sockets_supported as abstract_sockets_supported
from procpar_core.util import close_all_fds_except as close_all_fds_except
from procpar_core.util import close_fds as close_fds
from procpar_core.util import debug as debug
from procpar_core.util import get_logger as get_logger
from procpar_core.util import get_temp_dir as get_temp_dir
from procpar_core.util import info as info
from procpar_core.util import is_exiting as is_exiting
from procpar_core.util import log_to_stderr as log_to_stderr
from procpar_core.util import register_after_fork as register_after_fork
from procpar_core.util import sub_debug as sub_debug
from procpar_core.util import sub_warning as sub_warning

__all__ = [
    "Finalize",
    "register_after_fork",
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
    "DEFAULT_LOGGING_FORMAT",
    "LOGGER_NAME",
    "ForkAwareThreadLock",
    "ForkAwareLocal",
    "close_all_fds_except",
    "close_fds",
    "abstract_sockets_supported",
]
