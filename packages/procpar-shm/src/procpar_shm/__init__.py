"""procpar-shm: ctypes objects in shared memory, and named POSIX shared memory.

``Value``/``Array`` (with a lock) and ``RawValue``/``RawArray`` (without) live in a heap of anonymous shared
arenas that reach children by file descriptor under every start method. ``SharedMemory`` and
``ShareableList`` are named segments compatible with the stdlib's. Public submodules:
``procpar_shm.sharedctypes``, ``procpar_shm.shared_memory``, ``procpar_shm.heap``.
"""

from __future__ import annotations

from .__about__ import __version__ as __version__
from ._sharedctypes import Array as Array
from ._sharedctypes import RawArray as RawArray
from ._sharedctypes import RawValue as RawValue
from ._sharedctypes import Value as Value
from ._sharedctypes import copy as copy
from ._sharedctypes import synchronized as synchronized
from .shared_memory import ShareableList as ShareableList
from .shared_memory import SharedMemory as SharedMemory

__all__ = ["Value", "Array", "RawValue", "RawArray", "copy", "synchronized", "SharedMemory", "ShareableList"]
