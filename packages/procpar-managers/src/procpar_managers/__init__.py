"""procpar-managers: server processes holding shared objects, and the proxies other processes use them by.

``Manager()`` gives a started ``SyncManager`` (shared ``list``, ``dict``, ``Namespace``, locks, queues, ...);
subclass ``BaseManager`` and ``register()`` your own types; ``SharedMemoryManager`` hands out shared memory
blocks that live as long as it does. Public submodule: ``procpar_managers.managers``.
"""

from __future__ import annotations

from .__about__ import __version__ as __version__
from ._manager import BaseManager as BaseManager
from ._protocol import ManagerNotStartedError as ManagerNotStartedError
from ._protocol import RemoteError as RemoteError
from ._proxy import BaseProxy as BaseProxy
from ._shared_memory import SharedMemoryManager as SharedMemoryManager
from ._sync import Manager as Manager
from ._sync import Namespace as Namespace
from ._sync import SyncManager as SyncManager

__all__ = ["Manager", "BaseManager", "SyncManager", "SharedMemoryManager", "BaseProxy", "Namespace",
           "RemoteError", "ManagerNotStartedError"]
