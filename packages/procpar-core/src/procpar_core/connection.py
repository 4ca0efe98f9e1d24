"""Connections between processes: ``Pipe``, ``Listener``, ``Client``, ``wait`` and the HMAC challenge."""

from ._auth import CHALLENGE, FAILURE, WELCOME, answer_challenge, create_response, deliver_challenge, verify_challenge
from ._connection import (
    BUFSIZE,
    CONNECTION_TIMEOUT,
    HANDSHAKE_TIMEOUT,
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
    "HANDSHAKE_TIMEOUT",
    "create_response",
    "verify_challenge",
]

# The stdlib's private spellings, which its tests and some tools use.
_CHALLENGE, _WELCOME, _FAILURE = CHALLENGE, WELCOME, FAILURE
_create_response = create_response
_verify_challenge = verify_challenge
