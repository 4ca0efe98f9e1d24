"""``multiprocessing.dummy.connection``: ``Pipe``, ``Listener`` and ``Client`` between threads, over queues."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

__all__ = ["Client", "Listener", "Pipe", "Connection", "families"]

families = ["AF_INET"]

# What a Listener's queue carries: a client's pair of queues, or None once the listener is closed.
_Pairs = queue.Queue["tuple[queue.Queue[object], queue.Queue[object]] | None"]


class Connection:
    """One end of a thread-to-thread channel: what one end sends, the other receives (objects, not copies)."""

    def __init__(self, _in: queue.Queue[object], _out: queue.Queue[object]) -> None:
        self._in = _in
        self._out = _out
        self.send: Callable[[object], None] = _out.put
        self.send_bytes: Callable[[object], None] = _out.put
        # Any, as the process connections' recv(): what arrives is whatever the other end sent.
        self.recv: Callable[[], Any] = _in.get
        self.recv_bytes: Callable[[], Any] = _in.get

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
    a: queue.Queue[object] = queue.Queue()
    b: queue.Queue[object] = queue.Queue()
    return Connection(a, b), Connection(b, a)


class Listener:
    """Accepts ``Client`` connections from other threads; its ``address`` is what they connect to."""

    def __init__(self, address: object = None, family: str | None = None, backlog: int = 1) -> None:
        # ``address`` and ``family`` are the process Listener's: threads meet through this queue instead.
        self._backlog_queue: _Pairs | None = queue.Queue(backlog)

    def accept(self) -> Connection:
        pairs = self._backlog_queue
        if pairs is None:
            raise OSError("the listener is closed")
        pair = pairs.get()
        if pair is None:  # closed while this thread waited
            raise OSError("the listener is closed")
        return Connection(*pair)

    def close(self) -> None:
        pairs, self._backlog_queue = self._backlog_queue, None
        if pairs is not None:
            try:
                pairs.put_nowait(None)  # wakes a thread waiting in accept()
            except queue.Full:
                pass  # nobody waits: the queue holds clients not accepted yet

    @property
    def address(self) -> _Pairs | None:
        return self._backlog_queue

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def Client(address: _Pairs) -> Connection:
    """Connect to the ``Listener`` whose ``address`` is given."""
    _in: queue.Queue[object] = queue.Queue()
    _out: queue.Queue[object] = queue.Queue()
    address.put((_out, _in))
    return Connection(_in, _out)
