from collections.abc import Sequence
from typing import Any

def read_message(fd: int, /) -> bytes:
    """Read one framed message from ``fd``; ``EOFError`` at end of file before a message."""

def write_messages(fd: int, messages: Sequence[bytes], /) -> None:
    """Write each bytes object to ``fd`` as one framed message, batched into ``writev`` calls."""

def unread(fd: int, /) -> int:
    """How many bytes wait to be read on the pipe or socket ``fd``."""

def read_message_stashed(fd: int, stash: Any, /) -> bytes:
    """Read one framed message, first from the shared ``stash``, refilling it from ``fd`` when needed."""

def stashed(stash: Any, /) -> int:
    """How many bytes ``stash`` holds (read without the lock: a hint)."""

def has_message(stash: Any, /) -> bool:
    """Whether ``stash`` holds a whole message."""
