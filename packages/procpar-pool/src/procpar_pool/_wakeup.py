"""The process engine's wake-up pipe: any thread writes a byte to make the engine thread look again.

One byte at most is in flight (``wake`` skips the write while one is pending), so a burst of submissions costs
one write and one read. The fd numbers are forgotten once closed: a child forked later must not close whatever
reuses them, and a late ``wake()`` must not write there.
"""

from __future__ import annotations

import os
import threading

__all__ = ["WakePipe"]


class WakePipe:
    __slots__ = ("_lock", "_pending", "reader", "writer")

    def __init__(self) -> None:
        self.reader, self.writer = os.pipe()
        os.set_blocking(self.writer, False)
        self._pending = False
        self._lock = threading.Lock()  # a write never races the close (the number could be another file's)

    def wake(self) -> None:
        if self._pending:
            return
        self._pending = True
        with self._lock:
            if self.writer >= 0:
                try:
                    os.write(self.writer, b"\0")
                except OSError:
                    pass

    def drain(self) -> None:
        """The engine thread read the pipe's readiness: empty it, then let the next wake() write again."""
        try:
            os.read(self.reader, 4096)
        except BlockingIOError:
            pass
        # Only now: a wake() between the flag reset and the read would have had its byte drained with its flag
        # still set, and every later wake() would skip the pipe (the engine looks at what it changed after this).
        self._pending = False

    def close(self) -> None:
        with self._lock:
            fds, self.reader, self.writer = (self.reader, self.writer), -1, -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def close_in_child(self) -> None:
        # Another thread of the parent may have held the lock at the fork; in the child nothing else runs here.
        self._lock = threading.Lock()
        self.close()
