"""Type aliases procpar-managers' signatures share (imported by type checkers only).

mypy runs with ``disallow_any_explicit`` over this package; the ``Any`` that a callable of any signature needs
(a registered type's constructor, a proxy type, an initializer) is written once, here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from procpar_core.connection import Connection

from ._proxy import BaseProxy

#: A callable of any signature whose result is not looked at (a registered callable, an initializer).
Function = Callable[..., object]  # type: ignore[explicit-any]
#: What makes a proxy from a token: a ``BaseProxy`` subclass, ``AutoProxy``, or a user's factory.
ProxyFactory = Callable[..., BaseProxy]  # type: ignore[explicit-any]
#: Where a manager listens: a path or abstract name (AF_UNIX; bytes for an abstract one), or ``(host, port)``.
Address = str | bytes | tuple[str, int]


class MessageConnection(Protocol):
    """A manager connection once authenticated: pickles (``Connection``) or XML-RPC text (``XmlConnection``)."""

    def send(self, obj: object) -> None: ...

    def recv(self) -> object: ...

    def poll(self, timeout: float | None = 0.0) -> bool: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


__all__ = ["Function", "ProxyFactory", "Address", "MessageConnection", "Connection"]

#: A proxy's item type when its contents were not given (``Manager().dict()``): as the stdlib's stubs, ``Any``.
Unknown = Any  # type: ignore[explicit-any]
