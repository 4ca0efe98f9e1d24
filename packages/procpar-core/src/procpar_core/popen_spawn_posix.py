"""``multiprocessing.popen_spawn_posix``: the ``Popen`` a process of this start method is started with."""

from ._popen_spawn import PopenSpawn

Popen = PopenSpawn

__all__ = ["Popen"]
