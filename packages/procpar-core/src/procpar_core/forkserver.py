"""``multiprocessing.forkserver``: the server that forks the children of the forkserver start method.

``_forkserver`` is the process's one server (its ``_forkserver_pid`` and ``_forkserver_address`` are the
stdlib's names, read by tests and tools).
"""

from ._forkserver import ForkServer, _forkserver, connect_to_new_process, ensure_running, set_forkserver_preload
from ._reduction import _inherited_fds

__all__ = ["ensure_running", "get_inherited_fds", "connect_to_new_process", "set_forkserver_preload", "ForkServer",
           "_forkserver"]


def get_inherited_fds() -> list[int] | None:
    """The file descriptors this forkserver (or spawn) child received with its process object, or None."""
    return list(_inherited_fds) or None
