from collections.abc import Callable, Sequence
from typing import Any

from ._psem import Semaphore

CONTROL_SIZE: int

def init(control: Any, /) -> None:
    """Reset a queue's control block (a new queue)."""

def get(fd: int, control: Any, wlock: Semaphore | None, timeout: float | None,
        on_lost: Callable[[], object] | None, /) -> bytes | None:
    """One message, waiting at most ``timeout`` seconds for it to begin (None: forever); None if none began."""

def put(wfd: int, rfd: int | None, control: Any, wlock: Semaphore | None, rlock: Semaphore | None,
        messages: Sequence[bytes], block: bool, on_lost: Callable[[], object] | None, /) -> bool:
    """Write the messages, holding the write lock; False without ``block`` while a dead writer's tail is settled."""

def stashed(control: Any, /) -> int:
    """Bytes read ahead (a hint)."""

def lost(control: Any, /) -> int:
    """Messages lost to a death so far."""
