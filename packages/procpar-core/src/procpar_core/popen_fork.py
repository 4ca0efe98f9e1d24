"""``multiprocessing.popen_fork``: the ``Popen`` a process of this start method is started with."""

from ._popen_fork import PopenFork

Popen = PopenFork

__all__ = ["Popen"]
