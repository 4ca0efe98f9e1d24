"""``multiprocessing.popen_spawn_posix``, served by procpar-core: the names of ``procpar_core.popen_spawn_posix``."""

from procpar_core.popen_spawn_posix import *  # noqa: F403 - the whole public face, as listed by its __all__
from procpar_core.popen_spawn_posix import __all__ as __all__
