from collections.abc import Sequence
from typing import Any

def read_message(fd: int, /) -> bytes:
    """Read one framed message from ``fd``; ``EOFError`` at end of file before a message."""

def write_messages(fd: int, messages: Sequence[bytes], socket_first: bool = False, /) -> None:
    """Write each bytes object to ``fd`` as one framed message, batched into ``writev`` calls.

    ``socket_first``: ``fd`` is a socket; what fits in its buffer is written without releasing the GIL."""

def unread(fd: int, /) -> int:
    """How many bytes wait to be read on the pipe or socket ``fd``."""

def read_message_stashed(fd: int, stash: Any, socket_first: bool = False, /) -> bytes:
    """Read one framed message, first from the shared ``stash``, refilling it from ``fd`` when needed.

    ``socket_first``: ``fd`` is a socket; what it holds is taken without releasing the GIL."""

def read_messages_stashed(fd: int, stash: Any, socket_first: bool = False, /) -> list[bytes]:
    """One message as ``read_message_stashed``, then every other whole message the stash holds after that read."""

def stashed(stash: Any, /) -> int:
    """How many bytes ``stash`` holds (read without the lock: a hint)."""

def has_message(stash: Any, /) -> bool:
    """Whether ``stash`` holds a whole message."""

def spin_readable(fd: int, seconds: float, /) -> bool:
    """Whether ``fd`` became readable within ``seconds`` (at most 1), looking again and again without sleeping."""

def pack_numbers(values: object, /) -> bytes | None:
    """A non-empty list of exact ints (each fitting in 64 bits) or of exact floats as a tag byte and native
    8-byte values; None for any other list or object."""

def unpack_numbers(packed: Any, /) -> list[Any]:
    """The list ``pack_numbers`` packed; ``ValueError`` if ``packed`` is not such a buffer."""
