"""Connection objects, ``Pipe``, ``Listener``, ``Client`` and ``wait``.

Wire format (docs/design.md section 3): ``!i`` length, or ``-1`` then ``!Q`` length for messages of 2 GiB and
more, then the body. A message is written with one ``write``/``writev``; reading takes the header, then exactly
the body, never more (several processes may share one pipe under a lock).
"""

from __future__ import annotations

import errno
import itertools
import os
import select
import sys
import time
from struct import Struct

from . import _serializer
from ._auth import ServerHandshake, answer_challenge, deliver_challenge
from ._errors import AuthenticationError, BufferTooShort
from ._reduction import DupFd, loads
from ._util import SIGNAL_SLICE, Finalize, get_temp_dir, in_main_thread

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any, Iterable, TypeVar, Union, overload

    from _typeshed import HasFileno, ReadableBuffer, WriteableBuffer

    # What wait() takes and gives back: connections, sockets, sentinels (ints), anything with fileno().
    Waitable = TypeVar("Waitable", bound=Union[HasFileno, int])
    # A listener's address: (host, port) for AF_INET; a path (bytes for Linux's abstract names) for AF_UNIX.
    Address = Union[str, bytes, tuple[str, int]]
    # What a caller may give as one: a path-like object too.
    AddressLike = Union[Address, "os.PathLike[str]"]
else:
    from .runtime_typing import overload

__all__ = [
    "Connection",
    "Pipe",
    "Listener",
    "Client",
    "wait",
    "deliver_challenge",
    "answer_challenge",
    "AuthenticationError",
    "BufferTooShort",
]

_HEADER = Struct("!i")
_LONG_HEADER = Struct("!iQ")
_LONG_LENGTH = Struct("!Q")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack
_MAX_SHORT = 0x7FFFFFFF
# Below this the header and body are joined into one bytes object; above it writev avoids the copy.
_JOIN_LIMIT = 16384
# Bodies up to this size are read with os.read directly; above it, into one preallocated buffer.
_SMALL_READ = 65536
_PIPE_SIZE = 1 << 20

BUFSIZE = 8192
CONNECTION_TIMEOUT = 20.0
# How long a peer accepted by an authenticating Listener has to complete the handshake.
HANDSHAKE_TIMEOUT = CONNECTION_TIMEOUT
default_family = "AF_UNIX" if sys.platform != "win32" else "AF_INET"
families = ["AF_INET"] + (["AF_UNIX"] if sys.platform != "win32" else [])

_os_read = os.read
_write = os.write


def _wait_again(handle: int) -> None:
    # A read gave up (a receive timeout of one slice, set for Ctrl-C: see Connection._ready_for_signals), or the
    # fd is non-blocking: signal handlers have had their chance; sleep until it is readable, a slice at most.
    _poll_one(handle, SIGNAL_SLICE)


def _read(handle: int, size: int) -> bytes:
    while True:
        try:
            return _os_read(handle, size)
        except BlockingIOError:
            _wait_again(handle)


def _grow_pipe(fd: int) -> None:
    # Best effort: a 1 MiB pipe buffer means fewer wake-ups per large message. Linux only.
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
    except (OSError, ImportError, AttributeError):
        pass


class Connection:
    """One end of a message channel over a pipe or a socket file descriptor."""

    __slots__ = ("__weakref__", "_fast", "_handle", "_readable", "_sliced", "_writable")

    def __init__(self, handle: int, readable: bool = True, writable: bool = True) -> None:
        handle = handle.__index__()
        if handle < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        self._handle: int | None = handle
        self._readable = readable
        self._writable = writable
        self._sliced = False  # reads of the main thread cannot miss a signal (see _ready_for_signals)
        self._fast = True  # the last message came within SPIN_SECONDS of asking: look for the next awake

    # -- state ---------------------------------------------------------------------------------------------

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None:
            self._close()

    def _close(self) -> None:
        handle = self._handle
        self._handle = None
        if handle is not None:
            try:
                os.close(handle)
            except OSError:
                pass

    def _check_closed(self) -> int:
        handle = self._handle
        if handle is None:
            raise OSError("handle is closed")
        return handle

    @property
    def closed(self) -> bool:
        """True if the connection is closed."""
        return self._handle is None

    @property
    def readable(self) -> bool:
        """True if the connection can be read from."""
        return self._readable

    @property
    def writable(self) -> bool:
        """True if the connection can be written to."""
        return self._writable

    def fileno(self) -> int:
        """The file descriptor used by the connection."""
        return self._check_closed()

    def close(self) -> None:
        """Close the connection (also done when it is garbage collected)."""
        self._close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else f"handle={self._handle}"
        mode = ("r" if self._readable else "") + ("w" if self._writable else "")
        return f"<{type(self).__name__} {state} mode={mode}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_connection, (DupFd(self.fileno()), self._readable, self._writable))

    # -- sending ------------------------------------------------------------------------------------------

    def send_bytes(self, buf: ReadableBuffer, offset: int = 0, size: int | None = None) -> None:
        """Send ``buf[offset:offset + size]`` (a bytes-like object) as one message."""
        handle = self._handle
        if handle is None:
            raise OSError("handle is closed")
        if not self._writable:
            raise OSError("connection is read-only")
        m = memoryview(buf)
        if m.itemsize > 1 or m.ndim != 1:
            m = m.cast("B")
        n = m.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        if offset or size != n:
            m = m[offset : offset + size]
        self._send_message(handle, m, size)

    def send(self, obj: object) -> None:
        """Send a picklable object; the peer gets it with ``recv()``."""
        handle = self._handle
        if handle is None:
            raise OSError("handle is closed")
        if not self._writable:
            raise OSError("connection is read-only")
        data = _serializer.serialize(obj)
        self._send_message(handle, data, len(data))

    @staticmethod
    def _send_message(handle: int, data: Any, size: int) -> None:
        if size <= _JOIN_LIMIT:
            message = b"".join((_pack_header(size), data))
            written = _write(handle, message)
            if written == len(message):
                return
            _write_all(handle, memoryview(message)[written:])
            return
        header = _pack_header(size) if size <= _MAX_SHORT else _LONG_HEADER.pack(-1, size)
        total = len(header) + size
        written = os.writev(handle, (header, data))
        if written < total:
            rest = memoryview(data)[max(written - len(header), 0) :]
            if written < len(header):
                _write_all(handle, memoryview(header)[written:])
            _write_all(handle, rest)

    # -- receiving ----------------------------------------------------------------------------------------

    def _ready_for_signals(self, handle: int) -> None:
        """Before the main thread blocks reading: a signal that comes just before the read starts must not
        wait for a message that may never come (see procpar_core._util). A socket gets a receive timeout of
        one slice, set once, so reads return to Python every slice while idle and cost nothing when data is
        there; a pipe, which has no such option, is waited on in slices first."""
        if not _is_socket(handle):
            _poll_one(handle, None)
            return
        import socket
        import struct

        sock = socket.socket(fileno=handle)
        try:
            micros = int(SIGNAL_SLICE * 1e6)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", micros // 10**6, micros % 10**6))
        except OSError:
            _poll_one(handle, None)
            return
        finally:
            sock.detach()
        self._sliced = True

    def _read_length(self, handle: int) -> int:
        if not (self._fast and _spin_readable(handle)):
            started = _monotonic()
            if not self._sliced and in_main_thread():
                self._ready_for_signals(handle)
            header = _read(handle, 4)
            self._fast = _monotonic() - started < SPIN_SECONDS
        else:
            header = _read(handle, 4)
        if len(header) != 4:
            if not header:
                raise EOFError
            header += _read_exact(handle, 4 - len(header))
        (size,) = _unpack_header(header)
        if size < 0:
            if size != -1:
                raise OSError(f"invalid message length {size} received: the peer is not speaking this protocol")
            (size,) = _LONG_LENGTH.unpack(_read_exact(handle, 8))
        return int(size)

    def _readable_handle(self) -> int:
        handle = self._handle
        if handle is None:
            raise OSError("handle is closed")
        if not self._readable:
            raise OSError("connection is write-only")
        return handle

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        """Receive one message as bytes; ``OSError`` if it is longer than ``maxlength``.

        The rest of that message is not read: a duplex connection then stops reading (it can still send), a
        read-only one is closed, as the stdlib's do.
        """
        handle = self._readable_handle()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        size = self._read_length(handle)
        if maxlength is not None and size > maxlength:
            if self._writable:
                self._readable = False
            else:
                self._close()
            raise OSError(f"bad message length: {size} bytes received, at most {maxlength} accepted")
        return _read_body(handle, size)

    def recv(self) -> Any:
        """Receive one object sent with ``send()``."""
        handle = self._readable_handle()
        return loads(_read_body(handle, self._read_length(handle)))

    def recv_bytes_into(self, buf: WriteableBuffer, offset: int = 0) -> int:
        """Read one message into the writable buffer ``buf`` at byte ``offset``; return its size in bytes.

        Raises ``BufferTooShort`` (holding the whole message) if it does not fit.
        """
        handle = self._readable_handle()
        with memoryview(buf) as m:
            if m.readonly:
                raise TypeError("recv_bytes_into() needs a writable buffer")
            bytesize = m.nbytes
            if offset < 0:
                raise ValueError("negative offset")
            if offset > bytesize:
                raise ValueError("offset too large")
            size = self._read_length(handle)
            if size > bytesize - offset:
                raise BufferTooShort(_read_body(handle, size))
            with m.cast("B") as target:
                _readinto_exact(handle, target[offset : offset + size])
            return size

    def poll(self, timeout: float | None = 0.0) -> bool:
        """True if a message (or EOF) is waiting; wait up to ``timeout`` seconds (None: forever)."""
        handle = self._readable_handle()
        return _poll_one(handle, timeout)


def _write_all(handle: int, view: memoryview) -> None:
    while len(view):
        written = _write(handle, view)
        view = view[written:]


def _read_exact(handle: int, size: int) -> bytes:
    data = _read(handle, size)
    if len(data) == size:
        return data
    if not data:
        raise OSError("got end of file during message") if size else EOFError
    parts = [data]
    got = len(data)
    while got < size:
        chunk = _read(handle, size - got)
        if not chunk:
            raise OSError("got end of file during message")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _readinto_exact(handle: int, target: memoryview) -> None:
    pos = 0
    size = len(target)
    while pos < size:
        try:
            got = os.readv(handle, [target[pos:]])
        except BlockingIOError:
            _wait_again(handle)
            continue
        if not got:
            raise OSError("got end of file during message")
        pos += got


def _read_body(handle: int, size: int) -> bytes:
    if size <= _SMALL_READ:
        return _read_exact(handle, size) if size else b""
    if _is_socket(handle):
        return _recv_waitall(handle, size)
    return _read_pipe_body(handle, size)


def _is_socket(handle: int) -> bool:
    import stat

    return stat.S_ISSOCK(os.fstat(handle).st_mode)


def _recv_waitall(handle: int, size: int) -> bytes:
    # MSG_WAITALL lets the kernel fill the final bytes object directly: no user-space copy at all, where
    # reading chunks and joining them (or copying out of a bytearray) costs a second pass over fresh pages,
    # which measured 2.5-3x slower for 16 MiB messages.
    import socket

    sock = socket.socket(fileno=handle)
    try:
        # A socket object made with socket.setdefaulttimeout() in force would switch the fd to non-blocking.
        sock.settimeout(None)
        data = _recv_all(sock, size)
        if len(data) == size:
            return data
        if not data:
            raise OSError("got end of file during message")
        # A signal or EOF cut the wait short: collect the rest.
        parts = [data]
        got = len(data)
        while got < size:
            chunk = _recv_all(sock, size - got)
            if not chunk:
                raise OSError("got end of file during message")
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)
    finally:
        sock.detach()


def _recv_all(sock: Any, size: int) -> bytes:
    import socket

    while True:
        try:
            return bytes(sock.recv(size, socket.MSG_WAITALL))
        except BlockingIOError:
            _wait_again(sock.fileno())


def _read_pipe_body(handle: int, size: int) -> bytes:
    # Pipe reads are capped at the pipe's capacity: asking for the whole body would make os.read allocate
    # (and shrink) a body-sized block per chunk. BytesIO.getvalue() hands over its buffer without a copy.
    import io

    buf = io.BytesIO()
    remaining = size
    while remaining:
        chunk = _read(handle, min(remaining, _PIPE_SIZE))
        if not chunk:
            raise OSError("got end of file during message")
        buf.write(chunk)
        remaining -= len(chunk)
    return buf.getvalue()


def _rebuild_connection(df: Any, readable: bool, writable: bool) -> Connection:
    return Connection(df.detach(), readable, writable)


# -- waiting ------------------------------------------------------------------------------------------------

# How long a reader looks for a message without sleeping, when the one before came that soon: a process
# asleep in read() takes tens of microseconds to wake, the whole of a short request-reply round trip.
SPIN_SECONDS = 0.0002
_monotonic = time.monotonic


def _spin_readable(fd: int) -> bool:
    """Whether ``fd`` becomes readable within SPIN_SECONDS, looking without sleeping (the GIL is let go in
    each poll, and the CPU offered to others between two)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    look = poller.poll
    if look(0):
        return True
    deadline = _monotonic() + SPIN_SECONDS
    yield_cpu = os.sched_yield
    while _monotonic() < deadline:
        yield_cpu()
        if look(0):
            return True
    return False


def _timeout_ms(timeout: float | None) -> int:
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0
    # Round up: waking a millisecond early would make callers loop or report a spurious timeout.
    return min(int(timeout * 1000) + (timeout * 1000 % 1 > 0), 2**31 - 1)


if hasattr(select, "poll"):

    def _poll_one(fd: int, timeout: float | None) -> bool:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if timeout is not None and timeout <= 0:
            return bool(poller.poll(0))
        # In the main thread no sleep lasts more than a slice: a signal handler runs between two.
        slice_ms = _timeout_ms(SIGNAL_SLICE) if in_main_thread() else -1
        if timeout is None:
            while True:
                if poller.poll(slice_ms):
                    return True
        deadline = time.monotonic() + timeout
        while True:
            ms = _timeout_ms(timeout)
            if poller.poll(ms if slice_ms < 0 else min(ms, slice_ms)):
                return True
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return False

else:  # pragma: no cover - platforms without poll()

    def _poll_one(fd: int, timeout: float | None) -> bool:
        if timeout is not None and timeout < 0:
            timeout = 0
        return bool(select.select([fd], [], [], timeout)[0])


def _fileno_of(obj: Any) -> int:
    if isinstance(obj, int):
        return obj
    try:
        fileno = obj.fileno
    except AttributeError:
        raise TypeError(f"wait() needs connections, sockets or integer fds, not {type(obj).__name__}") from None
    return int(fileno())


@overload
def wait(object_list: Iterable[Waitable], timeout: float | None = None) -> list[Waitable]: ...
@overload
def wait(  # type: ignore[overload-cannot-match]  # reached by a list of mixed kinds, inferred as list[object]
        object_list: Iterable[HasFileno | int], timeout: float | None = None) -> list[HasFileno | int]: ...
def wait(  # type: ignore[misc]
        object_list: Iterable[HasFileno | int], timeout: float | None = None) -> list[HasFileno | int]:
    """Wait until at least one object of ``object_list`` is ready; return the ready ones.

    The objects are connections, sockets, process sentinels or anything with ``fileno()``. A connection is
    ready when it has data or its peer closed; a sentinel when its process ended. With a ``timeout`` (seconds)
    it returns ``[]`` when time runs out; ``None`` waits forever.
    """
    objects = list(object_list)
    by_fd: dict[int, list[Any]] = {}
    for obj in objects:
        by_fd.setdefault(_fileno_of(obj), []).append(obj)
    if not hasattr(select, "poll"):  # pragma: no cover
        ready_fds = select.select(list(by_fd), [], [], None if timeout is None else max(timeout, 0))[0]
        return [o for fd in ready_fds for o in by_fd[fd]]
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    # In the main thread no sleep lasts more than a slice: a signal handler runs between two.
    slice_ms = _timeout_ms(SIGNAL_SLICE) if in_main_thread() else -1
    while True:
        ms = _timeout_ms(timeout)
        if slice_ms >= 0 and (ms < 0 or ms > slice_ms):
            ms = slice_ms
        events = poller.poll(ms)
        if events:
            ready = {fd for fd, _ in events}
            return [o for o in objects if _fileno_of(o) in ready]
        if deadline is None:
            continue
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            return []


# -- Pipe ---------------------------------------------------------------------------------------------------

def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Return a pair of connected ``Connection`` objects.

    ``duplex=True``: both ends send and receive (a socket pair). ``duplex=False``: the first end only
    receives, the second only sends (an OS pipe).
    """
    if duplex:
        # The C module, not ``socket``: that one loads selectors, enum's socket flags and more, ~5 ms of a
        # program's first Pool. Its socketpair defaults to AF_UNIX, SOCK_STREAM.
        import _socket

        s1, s2 = _socket.socketpair()
        # Connections block; a socket.setdefaulttimeout() of the program must not make these non-blocking.
        s1.setblocking(True)
        s2.setblocking(True)
        try:
            return Connection(s1.detach()), Connection(s2.detach())
        finally:
            s1.close()
            s2.close()
    r, w = os.pipe()
    _grow_pipe(w)
    return Connection(r, writable=False), Connection(w, readable=False)


# -- addresses ---------------------------------------------------------------------------------------------

_address_counter = itertools.count()


def address_type(address: AddressLike) -> str:
    """The family (``'AF_INET'``, ``'AF_UNIX'``, ``'AF_PIPE'``) an address belongs to."""
    if isinstance(address, tuple):
        return "AF_INET"
    if isinstance(address, str) and address.startswith("\\\\"):
        return "AF_PIPE"
    if isinstance(address, (str, bytes)) or _is_pathlike(address):
        return "AF_UNIX"
    raise ValueError(f"address type of {address!r} unrecognized")


def _is_pathlike(obj: Any) -> bool:
    return hasattr(obj, "__fspath__")


def _plain_address(address: AddressLike) -> Address:
    # The socket calls take str, bytes or a tuple: a path-like object is given as its path.
    if isinstance(address, (str, bytes, tuple)):
        return address
    return os.fspath(address)


def arbitrary_address(family: str) -> Address:
    """A fresh address of ``family`` nobody else uses: a free localhost port, or a private socket path."""
    if family == "AF_INET":
        return ("localhost", 0)
    if family == "AF_UNIX":
        return os.path.join(get_temp_dir(), f"listener-{os.getpid()}-{next(_address_counter)}")
    raise ValueError(f"unrecognized family {family!r}")


def _validate_family(family: str) -> None:
    if family == "AF_PIPE":
        raise ValueError("family AF_PIPE (Windows named pipes) is not supported: procpar runs on POSIX")
    if family not in families:
        raise ValueError(f"family {family!r} is not supported here; use one of {families}")


# -- Listener and Client ------------------------------------------------------------------------------------

class _SocketListener:
    def __init__(self, address: AddressLike, family: str, backlog: int = 1) -> None:
        import socket

        address = _plain_address(address)
        self._socket = socket.socket(getattr(socket, family))
        try:
            if family == "AF_INET" and os.name == "posix":
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.setblocking(True)
            self._socket.bind(address)
            self._socket.listen(backlog)
            self._address: Address = self._socket.getsockname()
        except OSError:
            self._socket.close()
            raise
        self._family = family
        self._closed = False
        self._owner = os.getpid()
        self._last_accepted: Address | None = None
        self._unlink: Finalize | None = None
        if family == "AF_UNIX" and not _is_abstract(address):
            self._unlink = Finalize(self, os.unlink, args=(address,), exitpriority=0)

    def fileno(self) -> int:
        if self._closed:
            raise _closed_listener()
        return self._socket.fileno()

    def accept(self) -> Connection:
        if in_main_thread():
            _poll_one(self.fileno(), None)  # in slices, for Ctrl-C
        return self._accept_ready()

    def _accept_ready(self) -> Connection:
        try:
            sock, self._last_accepted = self._socket.accept()
        except OSError as exc:
            if self._closed:  # by another thread, while this one waited
                raise _closed_listener() from exc
            raise
        sock.setblocking(True)
        return Connection(sock.detach())

    def close(self) -> None:
        import socket

        self._closed = True
        try:
            # Closing alone leaves a thread blocked in accept() or poll() on it asleep for good (as the stdlib's
            # does); a shut-down listening socket wakes them, and accept() then fails. Not in a forked child:
            # its copy shares the socket, and shutting that down would stop its parent's listener.
            if os.getpid() == self._owner:
                try:
                    self._socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # never listened, or closed already
            self._socket.close()
        finally:
            unlink = self._unlink
            if unlink is not None:
                self._unlink = None
                try:
                    unlink()
                except FileNotFoundError:
                    pass


def _closed_listener() -> OSError:
    return OSError(errno.EBADF, "the listener is closed")


def _is_abstract(address: Any) -> bool:
    return isinstance(address, (str, bytes)) and address[:1] in ("\0", b"\0")


class Listener:
    """A bound, listening socket that hands out authenticated ``Connection`` objects.

    ``address``: ``(host, port)`` for AF_INET, a path for AF_UNIX; None picks a fresh one. ``authkey``: bytes;
    when given, every accepted peer must pass the HMAC challenge (both ways) before ``accept`` returns.
    Handshakes run side by side: a peer that stalls in its handshake delays nobody else, and is dropped after
    ``handshake_timeout`` seconds.
    """

    def __init__(
        self,
        address: AddressLike | None = None,
        family: str | None = None,
        backlog: int = 1,
        authkey: bytes | None = None,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        family = family or (address_type(address) if address else default_family)
        _validate_family(family)
        if address is None:
            address = arbitrary_address(family)
        elif address_type(address) != family:
            raise ValueError(f"address {address!r} does not belong to family {family}")
        if authkey is not None and not isinstance(authkey, bytes):
            raise TypeError(f"authkey should be a byte string, not {type(authkey).__name__}")
        if not handshake_timeout > 0:
            raise ValueError(f"handshake_timeout must be a positive number of seconds, not {handshake_timeout!r}")
        self._listener: _SocketListener | None = _SocketListener(address, family, backlog)
        self._authkey = authkey
        self._handshake_timeout = float(handshake_timeout)
        # Peers taken from the socket whose handshake is under way, and the outcomes not handed out yet.
        self._handshakes: list[ServerHandshake] = []
        self._done: list[tuple[Connection, Address | None]] = []
        self._failures: list[BaseException] = []
        self._last_accepted: Address | None = None

    def accept(self) -> Connection:
        """Wait for a peer, authenticate it if an authkey was given, return the connection.

        A peer that fails the challenge makes this raise ``AuthenticationError`` (as the stdlib's does); one
        that does not finish its handshake in time, too, with a message that says so.
        """
        listener = self._listener
        if listener is None:
            raise _closed_listener()
        if self._authkey is None:
            conn = listener.accept()
            self._last_accepted = listener._last_accepted
            return conn
        while True:
            if self._done:
                conn, self._last_accepted = self._done.pop(0)
                return conn
            if self._failures:
                raise self._failures.pop(0)
            self._step(listener)

    def _step(self, listener: _SocketListener) -> None:
        """Wait (at most until the nearest handshake deadline) and move every handshake that can move."""
        poller = select.poll()
        listening = listener.fileno()
        poller.register(listening, select.POLLIN)
        for handshake in self._handshakes:
            poller.register(handshake.fileno(), select.POLLIN)
        timeout: float | None = None
        if self._handshakes:
            timeout = max(0.0, min(h.deadline for h in self._handshakes) - time.monotonic())
        if in_main_thread():
            timeout = SIGNAL_SLICE if timeout is None else min(timeout, SIGNAL_SLICE)
        ready = {fd for fd, _ in poller.poll(-1 if timeout is None else _timeout_ms(timeout))}
        if self._listener is not listener:
            raise _closed_listener()  # by another thread, while this one waited
        if listening in ready:
            try:
                conn = listener._accept_ready()
            except (BlockingIOError, ConnectionAbortedError):
                conn = None  # the peer gave up between poll() and accept()
            if conn is not None:
                address = listener._last_accepted
                try:
                    self._handshakes.append(ServerHandshake(conn, address, self._authkey or b"",
                                                            time.monotonic() + self._handshake_timeout))
                except OSError:
                    conn.close()  # it left before our challenge: nobody else's business
                except BaseException:
                    conn.close()
                    raise
        now = time.monotonic()
        for handshake in list(self._handshakes):
            try:
                if handshake.fileno() in ready:
                    if not handshake.advance():
                        continue
                    self._handshakes.remove(handshake)
                    self._done.append((handshake.connection, handshake.address))
                elif now >= handshake.deadline:
                    raise handshake.expired(self._handshake_timeout)
            except (AuthenticationError, EOFError, OSError) as exc:
                self._handshakes.remove(handshake)
                handshake.connection.close()
                if isinstance(exc, AuthenticationError):
                    self._failures.append(exc)
                # a peer that simply left is nobody's business

    def close(self) -> None:
        """Close the listening socket (and remove its socket file)."""
        listener = self._listener
        if listener is not None:
            self._listener = None
            for handshake in self._handshakes:
                handshake.connection.close()
            for conn, _ in self._done:
                conn.close()
            self._handshakes, self._done, self._failures = [], [], []
            listener.close()

    @property
    def address(self) -> Address:
        """The address the listener is bound to."""
        listener = self._listener
        if listener is None:
            raise _closed_listener()
        return listener._address

    @property
    def last_accepted(self) -> Address | None:
        """The address of the last accepted peer, or None."""
        if self._listener is None:
            raise _closed_listener()
        return self._last_accepted

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._listener is None:
            return f"<{type(self).__name__} closed>"
        return f"<{type(self).__name__} address={self._listener._address!r}>"


def _socket_client(address: AddressLike, family: str) -> Connection:
    import socket

    address = _plain_address(address)
    with socket.socket(getattr(socket, family)) as s:
        s.setblocking(True)
        if family == "AF_UNIX":
            deadline = time.monotonic() + CONNECTION_TIMEOUT
            delay = 0.001
            while True:
                try:
                    s.connect(address)
                    break
                except OSError as exc:
                    # A listener whose backlog is full refuses with EAGAIN on unix sockets: retry briefly.
                    if exc.errno != errno.EAGAIN or time.monotonic() > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
        else:
            s.connect(address)
        return Connection(s.detach())


def Client(
    address: AddressLike, family: str | None = None, authkey: bytes | None = None
) -> Connection:
    """Connect to a ``Listener`` at ``address``; with ``authkey``, pass (and give) the HMAC challenge."""
    family = family or address_type(address)
    _validate_family(family)
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError(f"authkey should be a byte string, not {type(authkey).__name__}")
    conn = _socket_client(address, family)
    if authkey is not None:
        try:
            answer_challenge(conn, authkey)
            deliver_challenge(conn, authkey)
        except BaseException:
            conn.close()
            raise
    return conn


def SocketClient(address: AddressLike) -> Connection:
    return _socket_client(address, address_type(address))

