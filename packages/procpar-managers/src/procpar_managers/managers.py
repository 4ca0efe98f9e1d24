"""The ``multiprocessing.managers`` API: managers, their server, proxies and the pieces custom ones need."""

from ._manager import BaseManager, State
from ._protocol import RemoteError, Token, convert_to_error, dispatch, listener_client
from ._proxy import (
    AcquirerProxy,
    ArrayProxy,
    AutoProxy,
    BarrierProxy,
    BaseListProxy,
    BasePoolProxy,
    BaseProxy,
    ConditionProxy,
    DictProxy,
    EventProxy,
    IteratorProxy,
    ListProxy,
    MakeProxyType,
    NamespaceProxy,
    PoolProxy,
    RebuildProxy,
    SetProxy,
    ValueProxy,
)
from ._server import Server, all_methods, public_methods
from ._shared_memory import SharedMemoryManager, SharedMemoryServer
from ._sync import Array, Namespace, SyncManager, Value

__all__ = [
    "BaseManager", "SyncManager", "BaseProxy", "Token", "SharedMemoryManager", "SharedMemoryServer",
    "Server", "State", "RemoteError", "Namespace", "Value", "Array", "AutoProxy", "MakeProxyType",
    "RebuildProxy", "IteratorProxy", "AcquirerProxy", "ConditionProxy", "EventProxy", "BarrierProxy",
    "NamespaceProxy", "ValueProxy", "BaseListProxy", "ListProxy", "DictProxy", "ArrayProxy", "BasePoolProxy",
    "PoolProxy", "SetProxy", "all_methods", "public_methods", "dispatch", "convert_to_error", "listener_client",
]
