"""Proxies: objects that forward method calls to a referent held by a manager's server.

Reference counting (see docs/design.md, section 10): a proxy made from ``create`` or from a ``#PROXY`` reply
takes over the reference the server counted for it; a proxy unpickled in another process, or carried into a
forked child, adds one; a proxy that is collected releases its own.
"""

from __future__ import annotations

import collections.abc
import os
import threading
import weakref
from types import GenericAlias
from typing import TYPE_CHECKING, Callable, ClassVar

from procpar_core import current_process, util
from procpar_core.context import get_spawning_popen
from procpar_core.process import AuthenticationString

from . import _connections
from ._protocol import PROXY, RETURN, TRACEBACK, Token, convert_to_error, normalize_address, server_gone, unpack_reply
from ._server import local_server

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._manager import BaseManager
    from ._typing import Address, Function, MessageConnection, ProxyFactory

__all__ = ["BaseProxy", "RebuildProxy", "AutoProxy", "MakeProxyType", "register_proxytype"]

# typeid -> proxy type, from every manager class registered in this process: how a proxy that arrived
# without its manager builds the proxies its methods return.
_proxytypes: dict[str, ProxyFactory] = {}
# Proxies alive in this process (forked children re-count theirs).
_live: weakref.WeakSet[BaseProxy] = weakref.WeakSet()


def register_proxytype(typeid: str, proxytype: ProxyFactory) -> None:
    _proxytypes.setdefault(typeid, proxytype)


class BaseProxy:
    """Base class of proxies: ``_callmethod`` runs a method of the referent in the manager's server."""

    _exposed_: ClassVar[tuple[str, ...] | None] = None
    _method_to_typeid_: ClassVar[dict[str, str] | None] = None

    def __init__(self, token: Token, serializer: str, manager: BaseManager | None = None,
                 authkey: bytes | None = None, exposed: Iterable[str] | None = None, incref: bool = True,
                 manager_owned: bool = False) -> None:
        self._token = token
        self._id = token.id
        self._serializer = serializer
        self._manager = manager
        if authkey is not None:
            self._authkey = AuthenticationString(authkey)
        elif manager is not None:
            self._authkey = AuthenticationString(manager._authkey)
        else:
            known = _connections.known_authkey(token.address)
            self._authkey = AuthenticationString(known if known is not None else current_process().authkey)
        self._owned_by_server = manager_owned
        self._close: util.Finalize | None = None
        self._owner_pid = 0
        self._exposed_cache = None if exposed is None else tuple(exposed)
        _live.add(self)
        if incref:
            self._incref()

    # -- references ---------------------------------------------------------------------------------------

    def _incref(self) -> None:
        """Count one more reference to the referent, released when this proxy is collected."""
        self._count_reference()
        self._own()

    def _count_reference(self) -> None:
        """One more reference in the server's count: in its table when it runs here, else by a call."""
        if self._owned_by_server:
            server = local_server(normalize_address(self._token.address))
            if server is not None:
                server.incref(self._id)
                return
            self._owned_by_server = False
        _connections.control_call(self._token.address, self._serializer, self._authkey, "incref", (self._id,))

    def _own(self) -> None:
        """This proxy holds one counted reference: release it when the proxy goes."""
        if self._close is not None:
            return
        self._owner_pid = os.getpid()
        token = self._token
        if self._owned_by_server:
            server = local_server(normalize_address(token.address))
            if server is not None:
                self._close = util.Finalize(self, server.decref_soon, args=(self._id,))
                return
        self._close = util.Finalize(self, _connections.queue_decref,
                                    args=(token.address, self._serializer, bytes(self._authkey), self._id),
                                    exitpriority=10)

    def _decref(self) -> None:
        """Release this proxy's reference now (it must not be used afterwards)."""
        close, self._close = self._close, None
        if close is not None:
            close()

    def _after_fork(self) -> None:
        self._manager = None
        self._close = None  # the parent's finalizers were dropped at the fork

    # -- calls --------------------------------------------------------------------------------------------

    def _connection(self) -> MessageConnection:
        return _connections.thread_connection(self._token.address, self._serializer, self._authkey)

    def _callmethod(self, methodname: str, args: tuple[object, ...] = (),
                    kwds: dict[str, object] | None = None) -> object:
        """Call ``methodname`` of the referent with ``args``/``kwds`` in the server; return its result."""
        _connections.flush_decrefs()
        conn = self._connection()
        try:
            conn.send((self._id, methodname, args, kwds or {}))
            kind, result = unpack_reply(_connections.recv_reply(conn))
        except (EOFError, ConnectionError) as exc:
            _connections.drop_thread_connection(self._token.address, self._serializer)
            raise server_gone(exc, self._token.address, f"{self._token.typeid}.{methodname}()") from exc
        except BaseException:
            # An interrupted or failed call may leave a reply in flight: this connection is spent.
            _connections.drop_thread_connection(self._token.address, self._serializer)
            raise
        if kind == RETURN:
            return result
        if kind == PROXY:
            if not isinstance(result, (tuple, list)) or len(result) != 3:
                raise convert_to_error(TRACEBACK, f"a new shared object's reply is not (exposed, typeid, ident): "
                                                  f"{result!r:.200}")
            exposed, typeid, ident = result
            return self._proxy_for(Token(typeid, self._token.address, ident), exposed)
        try:
            raise convert_to_error(kind, result)
        finally:
            del result  # the raised error's traceback holds this frame: no cycle through the error itself

    def _proxy_for(self, token: Token, exposed: Iterable[str] | None) -> BaseProxy:
        """A proxy that takes over the reference a ``#PROXY`` reply carries."""
        proxytype: ProxyFactory | None = None
        if self._manager is not None:
            entry = self._manager._registry.get(token.typeid)
            proxytype = entry[-1] if entry is not None else None
        if proxytype is None:
            proxytype = _proxytypes.get(token.typeid, AutoProxy)
        proxy = proxytype(token, self._serializer, manager=self._manager, authkey=self._authkey,
                          exposed=exposed, incref=False)
        proxy._own()
        return proxy

    def _getvalue(self) -> object:
        """A copy of the referent."""
        return self._callmethod("#GETVALUE")

    # -- pickling, display --------------------------------------------------------------------------------

    def __reduce__(self) -> tuple[Function, tuple[ProxyFactory, Token, str, dict[str, object]]]:
        kwds: dict[str, object] = {}
        if get_spawning_popen() is not None:
            kwds["authkey"] = self._authkey
            if self._close is not None:
                # The child is sure to unpickle this once: count its reference now, before this process can
                # let go of its own (Process.start() drops its arguments as soon as the child is launched).
                self._count_reference()
                kwds["_handed"] = True
        if getattr(self, "_isauto", False):
            kwds["exposed"] = self._exposed_
            return (RebuildProxy, (AutoProxy, self._token, self._serializer, kwds))
        return (RebuildProxy, (type(self), self._token, self._serializer, kwds))

    def __deepcopy__(self, memo: object) -> object:
        return self._getvalue()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object, typeid {self._token.typeid!r} at {id(self):#x}>"

    def __str__(self) -> str:
        """The representation of the referent."""
        try:
            return str(self._callmethod("__repr__"))
        except Exception:
            return repr(self)[:-1] + "; '__str__()' failed>"


def RebuildProxy(func: ProxyFactory, token: Token, serializer: str, kwds: dict[str, object]) -> BaseProxy:
    """Unpickle a proxy: in the server that holds its referent it counts in the table, elsewhere over a call."""
    server = local_server(normalize_address(token.address))
    if server is not None:
        kwds["manager_owned"] = True
    if kwds.pop("_handed", False):
        # The parent counted this reference for us while it pickled the proxy.
        proxy = func(token, serializer, incref=False, **kwds)
        proxy._own()
        return proxy
    kwds.setdefault("incref", True)
    return func(token, serializer, **kwds)


# References counted by the parent for the child it is about to fork: (server key) -> idents, one per proxy.
_handed_to_child: dict[tuple[Address, str, bytes], list[str]] = {}


def _server_key(proxy: BaseProxy) -> tuple[Address, str, bytes]:
    return (normalize_address(proxy._token.address), proxy._serializer, bytes(proxy._authkey))


def _before_fork(_: object = None) -> None:
    """Count, in the parent, one reference per live proxy for the child about to be forked.

    Counting in the child would race with the parent letting go of its proxy right after ``start()``.
    """
    _handed_to_child.clear()
    by_server: dict[tuple[Address, str, bytes], list[BaseProxy]] = {}
    for proxy in list(_live):
        if proxy._close is not None and proxy._close.still_active():
            by_server.setdefault(_server_key(proxy), []).append(proxy)
    for key, proxies in by_server.items():
        idents = [p._id for p in proxies]
        server = local_server(key[0])
        try:
            if server is not None:
                missing = set(server.incref_many(idents))
            else:
                answer = _connections.control_call(key[0], key[1], key[2], "incref_many", (idents,))
                missing = set(answer) if isinstance(answer, list) else set()
        except Exception as exc:
            util.info("could not count the proxies of the manager at %r for a child: %s", key[0], exc)
            continue
        _handed_to_child[key] = [ident for ident in idents if ident not in missing]


def _after_fork_in_child(_: object = None) -> None:
    """The forked child takes over the references its parent counted for it."""
    handed = {key: list(idents) for key, idents in _handed_to_child.items()}
    _handed_to_child.clear()
    pid = os.getpid()
    for proxy in list(_live):
        if proxy._close is not None and proxy._owner_pid == pid:
            # Made in this process before its bootstrap dropped every finalizer (a forkserver child unpickles
            # its arguments first): it holds its reference already, only its finalizer needs registering again.
            proxy._close = None
            proxy._own()
            continue
        proxy._after_fork()
        proxy._owned_by_server = False
        idents = handed.get(_server_key(proxy))
        if idents and proxy._id in idents:
            idents.remove(proxy._id)
            proxy._own()


def _after_fork_in_parent(_: object = None) -> None:
    _handed_to_child.clear()


class _AfterForkAnchor:
    pass


_anchor = _AfterForkAnchor()
util.register_before_fork(_anchor, _before_fork)
util.register_after_fork(_anchor, _after_fork_in_child)


# -- proxies built from a list of methods ----------------------------------------------------------------

_type_cache: dict[tuple[str, tuple[str, ...]], type[BaseProxy]] = {}
_type_cache_lock = threading.Lock()


def _forwarder(name: str) -> Function:
    def method(self: BaseProxy, /, *args: object, **kwds: object) -> object:
        return self._callmethod(name, args, kwds)

    method.__name__ = name
    method.__qualname__ = name
    return method


def MakeProxyType(name: str, exposed: Iterable[str],
                  _cache: dict[tuple[str, tuple[str, ...]], type[BaseProxy]] | None = None) -> type[BaseProxy]:
    """A ``BaseProxy`` subclass called ``name`` with one forwarding method per name in ``exposed``."""
    exposed = tuple(exposed)
    cache = _type_cache if _cache is None else _cache
    with _type_cache_lock:
        try:
            return cache[(name, exposed)]
        except KeyError:
            pass
        namespace: dict[str, object] = {"_exposed_": exposed}
        for meth in exposed:
            namespace[meth] = _forwarder(meth)
        proxytype = type(name, (BaseProxy,), namespace)
        cache[(name, exposed)] = proxytype
        return proxytype


def AutoProxy(token: Token, serializer: str, manager: BaseManager | None = None, authkey: bytes | None = None,
              exposed: Iterable[str] | None = None, incref: bool = True, manager_owned: bool = False) -> BaseProxy:
    """A proxy whose methods are the referent's exposed ones (asked of the server when not known)."""
    if exposed is None:
        if authkey is None:
            authkey = manager._authkey if manager is not None else (
                _connections.known_authkey(token.address) or current_process().authkey)
        methods = _connections.control_call(token.address, serializer, authkey, "get_methods", (token.id,))
        if not isinstance(methods, (tuple, list)):
            raise TypeError(f"the manager sent {methods!r:.200} as the methods of {token.typeid!r}")
        exposed = [str(name) for name in methods]
    proxytype = MakeProxyType(f"AutoProxy[{token.typeid}]", exposed)
    proxy = proxytype(token, serializer, manager=manager, authkey=authkey, incref=incref,
                      manager_owned=manager_owned)
    proxy._isauto = True  # type: ignore[attr-defined]
    return proxy


# -- the proxy types the stdlib documents ------------------------------------------------------------------

class IteratorProxy(BaseProxy):
    _exposed_ = ("__next__", "send", "throw", "close")

    def __iter__(self) -> IteratorProxy:
        return self

    def __next__(self, *args: object) -> object:
        return self._callmethod("__next__", args)

    def send(self, *args: object) -> object:
        return self._callmethod("send", args)

    def throw(self, *args: object) -> object:
        return self._callmethod("throw", args)

    def close(self, *args: object) -> object:
        return self._callmethod("close", args)


class AcquirerProxy(BaseProxy):
    _exposed_: ClassVar[tuple[str, ...] | None] = ("acquire", "release")

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        args = (blocking,) if timeout is None else (blocking, timeout)
        return bool(self._callmethod("acquire", args))

    def release(self) -> None:
        self._callmethod("release")

    def __enter__(self) -> bool:
        return bool(self._callmethod("acquire"))

    def __exit__(self, *exc_info: object) -> None:
        self._callmethod("release")


class ConditionProxy(AcquirerProxy):
    _exposed_ = ("acquire", "release", "wait", "notify", "notify_all")

    def wait(self, timeout: float | None = None) -> object:
        return self._callmethod("wait", (timeout,))

    def notify(self, n: int = 1) -> object:
        return self._callmethod("notify", (n,))

    def notify_all(self) -> object:
        return self._callmethod("notify_all")

    def wait_for(self, predicate: Callable[[], object], timeout: float | None = None) -> object:
        # The predicate runs here, in the caller's process, between waits in the server.
        import time

        result = predicate()
        if result:
            return result
        endtime = None if timeout is None else time.monotonic() + timeout
        waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class EventProxy(BaseProxy):
    _exposed_ = ("is_set", "set", "clear", "wait")

    def is_set(self) -> object:
        return self._callmethod("is_set")

    def set(self) -> object:
        return self._callmethod("set")

    def clear(self) -> object:
        return self._callmethod("clear")

    def wait(self, timeout: float | None = None) -> object:
        return self._callmethod("wait", (timeout,))


class BarrierProxy(BaseProxy):
    _exposed_ = ("__getattribute__", "wait", "abort", "reset")

    def wait(self, timeout: float | None = None) -> object:
        return self._callmethod("wait", (timeout,))

    def abort(self) -> object:
        return self._callmethod("abort")

    def reset(self) -> object:
        return self._callmethod("reset")

    @property
    def parties(self) -> object:
        return self._callmethod("__getattribute__", ("parties",))

    @property
    def n_waiting(self) -> object:
        return self._callmethod("__getattribute__", ("n_waiting",))

    @property
    def broken(self) -> object:
        return self._callmethod("__getattribute__", ("broken",))


class NamespaceProxy(BaseProxy):
    """Attributes not starting with ``_`` live in the referent; the others are the proxy's own."""

    _exposed_ = ("__getattribute__", "__setattr__", "__delattr__")

    def __getattr__(self, key: str) -> object:
        if key[0] == "_":
            return object.__getattribute__(self, key)
        return object.__getattribute__(self, "_callmethod")("__getattribute__", (key,))

    def __setattr__(self, key: str, value: object) -> None:
        if key[0] == "_":
            object.__setattr__(self, key, value)
            return
        object.__getattribute__(self, "_callmethod")("__setattr__", (key, value))

    def __delattr__(self, key: str) -> None:
        if key[0] == "_":
            object.__delattr__(self, key)
            return
        object.__getattribute__(self, "_callmethod")("__delattr__", (key,))


if TYPE_CHECKING:
    # The type checker's view of the container proxies: generic, with the methods of the type they stand for
    # (what typeshed gives the stdlib's). At run time they are the classes below, made by MakeProxyType.
    from collections.abc import Iterator, Mapping, MutableMapping, MutableSequence, MutableSet
    from typing import Generic, SupportsIndex, TypeVar, overload

    from _typeshed import SupportsRichComparison
    from typing_extensions import Self

    T = TypeVar("T")
    K = TypeVar("K")
    V = TypeVar("V")

    class ValueProxy(BaseProxy, Generic[T]):
        def get(self) -> T: ...
        def set(self, value: T) -> None: ...
        value: T

    class BaseListProxy(BaseProxy, MutableSequence[T]):
        @overload
        def __getitem__(self, i: SupportsIndex) -> T: ...
        @overload
        def __getitem__(self, s: slice) -> list[T]: ...  # type: ignore[explicit-any]  # slice's stub parameters
        def __getitem__(self, i: SupportsIndex | slice) -> T | list[T]: ...  # type: ignore[explicit-any]  # slice's stub parameters
        @overload
        def __setitem__(self, i: SupportsIndex, value: T) -> None: ...
        @overload
        def __setitem__(self, s: slice, value: Iterable[T]) -> None: ...  # type: ignore[explicit-any]  # slice's stub parameters
        def __setitem__(self, i: SupportsIndex | slice, value: T | Iterable[T]) -> None: ...  # type: ignore[explicit-any]  # slice's stub parameters
        def __delitem__(self, i: SupportsIndex | slice) -> None: ...  # type: ignore[explicit-any]  # slice's stub parameters
        def __len__(self) -> int: ...
        def insert(self, index: SupportsIndex, value: T) -> None: ...
        def __add__(self, other: list[T]) -> list[T]: ...
        def __mul__(self, n: SupportsIndex) -> list[T]: ...
        def __rmul__(self, n: SupportsIndex) -> list[T]: ...
        def sort(self, *, key: Callable[[T], SupportsRichComparison] | None = None, reverse: bool = False
                 ) -> None: ...
        def copy(self) -> list[T]: ...

    class ListProxy(BaseListProxy[T]):
        def __iadd__(self, value: Iterable[T]) -> Self: ...  # type: ignore[override]  # in place, unlike __add__
        def __imul__(self, value: SupportsIndex) -> Self: ...  # type: ignore[override]

    class DictProxy(BaseProxy, MutableMapping[K, V]):
        def __getitem__(self, key: K) -> V: ...
        def __setitem__(self, key: K, value: V) -> None: ...
        def __delitem__(self, key: K) -> None: ...
        def __iter__(self) -> Iterator[K]: ...
        def __len__(self) -> int: ...
        def copy(self) -> dict[K, V]: ...
        def __or__(self, other: Mapping[K, V]) -> dict[K, V]: ...
        def __ror__(self, other: Mapping[K, V]) -> dict[K, V]: ...
        def __ior__(self, value: Mapping[K, V]) -> Self: ...
        def __reversed__(self) -> Iterator[K]: ...
        def fromkeys(self, iterable: Iterable[K], value: V, /) -> dict[K, V]: ...

    class SetProxy(BaseProxy, MutableSet[T]):
        def __contains__(self, value: object) -> bool: ...
        def __iter__(self) -> Iterator[T]: ...
        def __len__(self) -> int: ...
        def add(self, value: T) -> None: ...
        def discard(self, value: T) -> None: ...
        def copy(self) -> set[T]: ...
        def update(self, *others: Iterable[T]) -> None: ...
        def union(self, *others: Iterable[T]) -> set[T]: ...
        def intersection(self, *others: Iterable[object]) -> set[T]: ...
        def difference(self, *others: Iterable[object]) -> set[T]: ...

    class ArrayProxy(BaseProxy, Generic[T]):
        def __len__(self) -> int: ...
        def __getitem__(self, i: SupportsIndex) -> T: ...
        def __setitem__(self, i: SupportsIndex, value: T) -> None: ...

    ArrayProxyType = ArrayProxy

    class QueueProxy(BaseProxy, Generic[T]):
        """What ``SyncManager.Queue()`` returns: at run time an AutoProxy of a ``queue.Queue``."""

        def put(self, item: T, block: bool = True, timeout: float | None = None) -> None: ...
        def put_nowait(self, item: T) -> None: ...
        def get(self, block: bool = True, timeout: float | None = None) -> T: ...
        def get_nowait(self) -> T: ...
        def qsize(self) -> int: ...
        def empty(self) -> bool: ...
        def full(self) -> bool: ...
        def task_done(self) -> None: ...
        def join(self) -> None: ...
else:
    class ValueProxy(BaseProxy):
        _exposed_ = ("get", "set")

        def get(self) -> object:
            return self._callmethod("get")

        def set(self, value: object) -> None:
            self._callmethod("set", (value,))

        value = property(get, set)

        __class_getitem__ = classmethod(GenericAlias)  # type: ignore[var-annotated]


    BaseListProxy = MakeProxyType("BaseListProxy", (
        "__add__", "__contains__", "__delitem__", "__getitem__", "__len__", "__mul__", "__reversed__", "__rmul__",
        "__setitem__", "append", "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort",
        "__imul__", "clear", "copy"))


    class ListProxy(BaseListProxy):  # type: ignore[valid-type,misc]
        def __iadd__(self, value: object) -> ListProxy:
            self._callmethod("extend", (value,))
            return self

        def __imul__(self, value: object) -> ListProxy:
            self._callmethod("__imul__", (value,))
            return self

        __class_getitem__ = classmethod(GenericAlias)  # type: ignore[var-annotated]


    _BaseDictProxy = MakeProxyType("DictProxy", (
        "__contains__", "__delitem__", "__getitem__", "__ior__", "__iter__", "__len__", "__or__", "__reversed__",
        "__ror__", "__setitem__", "clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem",
        "setdefault", "update", "values"))


    class DictProxy(_BaseDictProxy):  # type: ignore[valid-type,misc]
        _method_to_typeid_ = {"__iter__": "Iterator"}

        def __ior__(self, value: object) -> DictProxy:
            self._callmethod("__ior__", (value,))
            return self

        __class_getitem__ = classmethod(GenericAlias)  # type: ignore[var-annotated]


    _BaseSetProxy = MakeProxyType("_BaseSetProxy", (
        "__and__", "__contains__", "__iand__", "__ior__", "__isub__", "__iter__", "__ixor__", "__len__", "__or__",
        "__rand__", "__ror__", "__rsub__", "__rxor__", "__sub__", "__xor__", "__ge__", "__gt__", "__le__", "__lt__",
        "add", "clear", "copy", "difference", "difference_update", "discard", "intersection", "intersection_update",
        "isdisjoint", "issubset", "issuperset", "pop", "remove", "symmetric_difference",
        "symmetric_difference_update", "union", "update"))


    class SetProxy(_BaseSetProxy):  # type: ignore[valid-type,misc]
        """A proxy of a shared ``set`` (3.14's ``SyncManager.set()``)."""

        _method_to_typeid_ = {"__iter__": "Iterator"}

        def __ior__(self, value: object) -> SetProxy:
            self._callmethod("__ior__", (value,))
            return self

        def __iand__(self, value: object) -> SetProxy:
            self._callmethod("__iand__", (value,))
            return self

        def __ixor__(self, value: object) -> SetProxy:
            self._callmethod("__ixor__", (value,))
            return self

        def __isub__(self, value: object) -> SetProxy:
            self._callmethod("__isub__", (value,))
            return self

        __class_getitem__ = classmethod(GenericAlias)  # type: ignore[var-annotated]


    collections.abc.MutableSet.register(_BaseSetProxy)
    collections.abc.MutableMapping.register(_BaseDictProxy)  # as 3.13's

    ArrayProxy = MakeProxyType("ArrayProxy", ("__len__", "__getitem__", "__setitem__"))


BasePoolProxy = MakeProxyType("PoolProxy", (
    "apply", "apply_async", "close", "imap", "imap_unordered", "join", "map", "map_async", "starmap",
    "starmap_async", "terminate"))


class PoolProxy(BasePoolProxy):  # type: ignore[valid-type,misc]
    _method_to_typeid_ = {
        "apply_async": "AsyncResult", "map_async": "AsyncResult", "starmap_async": "AsyncResult",
        "imap": "Iterator", "imap_unordered": "Iterator",
    }

    def __enter__(self) -> PoolProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._callmethod("terminate")
