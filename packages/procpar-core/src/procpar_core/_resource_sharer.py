"""Hands file descriptors to other processes that ask for them by key.

Used when a connection or socket is pickled outside process creation (sent over a ``Connection``).
A daemon thread owns a unix ``Listener`` authenticated with the process authkey; the pickle carries
(address, key); the receiver connects, names the key, and gets the fd by SCM_RIGHTS. An fd nobody asks for
stays registered until this process exits.
"""

from __future__ import annotations

import os
import threading

from ._reduction import recv_handle, send_handle

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["SharedFd", "stop"]


class _ResourceSharer:
    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # The serving thread does not exist in a forked child, and the registered fds were the parent's.
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[Callable[[Any, int | None], None], Callable[[], None]]] = {}
        self._next_key = 0
        self._listener: Any = None
        self._address: Any = None
        self._thread: threading.Thread | None = None

    def register(self, send: Callable[[Any, int | None], None], close: Callable[[], None]) -> tuple[Any, int]:
        with self._lock:
            if self._address is None:
                self._start()
            key = self._next_key
            self._next_key += 1
            self._cache[key] = (send, close)
            return self._address, key

    def _start(self) -> None:
        from ._connection import Listener
        from ._process import current_process

        self._listener = Listener(authkey=bytes(current_process().authkey), backlog=128)
        self._address = self._listener.address
        thread = threading.Thread(target=self._serve, name="procpar-resource-sharer", daemon=True)
        thread.start()
        self._thread = thread

    def _serve(self) -> None:
        listener = self._listener
        while True:
            try:
                conn = listener.accept()
            except OSError:
                return  # closed by stop()
            except Exception:
                continue  # a peer that failed authentication
            try:
                with conn:
                    key, destination_pid = conn.recv()
                    with self._lock:
                        entry = self._cache.pop(key, None)
                    if entry is None:
                        continue
                    send, close = entry
                    try:
                        send(conn, destination_pid)
                    finally:
                        close()
            except Exception:
                continue

    def stop(self, timeout: float | None = None) -> None:
        """Stop lending: close what was not fetched, stop the serving thread and wait for it up to
        ``timeout`` seconds (None: until it is gone)."""
        with self._lock:
            listener, self._listener, self._address = self._listener, None, None
            thread, self._thread = self._thread, None
            for _, close in self._cache.values():
                close()
            self._cache.clear()
        if listener is not None:
            inner = getattr(listener, "_listener", None)
            sock = getattr(inner, "_socket", None)
            if sock is not None:
                import socket

                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread's accept(): closing alone does not
                except OSError:
                    pass
            listener.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)


_sharer = _ResourceSharer()
stop = _sharer.stop


class SharedFd:
    """A picklable claim on a copy of an fd of this process; ``detach()`` in the receiver fetches it."""

    def __init__(self, fd: int) -> None:
        new_fd = os.dup(fd)

        def send(conn: Any, pid: int | None) -> None:
            send_handle(conn, new_fd, pid)

        def close() -> None:
            os.close(new_fd)

        self._id = _sharer.register(send, close)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._id,))

    def detach(self) -> int:
        from ._connection import Client
        from ._process import current_process

        address, key = self._id
        with Client(address, authkey=bytes(current_process().authkey)) as conn:
            conn.send((key, os.getpid()))
            return recv_handle(conn)


def _rebuild(ident: tuple[Any, int]) -> SharedFd:
    obj = SharedFd.__new__(SharedFd)
    obj._id = ident
    return obj
