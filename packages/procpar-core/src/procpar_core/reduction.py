"""Pickling for other processes: ``ForkingPickler``, ``register``, fd passing."""

from __future__ import annotations

from ._reduction import (
    HAVE_SEND_HANDLE,
    HIGHEST_PROTOCOL,
    DupFd,
    ForkingPickler,
    assert_spawning,
    dumps,
    loads,
    recv_handle,
    recvfds,
    register,
    send_handle,
    sendfds,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import IO, Any

__all__ = [
    "ForkingPickler",
    "register",
    "dump",
    "dumps",
    "loads",
    "DupFd",
    "send_handle",
    "recv_handle",
    "sendfds",
    "recvfds",
    "assert_spawning",
    "HAVE_SEND_HANDLE",
    "HIGHEST_PROTOCOL",
]


def dump(obj: Any, file: IO[bytes], protocol: int | None = None) -> None:
    """Pickle ``obj`` into ``file`` with procpar's reducers."""
    ForkingPickler(file, protocol).dump(obj)
