"""The manager's server: holds the shared objects, counts their references, answers each connection's calls.

One thread accepts; each connection gets a thread of its own, which authenticates the peer (so a peer that
stalls its handshake blocks nobody else) and then serves its requests in order until it hangs up. A blocking
method (``queue.get()``, ``lock.acquire()``) therefore holds only the thread of the connection that called it.

A client that dies loses nothing (docs/reliability.md): an item a ``get()`` took for a client that is gone by
the time it returns goes back to the front of its queue, and the locks and semaphores a connection still
holds when it ends are released.

Threads and fds of a running server (the manager's process, or a thread of a program that serves)::

    main thread: serve_forever()            accepter thread                  one thread per connection
    ----------------------------            ---------------                  -------------------------
    poll() on:                              listener.accept() --new conn-->  HMAC handshake (both ways)
      stop pipe r  <-- stop(): one byte        (the listening socket)        then, in order until EOF:
      parent's sentinel (the manager's                                         recv request
        process exits with its parent)                                         _handle_request
    then: _stopping = True,                                                      [mutex] id_to_obj,
      close the listener (the accepter's                                         id_to_refcount
      accept() fails: it returns),                                             [_holdings_lock] who holds
      on_stop()                                                                  which Lock/Semaphore
                                                                               send reply
                                                                             finally: release what the
    a "shutdown" request: its connection thread replies, then stop()         peer still held

* ``mutex`` guards the object table and the reference counts; ``_holdings_lock`` the acquisitions of locks and
  semaphores per connection (so a dead client's are given back); a blocking method runs with neither held.
* The stop pipe and the listener belong to the main thread; each connection's socket to its own thread.
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import select
import socket
import struct
import threading
import time
import traceback
from typing import TYPE_CHECKING, Callable, cast

from procpar_core import util
from procpar_core.connection import AuthenticationError, answer_challenge, deliver_challenge
from procpar_core.connection import Listener as _RawListener
from procpar_sync.lowlevel import spin_readable

from ._connections import SPIN_SECONDS
from ._protocol import ERROR, PROXY, RETURN, TRACEBACK, UNSERIALIZABLE, WRAPPERS, as_authkey, check_serializer

if TYPE_CHECKING:
    from typing import Protocol

    from procpar_core.connection import Connection

    from ._typing import Address, Function, MessageConnection

    class _LockLike(Protocol):
        """What the server calls on the lock-like objects it tracks (``_LOCK_TYPES``)."""

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

        def release(self) -> None: ...

__all__ = ["Server", "public_methods", "all_methods", "local_server"]

# What accept_connection answers: the client may then send control requests on its thread's connection.
SERVER_MARK = "procpar"

# typeid -> (callable, exposed, method_to_typeid)
ServerRegistry = dict[str, tuple["Function | None", "tuple[str, ...] | None", "dict[str, str] | None"]]

# address -> Server running in this process: a proxy unpickled here whose referent lives in one of them holds
# its reference in that server's table instead of over a connection to itself.
_local_servers: dict[Address, Server] = {}


def local_server(address: Address) -> Server | None:
    return _local_servers.get(address)


def _forget_local_servers() -> None:
    # A forked child is not the server: proxies it inherited must count their references over connections.
    _local_servers.clear()


os.register_at_fork(after_in_child=_forget_local_servers)


def all_methods(obj: object) -> list[str]:
    """Names of the callable attributes of ``obj``."""
    names = []
    for name in dir(obj):
        try:
            if callable(getattr(obj, name)):
                names.append(name)
        except Exception:
            continue
    return names


def public_methods(obj: object) -> list[str]:
    """Names of the callable attributes of ``obj`` that do not start with ``_``."""
    return [name for name in all_methods(obj) if name[0] != "_"]


# Calls every proxy may make whatever its exposed list says.
_ALWAYS_ALLOWED = frozenset({"#GETVALUE", "__str__", "__repr__"})

# What a connection holds: acquisitions of the lock-like objects it called acquire() on and has not released.
_LOCK_TYPES: tuple[type, ...] = (type(threading.Lock()), type(threading.RLock()), threading.Semaphore,
                                 threading.Condition)
# Of those, the ones only their holder may release: a dead holder's acquisitions are released at once. A Lock or
# Semaphore may be released by anyone (a hand-off: one process acquires, another releases), so what a dead
# client held is kept until somebody needs it (see Server._take_abandoned).
_OWNED_TYPES: tuple[type, ...] = (type(threading.RLock()), threading.Condition)


def _peer_gone(conn: MessageConnection) -> bool:
    """True if the client at the other end of ``conn`` has closed it (it died, or gave up on its call)."""
    raw = getattr(conn, "_conn", conn)  # an XmlConnection wraps a Connection
    try:
        sock = socket.socket(fileno=raw.fileno())
    except OSError:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        sock.detach()


def _give_back_item(q: queue.Queue[object], item: object) -> None:
    """Undo a ``get()``: the item goes back where the next ``get()`` takes it."""
    with q.mutex:
        if isinstance(q, queue.PriorityQueue):
            heapq.heappush(q.queue, item)  # pyright: ignore[reportArgumentType]  # its items compare: it took them in
        elif isinstance(q, queue.LifoQueue):
            q.queue.append(item)
        else:
            q.queue.appendleft(item)
        q.not_empty.notify()


def _undo(obj: object, name: str, result: object) -> Callable[[], None] | None:
    """How to take back what a call consumed for a client that is gone; None if it consumed nothing."""
    if isinstance(obj, queue.Queue) and name in ("get", "get_nowait"):
        return lambda: _give_back_item(obj, result)
    if isinstance(obj, _LOCK_TYPES) and name == "acquire" and result is not False:
        release: Callable[[], None] = getattr(obj, "release")  # noqa: B009 - typed as the lock types' common method
        return release
    return None


def _peer_process(conn: MessageConnection) -> tuple[int, int | None] | None:
    """(pid, start time) of the process at the other end of a unix socket connection; None elsewhere."""
    raw = getattr(conn, "_conn", conn)
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:
        return None
    try:
        sock = socket.socket(fileno=raw.fileno())
    except OSError:
        return None
    try:
        if sock.family != socket.AF_UNIX:
            return None
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i")))
    except OSError:
        return None
    finally:
        sock.detach()
    return (pid, util.process_start_time(pid)) if pid > 0 else None


# How long a connection that ends holding locks waits for its client's process to exit before deciding that the
# client closed it on purpose (a thread that ended) and keeping the locks held.
_EXIT_GRACE = 5.0


class _Holdings:
    """The acquisitions one connection holds (object ident -> count), and the process it belongs to.

    When the connection ends while that process is dead, what it held is released. A connection closed by a
    live process (a thread that ended, say) keeps its locks held, as in the stdlib: another thread of that
    process may release them. Over TCP the peer's process cannot be known, and its locks are kept too.
    """

    __slots__ = ("counts", "peer")

    def __init__(self, peer: tuple[int, int | None] | None = None) -> None:
        self.counts: dict[str, int] = {}
        self.peer = peer

    def peer_died(self) -> bool:
        # A process closes its sockets as it exits, a moment before it is gone: give it that moment.
        return self.peer is not None and util.wait_process_exit(*self.peer, timeout=_EXIT_GRACE)


class Server:
    """Serves the shared objects of one manager at ``address``; ``serve_forever()`` runs it."""

    # Control calls a client may make with ident None; subclasses add theirs.
    public: tuple[str, ...] = ("shutdown", "create", "accept_connection", "get_methods", "debug_info",
                               "number_of_objects", "dummy", "incref", "decref", "incref_many", "decref_many")

    def __init__(self, registry: ServerRegistry, address: Address | None, authkey: bytes, serializer: str) -> None:
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
        self.id_to_obj: dict[str, tuple[object, frozenset[str], dict[str, str] | None]] = {}
        self.id_to_refcount: dict[str, int] = {}
        self.mutex = threading.Lock()
        self._pending_decrefs: list[str] = []
        self._ids = itertools.count(1)
        self._stop_r, self._stop_w = os.pipe()
        self._stopping = False
        # ident -> the connections holding it, one entry per acquisition (see _Holdings)
        self._holders: dict[str, list[_Holdings]] = {}
        # ident -> acquisitions of a Lock or Semaphore whose holders died, not given back yet
        self._abandoned: dict[str, int] = {}
        # ident -> server threads blocked in its acquire() right now
        self._waiting: dict[str, int] = {}
        self._holdings_lock = threading.Lock()

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

    def _handle_connection(self, raw: Connection) -> None:
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

    def serve_client(self, conn: MessageConnection) -> None:
        """Answer the requests of one connection until the peer hangs up."""
        holdings = _Holdings(_peer_process(conn))
        fd = conn.fileno()
        spinning = False  # the last request came soon after the reply before it: look for the next awake
        try:
            while not self._stopping:
                try:
                    if spinning and spin_readable(fd, SPIN_SECONDS):
                        request = conn.recv()
                    else:
                        started = time.monotonic()
                        request = conn.recv()
                        spinning = time.monotonic() - started < SPIN_SECONDS
                except (EOFError, OSError):
                    return
                except Exception:
                    # A frame arrived whole but could not be decoded: say so and keep the connection.
                    reply: tuple[str, object] = (TRACEBACK, "the manager could not decode a request:\n"
                                                         + traceback.format_exc())
                    name, undo = None, None
                else:
                    name, reply, undo = self._handle_request(request, holdings)
                if undo is not None and _peer_gone(conn):
                    undo()  # the client left while the call blocked: what it took goes back
                    return
                if not self._send_reply(conn, reply, name):
                    if undo is not None:
                        undo()
                    return
                if name == "shutdown" and reply[0] == RETURN:
                    self.stop()
                    return
        finally:
            self._release_holdings(holdings)

    def _note_acquired(self, ident: str, holdings: _Holdings) -> None:
        with self._holdings_lock:
            holdings.counts[ident] = holdings.counts.get(ident, 0) + 1
            self._holders.setdefault(ident, []).append(holdings)

    def _note_released(self, ident: str, holdings: _Holdings) -> None:
        # Released by the connection that took it, or (a plain Lock or Semaphore) by another one: either way
        # one acquisition is no longer anybody's to give back.
        with self._holdings_lock:
            holders = self._holders.get(ident)
            if not holders:
                # A hand-off release of what a dead client took: nothing left to give back for it.
                if self._abandoned.get(ident):
                    self._abandoned[ident] -= 1
                    if not self._abandoned[ident]:
                        del self._abandoned[ident]
                return
            owner = holdings if holdings in holders else holders[0]
            holders.remove(owner)
            owner.counts[ident] -= 1
            if not owner.counts[ident]:
                del owner.counts[ident]
            if not holders:
                del self._holders[ident]

    def _release_holdings(self, holdings: _Holdings) -> None:
        """A connection ended holding locks: if its client's process died, release them (see _Holdings)."""
        if not holdings.counts or not holdings.peer_died():
            return
        with self._holdings_lock:
            held = list(holdings.counts.items())
            holdings.counts.clear()
            for ident, _ in held:
                holders = self._holders.get(ident, [])
                while holdings in holders:
                    holders.remove(holdings)
                if not holders:
                    self._holders.pop(ident, None)
        for ident, count in held:
            entry = self.id_to_obj.get(ident)
            if entry is None:
                continue
            pid = holdings.peer[0] if holdings.peer else "?"
            if not isinstance(entry[0], _OWNED_TYPES):
                with self._holdings_lock:
                    now = min(count, self._waiting.get(ident, 0))  # wanted right now: given back at once
                    if count - now:
                        self._abandoned[ident] = self._abandoned.get(ident, 0) + count - now
                count = now
                util.info("a client of the manager (process %s) died holding %r: %d acquisition(s) kept for a "
                          "hand-off release, given back to the next acquire() that would wait", pid, entry[0],
                          len(held))
            if count:
                util.info("a client of the manager (process %s) died holding %r %d time(s): released", pid,
                          entry[0], count)
            for _ in range(count):
                try:
                    cast("_LockLike", entry[0]).release()
                except (RuntimeError, ValueError):
                    break

    def _acquire(self, ident: str, obj: object, name: str, args: tuple[object, ...], kwds: dict[str, object]) -> object:
        if self._abandoned and not isinstance(obj, _OWNED_TYPES) and self._take_abandoned(ident, obj):
            return True
        with self._holdings_lock:
            self._waiting[ident] = self._waiting.get(ident, 0) + 1
        try:
            return getattr(obj, name)(*args, **kwds)
        finally:
            with self._holdings_lock:
                self._waiting[ident] -= 1
                if not self._waiting[ident]:
                    del self._waiting[ident]

    def _take_abandoned(self, ident: str, obj: object) -> bool:
        """Before an acquire() of a Lock or Semaphore that a dead client held: True if it was taken here,
        giving back one acquisition of the dead if it could not be had otherwise."""
        with self._holdings_lock:
            if not self._abandoned.get(ident):
                return False
            lock = cast("_LockLike", obj)  # only the lock types' acquisitions are tracked
            if lock.acquire(False):
                return True
            self._abandoned[ident] -= 1
            if not self._abandoned[ident]:
                del self._abandoned[ident]
            util.info("gave back an acquisition of %r that a dead client held", obj)
            lock.release()
            return bool(lock.acquire(False))

    def _handle_request(self, request: object, holdings: _Holdings | None = None
                        ) -> tuple[object, tuple[str, object], Callable[[], None] | None]:
        malformed = (TRACEBACK, f"malformed request {request!r:.200}: expected (ident, name, args, kwds)\n")
        # A list when it came as XML-RPC, which has no tuples.
        if not isinstance(request, (tuple, list)) or len(request) != 4:
            return None, malformed, None
        ident, name, raw_args, raw_kwds = request
        try:
            args = tuple(raw_args)
            kwds = dict(raw_kwds or {})
        except Exception:
            return None, malformed, None
        if ident is None:
            return name, self._control(name, args, kwds), None
        return (name, *self._call_method(ident, name, args, kwds, holdings))

    def _control(self, name: str, args: tuple[object, ...], kwds: dict[str, object]) -> tuple[str, object]:
        if name not in self.public:
            return TRACEBACK, f"{name!r} is not a request this manager understands (known: {self.public})\n"
        try:
            return RETURN, getattr(self, name)(*args, **kwds)
        except Exception:
            return TRACEBACK, traceback.format_exc()

    def _call_method(self, ident: str, name: str, args: tuple[object, ...], kwds: dict[str, object],
                     holdings: _Holdings | None = None) -> tuple[tuple[str, object], Callable[[], None] | None]:
        """The reply to a method call, and how to undo what it took if its client turns out to be gone."""
        try:
            obj, exposed, method_to_typeid = self.id_to_obj[ident]
        except KeyError:
            return (TRACEBACK, (f"no shared object with id {ident!r} in this manager: it was released (no proxy "
                                f"kept a reference) or belongs to another manager\n")), None
        if name not in exposed and name not in _ALWAYS_ALLOWED:
            return (TRACEBACK, (f"method {name!r} of {type(obj).__name__!r} object is not exposed "
                                f"(exposed: {sorted(exposed)})\n")), None
        try:
            if name == "#GETVALUE":
                result = obj
            elif name == "__str__" and name not in exposed:
                result = str(obj)
            elif name == "__repr__" and name not in exposed:
                result = repr(obj)
            elif name in ("acquire", "__enter__") and isinstance(obj, _LOCK_TYPES) and holdings is not None:
                result = self._acquire(ident, obj, name, args, kwds)
            else:
                result = getattr(obj, name)(*args, **kwds)
        except Exception as exc:
            return (ERROR, exc), None
        if holdings is not None and isinstance(obj, _LOCK_TYPES):
            if name in ("acquire", "__enter__") and result is not False:
                self._note_acquired(ident, holdings)
            elif name in ("release", "__exit__"):
                self._note_released(ident, holdings)
        typeid = method_to_typeid.get(name) if method_to_typeid else None
        if typeid:
            try:
                # As a create() of that type id with the result: its registered callable (if any) makes the
                # shared object from it, as the stdlib's server does.
                new_ident, new_exposed = self.create(typeid, result)
            except Exception:
                return (TRACEBACK, traceback.format_exc()), None
            return (PROXY, (new_exposed, typeid, new_ident)), None
        return (RETURN, result), _undo(obj, name, result)

    def _send_reply(self, conn: MessageConnection, reply: tuple[str, object], name: object) -> bool:
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

    def _register(self, typeid: str, obj: object) -> tuple[str, tuple[str, ...]]:
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

    def create(self, typeid: str, *args: object, **kwds: object) -> tuple[str, tuple[str, ...]]:
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

    def accept_connection(self, name: str = "") -> str:
        """Every connection serves every call; a client that announces itself learns that this is a procpar
        server (a stdlib server answers None, and serves only object calls on such a connection)."""
        return SERVER_MARK

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

