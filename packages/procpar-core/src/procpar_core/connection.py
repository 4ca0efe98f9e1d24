"""Connections between processes: ``Pipe``, ``Listener``, ``Client``, ``wait`` and the HMAC challenge."""

from ._auth import CHALLENGE, FAILURE, WELCOME, answer_challenge, deliver_challenge
from ._connection import (
    BUFSIZE,
    CONNECTION_TIMEOUT,
    Client,
    Connection,
    Listener,
    Pipe,
    SocketClient,
    address_type,
    arbitrary_address,
    default_family,
    families,
    wait,
)
from ._errors import AuthenticationError, BufferTooShort

__all__ = [
    "Client",
    "Connection",
    "Listener",
    "Pipe",
    "wait",
    "deliver_challenge",
    "answer_challenge",
    "AuthenticationError",
    "BufferTooShort",
    "address_type",
    "arbitrary_address",
    "default_family",
    "families",
    "BUFSIZE",
    "CONNECTION_TIMEOUT",
    "SocketClient",
    "CHALLENGE",
    "WELCOME",
    "FAILURE",
]
