"""Progress bars for the map family: tqdm's when it is installed, a plain one on stderr otherwise.

``progress=True`` picks one; ``progress`` may also be any object with ``update(n)`` and ``close()`` (a tqdm
bar you configured yourself, say). Updates come from the pool's engine thread.
"""

from __future__ import annotations

import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Literal, Protocol, TextIO, Union

    class ProgressBar(Protocol):
        """What a pool needs of a progress bar (tqdm's bars qualify)."""

        def update(self, n: int) -> object: ...

        def close(self) -> object: ...

    #: What ``progress=`` takes.
    Progress = Union[bool, Literal["workers"], ProgressBar]

__all__ = ["make_progress", "PlainProgress"]


class PlainProgress:
    """``[#####.....] 512/1024`` on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int | None, stream: TextIO | None = None, width: int = 30,
                 describe: Callable[[], str] | None = None) -> None:
        self.total = total
        self._describe = describe  # progress="workers": a line of per-worker counts after the bar
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._last = 0.0
        self._closed = False
        self._lock = threading.Lock()

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last >= 0.1 or (self.total is not None and self.done >= self.total):
                self._last = now
                self._draw()

    def _draw(self) -> None:
        if self.total:
            filled = min(self._width, self._width * self.done // self.total)
            line = f"\r[{'#' * filled}{'.' * (self._width - filled)}] {self.done}/{self.total}"
        else:
            line = f"\r{self.done} done"
        if self._describe is not None:
            line += "  " + self._describe() + "\x1b[K"  # erase what a longer line left
        self._stream.write(line)
        self._stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._draw()
            self._stream.write("\n")
            self._stream.flush()


def make_progress(progress: Progress, total: int | None, describe: Callable[[], str] | None = None
                  ) -> ProgressBar | None:
    """None for ``progress=False``; a bar for ``True``; for ``"workers"`` the plain bar followed by a live line
    of tasks done per worker (``describe``); the object itself if it already is one."""
    if not progress:
        return None
    if progress == "workers":
        return PlainProgress(total, describe=describe)
    if progress is not True:
        if not (hasattr(progress, "update") and hasattr(progress, "close")):
            raise TypeError("progress must be True, False or an object with update(n) and close() (a tqdm bar)")
        return progress
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return PlainProgress(total)
    bar: ProgressBar = tqdm(total=total)
    return bar
