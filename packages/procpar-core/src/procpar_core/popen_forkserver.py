"""``multiprocessing.popen_forkserver``: the ``Popen`` a process of this start method is started with."""

from ._popen_forkserver import PopenForkServer

Popen = PopenForkServer

__all__ = ["Popen"]
