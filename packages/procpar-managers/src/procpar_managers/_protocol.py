"""What travels between a manager's server and its clients: tokens, the message envelope, serializers, errors.

A request is ``(ident, name, args, kwds)``: ``ident`` None is a control call to the server, otherwise a call of
method ``name`` on the shared object ``ident``. A reply is ``(kind, value)``; see ``RETURN`` and its siblings.
The envelope only holds tuples, strings, numbers and None so that the XML-RPC serializer can carry it.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from procpar_core.connection import Client, Connection, Listener
from procpar_core.process import AuthenticationString
from procpar_core.reduction import ForkingPickler

if TYPE_CHECKING:
    from ._typing import Address, Function, MessageConnection

__all__ = ["Token", "RemoteError", "ManagerNotStartedError", "convert_to_error", "server_gone", "dispatch",
           "listener_client",
           "unpack_reply", "RETURN", "ERROR", "PROXY", "TRACEBACK", "UNSERIALIZABLE", "normalize_address", "connect"]

RETURN = "#RETURN"  # value: the method's result, copied
ERROR = "#ERROR"  # value: the exception the method (or the object's constructor) raised; re-raised as is
PROXY = "#PROXY"  # value: (exposed, typeid, ident) of a new shared object the result became
TRACEBACK = "#TRACEBACK"  # value: the server's own failure, formatted; raised as RemoteError
UNSERIALIZABLE = "#UNSERIALIZABLE"  # value: why the result or exception could not be sent; RemoteError


def _reduce_view(view: Iterable[object]) -> tuple[type[list[object]], tuple[list[object]]]:
    return (list, (list(view),))


# A DictProxy's keys(), values() and items() arrive as lists: the views themselves cannot be pickled.
_VIEW_TYPES: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))
for _view in _VIEW_TYPES:
    ForkingPickler.register(_view, _reduce_view)


class Token:
    """Names one shared object: its type id, the address of the server holding it, its id there."""

    __slots__ = ("address", "id", "typeid")

    def __init__(self, typeid: str, address: Address, id: str) -> None:
        self.typeid = typeid
        self.address = address
        self.id = id

    def __getstate__(self) -> tuple[str, Address, str]:
        return (self.typeid, self.address, self.id)

    def __setstate__(self, state: tuple[str, Address, str]) -> None:
        self.typeid, self.address, self.id = state

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Token) and self.__getstate__() == other.__getstate__()

    def __hash__(self) -> int:
        return hash((self.typeid, normalize_address(self.address), self.id))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(typeid={self.typeid!r}, address={self.address!r}, id={self.id!r})"


class RemoteError(Exception):
    """The manager's server failed to carry out a request (not an exception of the called method itself)."""

    def __str__(self) -> str:
        return "\n" + "-" * 75 + "\n" + str(self.args[0]) + "-" * 75


class ManagerNotStartedError(ValueError):
    """A manager was used before ``start()`` or ``connect()`` (or after ``shutdown()``)."""


def normalize_address(address: Address | list[object]) -> Address:
    """An address usable as a dict key (XML-RPC turns tuples into lists)."""
    if isinstance(address, list):
        host, port = address
        if isinstance(host, str) and isinstance(port, int):
            return (host, port)
        raise ValueError(f"not a manager's address: {address!r}")
    return address


def server_gone(exc: BaseException, address: Address, what: str) -> BaseException:
    """The error for a call cut off because the manager's server went away: the same type, saying so."""
    message = (f"the manager at {address!r} closed the connection during {what}: its server process has ended "
               f"(it was shut down, or died)")
    if isinstance(exc, OSError) and exc.errno is not None:
        error: BaseException = type(exc)(exc.errno, message)
    else:
        error = type(exc)(message)
    return error


def convert_to_error(kind: str, result: object) -> BaseException:
    if kind == ERROR:
        if isinstance(result, BaseException):
            return result
        return RemoteError(f"the server sent a non-exception as an error: {result!r}\n")
    if kind in (TRACEBACK, UNSERIALIZABLE):
        if not isinstance(result, str):
            return TypeError(f"Result {result!r} (kind {kind!r}) is not a string")
        return RemoteError(result if result.endswith("\n") else result + "\n")
    return ValueError(f"Unrecognized message type {kind!r}")


def unpack_reply(reply: object) -> tuple[str, object]:
    """A reply's ``(kind, value)`` (a list when it came as XML-RPC); ``RemoteError`` for anything else a peer
    may send."""
    if not isinstance(reply, (tuple, list)) or len(reply) != 2 or not isinstance(reply[0], str):
        raise RemoteError(f"the server sent a reply that is not (kind, value): {reply!r:.200}\n")
    return reply[0], reply[1]


def dispatch(conn: MessageConnection, ident: str | None, name: str, args: tuple[object, ...] = (),
             kwds: dict[str, object] | None = None) -> object:
    """Send one request on ``conn`` and return its result (raising what the server reported)."""
    conn.send((ident, name, args, kwds or {}))
    kind, result = unpack_reply(conn.recv())
    if kind == RETURN:
        return result
    try:
        raise convert_to_error(kind, result)
    finally:
        del result  # the raised error's traceback holds this frame: no cycle through the error itself


# -- serializers ---------------------------------------------------------------------------------------------


class XmlConnection:
    """A connection that carries XML-RPC text instead of pickles (for peers that must not unpickle)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def send(self, obj: object) -> None:
        self._conn.send_bytes(xmlrpc.client.dumps((obj,), allow_none=True).encode("utf-8"))  # type: ignore[arg-type]

    def recv(self) -> object:
        (obj,), _ = xmlrpc.client.loads(self._conn.recv_bytes().decode("utf-8"), use_builtin_types=True)
        return obj

    def poll(self, timeout: float | None = 0.0) -> bool:
        return self._conn.poll(timeout)

    def fileno(self) -> int:
        return self._conn.fileno()

    def close(self) -> None:
        self._conn.close()

    @property
    def closed(self) -> bool:
        return self._conn.closed

    def __enter__(self) -> XmlConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _xml_client(address: Address, family: str | None = None, authkey: bytes | None = None) -> XmlConnection:
    return XmlConnection(Client(address, family, authkey))


class _XmlListener(Listener):
    def accept(self) -> XmlConnection:  # type: ignore[override]
        return XmlConnection(super().accept())


# serializer name -> (Listener class, Client function), as the stdlib's ``listener_client``
listener_client: dict[str, tuple[type[Listener], Function]] = {
    "pickle": (Listener, Client),
    "xmlrpclib": (_XmlListener, _xml_client),
}

# serializer name -> what wraps a raw (authenticated) connection
WRAPPERS: dict[str, Callable[[Connection], MessageConnection]] = {
    "pickle": lambda conn: conn, "xmlrpclib": XmlConnection}


def check_serializer(serializer: str) -> None:
    if serializer not in WRAPPERS:
        raise ValueError(f"unknown serializer {serializer!r}: use one of {sorted(WRAPPERS)}")


def connect(address: Address, authkey: bytes | None, serializer: str) -> MessageConnection:
    """An authenticated connection to the server at ``address``, wrapped for ``serializer``.

    A server that is not there raises the usual ``ConnectionRefusedError``/``FileNotFoundError``, with a
    message saying which manager was expected.
    """
    try:
        conn = Client(normalize_address(address), authkey=authkey)
    except (ConnectionRefusedError, FileNotFoundError) as exc:
        raise type(exc)(exc.errno, f"no manager is listening at {address!r} (did it shut down, or was it never "
                                   f"started?)") from exc
    return WRAPPERS[serializer](conn)


def as_authkey(authkey: bytes | None) -> AuthenticationString | None:
    if authkey is None:
        return None
    if not isinstance(authkey, (bytes, bytearray)):
        raise TypeError(f"authkey must be bytes, not {type(authkey).__name__}")
    return AuthenticationString(authkey)
