"""``multiprocessing.resource_sharer``: lend a file descriptor to another process through a pickle."""

from ._resource_sharer import SharedFd, stop

DupFd = SharedFd  # the stdlib's name

__all__ = ["stop", "DupFd", "SharedFd"]
