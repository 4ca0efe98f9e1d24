"""Pickling with the reducers that move file descriptors, and the spawning-popen context.

``_pickle`` is used directly instead of ``pickle`` because ``pickle.py`` imports ``re`` (and through it
``enum``), which costs the spawn child several milliseconds.
"""

from __future__ import annotations

import copyreg
import io
import os
import sys

try:
    from _pickle import PickleBuffer, Pickler, PicklingError, UnpicklingError, loads
    from _pickle import dumps as _plain_dumps
except ImportError:  # pragma: no cover - interpreters without the C accelerator
    from pickle import PickleBuffer, Pickler, PicklingError, UnpicklingError, loads
    from pickle import dumps as _plain_dumps

import _thread

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar, Iterable, Protocol

    class _Detachable(Protocol):
        def detach(self) -> int: ...

    class SpawningPopen(Protocol):
        """What a popen offers to reducers while it pickles a process object for a new child."""

        def duplicate_for_child(self, fd: int) -> int: ...

__all__ = [
    "ForkingPickler",
    "register",
    "dumps",
    "loads",
    "DupFd",
    "PickleBuffer",
    "PicklingError",
    "UnpicklingError",
    "HIGHEST_PROTOCOL",
    "get_spawning_popen",
    "set_spawning_popen",
    "assert_spawning",
    "send_handle",
    "recv_handle",
]

HIGHEST_PROTOCOL = 5
HAVE_SEND_HANDLE = sys.platform != "win32"


class ForkingPickler(Pickler):
    """``pickle.Pickler`` with procpar's reducers (sockets, and whatever ``register`` adds).

    Honours ``copyreg`` registrations made at any time.
    """

    _extra_reducers: ClassVar[dict[type, Callable[[Any], Any]]] = {}
    _table: ClassVar[dict[type, Callable[[Any], Any]]] = {}
    _table_source_len: ClassVar[int] = -1

    def __init__(self, file: Any, protocol: int | None = None, **kwargs: Any) -> None:
        super().__init__(file, HIGHEST_PROTOCOL if protocol is None else protocol, **kwargs)
        self.dispatch_table = _current_table()

    @classmethod
    def register(cls, type_: type, reduce: Callable[[Any], Any]) -> None:
        """Use ``reduce(obj)`` to pickle instances of ``type_`` (procpar's picklers only)."""
        ForkingPickler._extra_reducers[type_] = reduce
        ForkingPickler._table_source_len = -1

    @classmethod
    def dumps(cls, obj: Any, protocol: int | None = None) -> memoryview:
        buf = io.BytesIO()
        cls(buf, protocol).dump(obj)
        return buf.getbuffer()

    loads = staticmethod(loads)


register = ForkingPickler.register


def _stdlib_reducers() -> dict[type, Callable[[Any], Any]]:
    # Only when the program already loaded the stdlib's reduction module: procpar never imports it. On the
    # pickling hot path: inline, no import (see _util.stdlib_module for the alias case it also handles).
    stdlib = sys.modules.get("multiprocessing.reduction")
    if stdlib is None or not stdlib.__name__.startswith("multiprocessing"):
        return {}
    return getattr(getattr(stdlib, "ForkingPickler", None), "_extra_reducers", {})


def _current_table() -> dict[type, Callable[[Any], Any]]:
    """copyreg's reducers, the stdlib's extra ones (if loaded) and procpar's, rebuilt when any of them grew."""
    cls = ForkingPickler
    stdlib_extra = _stdlib_reducers()
    size = len(copyreg.dispatch_table) + len(cls._extra_reducers) + len(stdlib_extra)
    if cls._table_source_len != size:
        _register_lazy_reducers()
        table = dict(copyreg.dispatch_table)
        # The stdlib's own objects (its Connection, say) keep the stdlib's reducers; procpar's win ties.
        table.update(stdlib_extra)
        table.update(cls._extra_reducers)
        cls._table = table
        cls._table_source_len = size
    return cls._table


def dumps(obj: Any, protocol: int | None = None) -> memoryview:
    """Pickle ``obj`` with procpar's reducers; the highest protocol unless told otherwise."""
    buf = io.BytesIO()
    ForkingPickler(buf, protocol).dump(obj)
    return buf.getbuffer()


class _ThreadPickler:
    """One thread's reusable pickler, writing into a list of chunks (a small pickle arrives as one chunk)."""

    __slots__ = ("busy", "chunks", "on_buffer", "pickler", "write")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.write = self.chunks.append  # the pickler calls it straight into C, no Python frame
        # The buffer callback is fixed when a pickler is built; this one defers to the caller of each dump.
        self.on_buffer: Callable[[PickleBuffer], Any] | None = None
        self.pickler = ForkingPickler(self, buffer_callback=self._buffer)
        self.busy = False

    def _buffer(self, buffer: PickleBuffer) -> Any:
        on_buffer = self.on_buffer
        return True if on_buffer is None else on_buffer(buffer)  # True: in band, as without a callback


_picklers = _thread._local()
# Types the pickler writes itself before it looks at any reducer: any pickler gives the same bytes for them,
# and pickle.dumps does it without the per-thread pickler's bookkeeping (a put() of an int: ~1.3 -> ~0.4 us).
_ATOMIC = frozenset({int, float, str, bytes, bool, type(None), complex})


def _claim_pickler(buffer_callback: Callable[[PickleBuffer], Any] | None) -> _ThreadPickler | None:
    """This thread's pickler, ready for ``buffer_callback`` and procpar's reducers; None while it is busy (a
    reducer pickling from inside a dump): the caller then uses a fresh one. Give it back with
    ``_release_pickler``."""
    state: _ThreadPickler | None = getattr(_picklers, "state", None)
    if state is None:
        state = _picklers.state = _ThreadPickler()
    if state.busy:
        return None
    table = _current_table()
    if state.pickler.dispatch_table is not table:
        state.pickler.dispatch_table = table
    state.busy = True
    state.on_buffer = buffer_callback
    return state


def _release_pickler(state: _ThreadPickler) -> None:
    state.busy = False
    state.on_buffer = None
    state.chunks.clear()
    state.pickler.clear_memo()


def dumps_bytes(obj: Any, buffer_callback: Callable[[PickleBuffer], Any] | None = None,
                prefix: bytes = b"") -> bytes:
    """``dumps`` as ``bytes``, reusing one pickler per thread: the hot path of every send and put.

    Building a pickler costs more than pickling a small object; one is kept per thread and its memo cleared
    between objects. A reducer that pickles from inside a dump (re-entry) gets a fresh pickler.
    ``buffer_callback`` is pickle's (protocol 5): a falsy return sends that buffer out of band. ``prefix``
    (a message's header, say) comes first in the result: joined with the pickle's frames in the one copy that
    makes the result, rather than in another copy of a pickle that may be megabytes long.
    """
    if type(obj) in _ATOMIC:
        data = _plain_dumps(obj, HIGHEST_PROTOCOL)
        return prefix + data if prefix else data
    state = _claim_pickler(buffer_callback)
    if state is None:
        buf = io.BytesIO()
        buf.write(prefix)
        ForkingPickler(buf, buffer_callback=buffer_callback).dump(obj)
        return buf.getvalue()
    chunks = state.chunks
    if prefix:
        chunks.append(prefix)
    try:
        state.pickler.dump(obj)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        _release_pickler(state)


def dumps_each(objs: Iterable[Any], buffer_callback: Callable[[PickleBuffer], Any] | None = None
               ) -> list[bytes | Exception]:
    """Each object pickled on its own (``dumps_bytes`` of each), or the exception its pickling raised.

    For many small objects at once: the thread's pickler is looked up and checked once for the lot.
    """
    results: list[bytes | Exception] = []
    state = _claim_pickler(buffer_callback)
    if state is None:
        for obj in objs:
            try:
                results.append(dumps_bytes(obj, buffer_callback))
            except Exception as exc:
                results.append(exc)
        return results
    chunks = state.chunks
    dump, clear_memo, join, append = state.pickler.dump, state.pickler.clear_memo, b"".join, results.append
    try:
        for obj in objs:
            try:
                dump(obj)
                append(chunks[0] if len(chunks) == 1 else join(chunks))
            except Exception as exc:
                append(exc)
            chunks.clear()
            clear_memo()
    finally:
        _release_pickler(state)
    return results


# -- the spawning popen ------------------------------------------------------------------------------------

_spawning = _thread._local()


def get_spawning_popen() -> SpawningPopen | None:
    """The popen pickling a process object in this thread right now, if any."""
    return getattr(_spawning, "popen", None)


def set_spawning_popen(popen: SpawningPopen | None) -> None:
    _spawning.popen = popen


def assert_spawning(obj: object) -> None:
    """Refuse to pickle ``obj`` unless a child process is being created."""
    if get_spawning_popen() is None:
        raise RuntimeError(
            f"{type(obj).__name__} objects should only be shared between processes through inheritance: "
            "pass them as arguments to Process (or keep them as attributes of the Process object) instead of "
            "sending them through a queue or a pipe"
        )


# The fds a spawn or forkserver child received, in the order its parent's popen recorded them.
_inherited_fds: list[int] = []


class _InheritedFd:
    """A file descriptor handed to a child at its creation, found again by index."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return (_InheritedFd, (self.index,))

    def detach(self) -> int:
        try:
            return _inherited_fds[self.index]
        except IndexError:
            raise RuntimeError(
                "a file descriptor meant for a child at its creation was unpickled elsewhere; "
                "objects holding fds can only travel inside the Process object or over a Connection"
            ) from None


def DupFd(fd: int) -> _Detachable:
    """Something picklable whose ``detach()`` gives the receiving process its own copy of ``fd``."""
    popen = get_spawning_popen()
    if popen is not None:
        return _InheritedFd(popen.duplicate_for_child(fd))
    if HAVE_SEND_HANDLE:
        from ._resource_sharer import SharedFd

        return SharedFd(fd)
    raise ValueError("this platform cannot pass file descriptors between processes")  # pragma: no cover


# -- sockets -----------------------------------------------------------------------------------------------

def _rebuild_socket(df: _Detachable, family: int, type_: int, proto: int) -> Any:
    import socket

    return socket.socket(family, type_, proto, fileno=df.detach())


def _reduce_socket(sock: Any) -> tuple[Any, ...]:
    return _rebuild_socket, (DupFd(sock.fileno()), sock.family, sock.type, sock.proto)


_lazy_done = False


def _register_lazy_reducers() -> None:
    # A socket can only exist once ``socket`` is imported; registering then keeps it off the bootstrap path.
    global _lazy_done
    if _lazy_done or "socket" not in sys.modules:
        return
    import socket

    ForkingPickler._extra_reducers.setdefault(socket.socket, _reduce_socket)
    _lazy_done = True


# -- passing fds over a unix-socket connection ------------------------------------------------------------

def send_handle(conn: Any, handle: int, destination_pid: int | None = None) -> None:
    """Send the file descriptor ``handle`` over ``conn`` (a connection on a unix socket)."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(conn.fileno())) as s:
        s.settimeout(None)
        socket.send_fds(s, [b"F"], [handle])


def recv_handle(conn: Any) -> int:
    """Receive a file descriptor sent by ``send_handle`` over ``conn``."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(conn.fileno())) as s:
        s.settimeout(None)
        msg, fds, _flags, _addr = socket.recv_fds(s, 1, 1)
        if not msg and not fds:
            raise EOFError("the peer closed the connection before sending a file descriptor")
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise RuntimeError(f"expected one file descriptor from the peer, received {len(fds)}")
        return fds[0]


def sendfds(sock: Any, fds: Any) -> None:
    """Send the file descriptors ``fds`` over the unix socket ``sock``."""
    import socket

    fds = list(fds)
    socket.send_fds(sock, [bytes([len(fds) % 256])], fds)


def recvfds(sock: Any, size: int) -> list[int]:
    """Receive ``size`` file descriptors sent with ``sendfds`` over the unix socket ``sock``."""
    import socket

    msg, fds, _flags, _addr = socket.recv_fds(sock, 1, size)
    if not msg and not fds:
        raise EOFError("the peer closed the socket before sending file descriptors")
    if len(fds) != size or msg[0] != size % 256:
        for fd in fds:
            os.close(fd)
        raise RuntimeError(f"expected {size} file descriptors from the peer, received {len(fds)}")
    return list(fds)
