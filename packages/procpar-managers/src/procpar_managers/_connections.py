"""The client side's connections to managers: one per thread and server, plus one for decrefs.

A GC callback (a proxy being collected) can fire in the middle of a call on the current thread's connection,
so decrefs never use it: they queue up and go out on a connection of their own, guarded by a lock that a
callback only ever *tries* to take; whoever holds it sends what queued up meanwhile.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING

from procpar_core import util
from procpar_sync.lowlevel import spin_readable

from ._protocol import RETURN, connect, convert_to_error, dispatch, normalize_address, server_gone, unpack_reply

if TYPE_CHECKING:
    from ._typing import Address, MessageConnection

__all__ = ["recv_reply", "SPIN_SECONDS",
           "thread_connection", "control_call", "drop_thread_connection", "forget_address", "queue_decref",
           "flush_decrefs", "known_authkey", "remember_authkey"]

# (address, serializer) -> connection, per thread
_local = threading.local()
# address -> whether the server there is procpar's (learnt on the first connection). A stdlib server takes one
# control request per connection (create, incref, decref, ...) and object calls only on a connection that
# announced itself with accept_connection: procpar's client then talks to it that way.
_procpar_server: dict[Address, bool] = {}
# address -> authkey of a manager this process started or connected to
_authkeys: dict[Address, bytes] = {}
# (address, serializer, authkey) -> idents to decref
_pending: defaultdict[tuple[Address, str, bytes | None], list[str]] = defaultdict(list)
_decref_lock = threading.Lock()
_decref_conns: dict[tuple[Address, str, bytes | None], MessageConnection] = {}


# How long a caller looks for its reply before it sleeps, when the last one came that soon. Waking a sleeping
# process costs tens of microseconds here, as much as the whole call to a server that is awake.
SPIN_SECONDS = 0.0002


def recv_reply(conn: MessageConnection) -> object:
    """The reply to the request just sent on ``conn`` (this thread's): looked for without sleeping for a
    moment if this thread's last reply came that fast, so a loop of short calls never sleeps in between."""
    if getattr(_local, "fast", True) and spin_readable(conn.fileno(), SPIN_SECONDS):
        return conn.recv()
    started = time.monotonic()
    reply = conn.recv()
    _local.fast = time.monotonic() - started < SPIN_SECONDS
    return reply


def remember_authkey(address: Address, authkey: bytes) -> None:
    _authkeys[normalize_address(address)] = authkey


def known_authkey(address: Address) -> bytes | None:
    return _authkeys.get(normalize_address(address))


def _connections() -> dict[tuple[Address, str], MessageConnection]:
    conns: dict[tuple[Address, str], MessageConnection] | None = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    return conns


def thread_connection(address: Address, serializer: str, authkey: bytes | None) -> MessageConnection:
    """This thread's connection to the server at ``address`` (made on first use)."""
    key = (normalize_address(address), serializer)
    conns = _connections()
    conn = conns.get(key)
    if conn is None:
        conn = connect(key[0], authkey, serializer)
        if not _procpar_server.get(key[0], False):
            try:
                mark = dispatch(conn, None, "accept_connection", (threading.current_thread().name,))
            except BaseException:
                _close_quietly(conn)
                raise
            _procpar_server[key[0]] = mark == "procpar"
        conns[key] = conn
    return conn


def is_procpar_server(address: Address, serializer: str, authkey: bytes | None) -> bool:
    address = normalize_address(address)
    if address not in _procpar_server:
        thread_connection(address, serializer, authkey)
    return _procpar_server[address]


def _one_shot(address: Address, serializer: str, authkey: bytes | None, name: str, args: tuple[object, ...],
              kwds: dict[str, object] | None) -> object:
    """A control request on a connection of its own, as a stdlib server wants them."""
    if name in ("incref_many", "decref_many"):  # procpar's batches, one by one
        missing = []
        idents = args[0]
        assert isinstance(idents, list)
        for ident in idents:
            try:
                _one_shot(address, serializer, authkey, name[: -len("_many")], (ident,), None)
            except KeyError:
                missing.append(ident)
        return missing
    conn = connect(normalize_address(address), authkey, serializer)
    try:
        return dispatch(conn, None, name, args, kwds)
    finally:
        _close_quietly(conn)


def control_call(address: Address, serializer: str, authkey: bytes | None, name: str,
                 args: tuple[object, ...] = (), kwds: dict[str, object] | None = None) -> object:
    """A control request to the server at ``address`` on this thread's connection."""
    if not is_procpar_server(address, serializer, authkey):
        try:
            return _one_shot(address, serializer, authkey, name, args, kwds)
        except (EOFError, ConnectionError) as exc:
            raise server_gone(exc, address, f"the request {name!r}") from exc
    conn = thread_connection(address, serializer, authkey)
    try:
        conn.send((None, name, args, kwds or {}))
        kind, result = unpack_reply(conn.recv())
    except (EOFError, ConnectionError) as exc:
        drop_thread_connection(address, serializer)
        raise server_gone(exc, address, f"the request {name!r}") from exc
    except BaseException:
        # Failed or interrupted half-way, it may leave a reply in flight: this connection is spent.
        drop_thread_connection(address, serializer)
        raise
    if kind == RETURN:
        return result
    raise convert_to_error(kind, result)


def drop_thread_connection(address: Address, serializer: str) -> None:
    """Close this thread's connection to ``address``: after an interrupted call it may hold a stray reply."""
    conn = _connections().pop((normalize_address(address), serializer), None)
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def forget_address(address: Address) -> None:
    """The manager at ``address`` is gone: drop what this thread and the decref path keep for it."""
    address = normalize_address(address)
    for thread_key in [k for k in _connections() if k[0] == address]:
        drop_thread_connection(*thread_key)
    _authkeys.pop(address, None)
    _procpar_server.pop(address, None)
    with _decref_lock:
        for key in [k for k in _decref_conns if k[0] == address]:
            _close_quietly(_decref_conns.pop(key))
        for key in [k for k in _pending if k[0] == address]:
            _pending.pop(key, None)


def queue_decref(address: Address, serializer: str, authkey: bytes | None, ident: str) -> None:
    """Release one reference to ``ident``; safe from a GC callback on any thread."""
    _pending[(normalize_address(address), serializer, authkey)].append(ident)
    flush_decrefs()


def flush_decrefs() -> None:
    """Send the queued decrefs, unless another frame of this or another thread is already at it."""
    while any(_pending.values()):
        if not _decref_lock.acquire(blocking=False):
            return
        try:
            for key in list(_pending):
                idents = _pending.get(key)
                if not idents:
                    continue
                batch = idents[:]
                del idents[:len(batch)]
                _send_decrefs(key, batch)
        finally:
            _decref_lock.release()


def _send_decrefs(key: tuple[Address, str, bytes | None], idents: list[str]) -> None:
    address, serializer, authkey = key
    if not _procpar_server.get(address, True):
        try:
            _one_shot(address, serializer, authkey, "decref_many", (idents,), None)
        except Exception as exc:
            util.debug("decref of %s at %r failed: %s", idents, address, exc)
        return
    for attempt in range(2):
        conn = _decref_conns.get(key)
        try:
            if conn is None:
                conn = _decref_conns[key] = connect(address, authkey, serializer)
            dispatch(conn, None, "decref_many", (idents,))
            return
        except (OSError, EOFError) as exc:
            _close_quietly(_decref_conns.pop(key, None))
            if attempt or isinstance(exc, (ConnectionRefusedError, FileNotFoundError)):
                # The manager is gone, and with it every object these references kept alive.
                util.debug("decref of %s at %r dropped: %s", idents, address, exc)
                return
        except Exception as exc:
            util.debug("decref of %s at %r failed: %s", idents, address, exc)
            return


def _close_quietly(conn: MessageConnection | None) -> None:
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def _after_fork_in_child() -> None:
    # Sockets inherited from the parent belong to the parent's conversations with the servers.
    global _local, _decref_lock
    _local = threading.local()
    _decref_lock = threading.Lock()
    _decref_conns.clear()
    _pending.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
