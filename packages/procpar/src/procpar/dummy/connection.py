"""``multiprocessing.dummy.connection``: ``Pipe``, ``Listener`` and ``Client`` between threads, over queues."""

from __future__ import annotations

import queue
from typing import Any

__all__ = ["Client", "Listener", "Pipe", "Connection", "families"]

families = ["AF_INET"]


class Connection:
    """One end of a thread-to-thread channel: what one end sends, the other receives (objects, not copies)."""

    def __init__(self, _in: queue.Queue[Any], _out: queue.Queue[Any]) -> None:
        self._in = _in
        self._out = _out
        self.send = self.send_bytes = _out.put
        self.recv = self.recv_bytes = _in.get

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether something is waiting to be received (waiting up to ``timeout`` seconds)."""
        if self._in.qsize() > 0:
            return True
        if timeout is not None and timeout <= 0.0:
            return False
        with self._in.not_empty:
            self._in.not_empty.wait(timeout)
        return self._in.qsize() > 0

    def close(self) -> None:
        pass

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def Pipe(duplex: bool = True) -> tuple[Connection, Connection]:
    """Two connected ends (both ways even when ``duplex`` is False: queues do not care)."""
    a: queue.Queue[Any] = queue.Queue()
    b: queue.Queue[Any] = queue.Queue()
    return Connection(a, b), Connection(b, a)


class Listener:
    """Accepts ``Client`` connections from other threads; its ``address`` is what they connect to."""

    def __init__(self, address: Any = None, family: str | None = None, backlog: int = 1) -> None:
        self._backlog_queue: queue.Queue[Any] | None = queue.Queue(backlog)

    def accept(self) -> Connection:
        if self._backlog_queue is None:
            raise OSError("listener is closed")
        return Connection(*self._backlog_queue.get())

    def close(self) -> None:
        self._backlog_queue = None

    @property
    def address(self) -> queue.Queue[Any] | None:
        return self._backlog_queue

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def Client(address: queue.Queue[Any]) -> Connection:
    """Connect to the ``Listener`` whose ``address`` is given."""
    _in: queue.Queue[Any] = queue.Queue()
    _out: queue.Queue[Any] = queue.Queue()
    address.put((_out, _in))
    return Connection(_in, _out)
