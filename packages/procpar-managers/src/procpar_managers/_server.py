"""The manager's server: holds the shared objects, counts their references, answers each connection's calls.

One thread accepts; each connection gets a thread of its own, which authenticates the peer (so a peer that
stalls its handshake blocks nobody else) and then serves its requests in order until it hangs up. A blocking
method (``queue.get()``, ``lock.acquire()``) therefore holds only the thread of the connection that called it.
"""

from __future__ import annotations

import itertools
import os
import select
import threading
import traceback
from typing import Any, Callable

from procpar_core import util
from procpar_core.connection import AuthenticationError, answer_challenge, deliver_challenge
from procpar_core.connection import Listener as _RawListener

from ._protocol import ERROR, PROXY, RETURN, TRACEBACK, UNSERIALIZABLE, WRAPPERS, as_authkey, check_serializer

__all__ = ["Server", "public_methods", "all_methods", "local_server"]

# typeid -> (callable, exposed, method_to_typeid)
ServerRegistry = dict[str, tuple[Callable[..., Any] | None, tuple[str, ...] | None, dict[str, str] | None]]

# address -> Server running in this process: a proxy unpickled here whose referent lives in one of them holds
# its reference in that server's table instead of over a connection to itself.
_local_servers: dict[Any, Server] = {}


def local_server(address: Any) -> Server | None:
    return _local_servers.get(address)


def _forget_local_servers() -> None:
    # A forked child is not the server: proxies it inherited must count their references over connections.
    _local_servers.clear()


os.register_at_fork(after_in_child=_forget_local_servers)


def all_methods(obj: Any) -> list[str]:
    """Names of the callable attributes of ``obj``."""
    names = []
    for name in dir(obj):
        try:
            if callable(getattr(obj, name)):
                names.append(name)
        except Exception:
            continue
    return names


def public_methods(obj: Any) -> list[str]:
    """Names of the callable attributes of ``obj`` that do not start with ``_``."""
    return [name for name in all_methods(obj) if name[0] != "_"]


# Calls every proxy may make whatever its exposed list says.
_ALWAYS_ALLOWED = frozenset({"#GETVALUE", "__str__", "__repr__"})


class Server:
    """Serves the shared objects of one manager at ``address``; ``serve_forever()`` runs it."""

    # Control calls a client may make with ident None; subclasses add theirs.
    public: tuple[str, ...] = ("shutdown", "create", "accept_connection", "get_methods", "debug_info",
                               "number_of_objects", "dummy", "incref", "decref", "incref_many", "decref_many")

    def __init__(self, registry: ServerRegistry, address: Any, authkey: bytes, serializer: str) -> None:
        if not isinstance(authkey, (bytes, bytearray)):
            raise TypeError(f"authkey should be a byte string, not {type(authkey).__name__}")
        check_serializer(serializer)
        self.registry = registry
        self.authkey = as_authkey(authkey)
        self.serializer = serializer
        # No authkey here: each connection's thread authenticates its own peer.
        self.listener = _RawListener(address=address, backlog=128)
        self.address = self.listener.address
        # ident -> (obj, exposed, method_to_typeid)
        self.id_to_obj: dict[str, tuple[Any, frozenset[str], dict[str, str] | None]] = {}
        self.id_to_refcount: dict[str, int] = {}
        self.mutex = threading.Lock()
        self._pending_decrefs: list[str] = []
        self._ids = itertools.count(1)
        self._stop_r, self._stop_w = os.pipe()
        self._stopping = False

    # -- running ------------------------------------------------------------------------------------------

    def serve_forever(self, parent_sentinel: int | None = None) -> None:
        """Serve until ``shutdown`` is requested (or, given a sentinel, until that process exits)."""
        _local_servers[self.address] = self
        accepter = threading.Thread(target=self._accept_loop, name="procpar-manager-accepter", daemon=True)
        accepter.start()
        poller = select.poll()
        for fd in (self._stop_r, parent_sentinel):
            if fd is not None:
                poller.register(fd, select.POLLIN)
        try:
            while not poller.poll():
                pass
        except KeyboardInterrupt:
            util.info("manager received KeyboardInterrupt: stopping")
        finally:
            self._stopping = True
            _local_servers.pop(self.address, None)
            self.listener.close()
            self.on_stop()

    def on_stop(self) -> None:
        """Runs once when serving ends (subclasses release what they hold)."""

    def stop(self) -> None:
        self._stopping = True
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn = self.listener.accept()
            except OSError:
                if self._stopping:
                    return
                continue
            threading.Thread(target=self._handle_connection, args=(conn,), name="procpar-manager-conn",
                             daemon=True).start()

    def _handle_connection(self, raw: Any) -> None:
        try:
            if self.authkey is not None:
                deliver_challenge(raw, self.authkey)
                answer_challenge(raw, self.authkey)
        except (AuthenticationError, EOFError, OSError) as exc:
            util.info("manager refused a connection: %s", exc)
            raw.close()
            return
        conn = WRAPPERS[self.serializer](raw)
        try:
            self.serve_client(conn)
        finally:
            conn.close()

    def serve_client(self, conn: Any) -> None:
        """Answer the requests of one connection until the peer hangs up."""
        while not self._stopping:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            except Exception:
                # A frame arrived whole but could not be decoded: say so and keep the connection.
                reply: tuple[str, Any] = (TRACEBACK, "the manager could not decode a request:\n"
                                                     + traceback.format_exc())
                name = None
            else:
                name, reply = self._handle_request(request)
            if not self._send_reply(conn, reply, name):
                return
            if name == "shutdown" and reply[0] == RETURN:
                self.stop()
                return

    def _handle_request(self, request: Any) -> tuple[Any, tuple[str, Any]]:
        try:
            ident, name, args, kwds = request
            args = tuple(args)
            kwds = dict(kwds or {})
        except Exception:
            return None, (TRACEBACK, f"malformed request {request!r:.200}: expected (ident, name, args, kwds)\n")
        if ident is None:
            return name, self._control(name, args, kwds)
        return name, self._call_method(ident, name, args, kwds)

    def _control(self, name: str, args: tuple[Any, ...], kwds: dict[str, Any]) -> tuple[str, Any]:
        if name not in self.public:
            return TRACEBACK, f"{name!r} is not a request this manager understands (known: {self.public})\n"
        try:
            return RETURN, getattr(self, name)(*args, **kwds)
        except Exception:
            return TRACEBACK, traceback.format_exc()

    def _call_method(self, ident: str, name: str, args: tuple[Any, ...], kwds: dict[str, Any]) -> tuple[str, Any]:
        try:
            obj, exposed, method_to_typeid = self.id_to_obj[ident]
        except KeyError:
            return TRACEBACK, (f"no shared object with id {ident!r} in this manager: it was released (no proxy "
                               f"kept a reference) or belongs to another manager\n")
        if name not in exposed and name not in _ALWAYS_ALLOWED:
            return TRACEBACK, (f"method {name!r} of {type(obj).__name__!r} object is not exposed "
                               f"(exposed: {sorted(exposed)})\n")
        try:
            if name == "#GETVALUE":
                result = obj
            elif name == "__str__" and name not in exposed:
                result = str(obj)
            elif name == "__repr__" and name not in exposed:
                result = repr(obj)
            else:
                result = getattr(obj, name)(*args, **kwds)
        except Exception as exc:
            return ERROR, exc
        typeid = method_to_typeid.get(name) if method_to_typeid else None
        if typeid:
            try:
                new_ident, new_exposed = self._register(typeid, result)
            except Exception:
                return TRACEBACK, traceback.format_exc()
            return PROXY, (new_exposed, typeid, new_ident)
        return RETURN, result

    def _send_reply(self, conn: Any, reply: tuple[str, Any], name: Any) -> bool:
        """Send ``reply``; one that cannot be serialized becomes an error naming what failed. False: peer gone."""
        try:
            conn.send(reply)
            return True
        except OSError:
            return False
        except Exception as exc:
            what = "exception" if reply[0] == ERROR else "result"
            message = (f"the manager could not send the {what} of {name!r} ({type(reply[1]).__name__} object): "
                       f"{type(exc).__name__}: {exc}\n")
        try:
            conn.send((UNSERIALIZABLE, message))
            return True
        except OSError:
            return False

    # -- the object table ---------------------------------------------------------------------------------

    def _register(self, typeid: str, obj: Any) -> tuple[str, tuple[str, ...]]:
        """Add ``obj`` with one reference, owned by whoever receives the returned ident."""
        try:
            _, exposed, method_to_typeid = self.registry[typeid]
        except KeyError:
            raise KeyError(f"type id {typeid!r} is not registered with this manager") from None
        if exposed is None:
            exposed = tuple(public_methods(obj))
        if method_to_typeid:
            exposed = tuple(exposed) + tuple(m for m in method_to_typeid if m not in exposed)
        ident = f"{next(self._ids):x}"
        with self.mutex:
            self.id_to_obj[ident] = (obj, frozenset(exposed), method_to_typeid)
            self.id_to_refcount[ident] = 1
        self._drain_decrefs()
        return ident, tuple(exposed)

    def create(self, typeid: str, *args: Any, **kwds: Any) -> tuple[str, tuple[str, ...]]:
        """Make a new shared object of ``typeid``; the caller owns one reference to it."""
        try:
            func = self.registry[typeid][0]
        except KeyError:
            raise KeyError(f"type id {typeid!r} is not registered with this manager's server") from None
        if func is None:
            if len(args) != 1 or kwds:
                raise TypeError(f"type id {typeid!r} was registered without a callable in the server process, "
                                f"so the server cannot create it: register it there with callable=...")
            obj = args[0]
        else:
            # What the callable raises reaches the caller as a RemoteError carrying its traceback, as in the
            # stdlib (whose tests check for it).
            obj = func(*args, **kwds)
        return self._register(typeid, obj)

    def incref(self, ident: str) -> None:
        with self.mutex:
            if ident not in self.id_to_refcount:
                raise KeyError(f"no shared object with id {ident!r}: it was already released")
            self.id_to_refcount[ident] += 1

    def incref_many(self, idents: list[str]) -> list[str]:
        """Incref each; returns the idents that no longer exist."""
        missing = []
        with self.mutex:
            for ident in idents:
                if ident in self.id_to_refcount:
                    self.id_to_refcount[ident] += 1
                else:
                    missing.append(ident)
        return missing

    def decref(self, ident: str) -> None:
        self.decref_many([ident])

    def decref_many(self, idents: list[str]) -> None:
        dead = []
        with self.mutex:
            for ident in idents:
                count = self.id_to_refcount.get(ident)
                if count is None:
                    continue
                if count <= 1:
                    del self.id_to_refcount[ident]
                    dead.append(self.id_to_obj.pop(ident, None))
                else:
                    self.id_to_refcount[ident] = count - 1
        # Objects die outside the mutex: their destructors may release nested proxies, which decref here.
        del dead
        self._drain_decrefs()

    def decref_soon(self, ident: str) -> None:
        """Decref from a GC callback in this process, which may fire while this thread holds the mutex."""
        self._pending_decrefs.append(ident)
        if not self.mutex.locked():
            self._drain_decrefs()

    def _drain_decrefs(self) -> None:
        pending = self._pending_decrefs
        while pending:
            idents = []
            while pending:
                idents.append(pending.pop())
            self.decref_many(idents)

    # -- other control calls ------------------------------------------------------------------------------

    def accept_connection(self, name: str = "") -> None:
        """Every connection serves every call; kept for clients that announce themselves."""

    def get_methods(self, ident: str) -> tuple[str, ...]:
        return tuple(sorted(self.id_to_obj[ident][1]))

    def number_of_objects(self) -> int:
        self._drain_decrefs()
        return len(self.id_to_refcount)

    def debug_info(self) -> str:
        self._drain_decrefs()
        with self.mutex:
            lines = [f"  {ident}:       refcount={count}\n    {str(self.id_to_obj[ident][0])[:75]}"
                     for ident, count in sorted(self.id_to_refcount.items())]
        return "\n".join(lines)

    def dummy(self) -> None:
        pass

    def shutdown(self) -> None:
        """Stop serving once the reply is sent."""

