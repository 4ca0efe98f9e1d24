"""The HMAC challenge, wire-compatible with the stdlib's (both the pre-3.12 and the 3.12+ form).

Server side (``deliver_challenge``): send ``#CHALLENGE#{sha256}`` + 40 random bytes; the answer is either
``{digest}`` + HMAC over the whole challenge text, or (older peers) a bare 16-byte HMAC-MD5 of it. A prefixed
answer cannot downgrade the digest, because the HMAC covers the ``{sha256}`` prefix we sent.
Client side (``answer_challenge``): answer a prefixed challenge with the same digest, a bare 20-byte one
(an older server) with bare HMAC-MD5.

The steps are functions of their own so that a ``Listener`` can run many handshakes at once without
blocking (``ServerHandshake``): one peer that stalls must not hold up the others.
"""

from __future__ import annotations

import os

from ._errors import AuthenticationError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["deliver_challenge", "answer_challenge", "create_response", "verify_challenge", "ServerHandshake"]

CHALLENGE = b"#CHALLENGE#"
WELCOME = b"#WELCOME#"
FAILURE = b"#FAILURE#"
# 40 random bytes: longer than both legacy lengths below, so the two protocols can't be confused.
NONCE_LENGTH = 40
_LEGACY_CHALLENGE_LENGTH = 20
_LEGACY_MD5_LENGTH = 16
_ALLOWED_DIGESTS = frozenset({b"md5", b"sha256", b"sha384", b"sha3_256", b"sha3_384"})
_MAX_DIGEST_NAME = max(len(d) for d in _ALLOWED_DIGESTS)
_MAX_MESSAGE = 256


def _split_digest(message: bytes) -> tuple[str, bytes]:
    """``b'{name}payload'`` -> ``('name', payload)``; a legacy (unprefixed) message -> ``('', message)``."""
    if len(message) in (_LEGACY_CHALLENGE_LENGTH, _LEGACY_MD5_LENGTH):
        return "", message
    if message.startswith(b"{"):
        end = message.find(b"}", 1, _MAX_DIGEST_NAME + 2)
        if end > 0 and message[1:end] in _ALLOWED_DIGESTS:
            return message[1:end].decode("ascii"), message[end + 1 :]
    raise AuthenticationError(
        f"the peer's authentication message has an unknown digest or length ({len(message)} bytes)"
    )


def _check_key(authkey: Any) -> None:
    if not isinstance(authkey, bytes):
        raise ValueError(f"authkey must be bytes, not {type(authkey).__name__}")


def new_challenge(digest_name: str = "sha256") -> bytes:
    """The part of a challenge the HMAC covers: ``{digest}`` + random bytes (sent after ``CHALLENGE``)."""
    if digest_name.encode("ascii") not in _ALLOWED_DIGESTS:
        raise ValueError(f"unsupported digest {digest_name!r}")
    return b"{%s}%s" % (digest_name.encode("ascii"), os.urandom(NONCE_LENGTH))


def create_response(authkey: bytes, message: bytes) -> bytes:
    """The answer to the challenge ``message`` (without its ``CHALLENGE`` prefix): ``{digest}`` + HMAC over
    all of it, or a bare HMAC-MD5 for a legacy, unprefixed challenge."""
    import hmac  # hashlib loads OpenSSL: pay for it only when authenticating

    name, _ = _split_digest(message)
    if name:
        return b"{%s}%s" % (name.encode("ascii"), hmac.new(authkey, message, name).digest())
    return hmac.new(authkey, message, "md5").digest()


def verify_challenge(authkey: bytes, message: bytes, response: bytes) -> None:
    """Raise ``AuthenticationError`` unless ``response`` answers ``message`` with ``authkey``."""
    import hmac

    name, mac = _split_digest(response)
    try:
        expected = hmac.new(authkey, message, name or "md5").digest()
    except ValueError:
        raise AuthenticationError(f"digest {name or 'md5'!r} is not available here") from None
    if len(expected) != len(mac):
        raise AuthenticationError(f"expected a {name or 'md5'!r} digest of {len(expected)} bytes, got {len(mac)}")
    if not hmac.compare_digest(expected, mac):
        raise AuthenticationError("digest received was wrong: the peer does not know the authkey")


def _parse_challenge(message: bytes) -> bytes:
    if not message.startswith(CHALLENGE):
        raise AuthenticationError(
            "the peer did not start the authentication handshake; is it a procpar/multiprocessing "
            "Listener with an authkey?"
        )
    message = message[len(CHALLENGE) :]
    if len(message) < _LEGACY_CHALLENGE_LENGTH:
        raise AuthenticationError(f"challenge too short: {len(message)} bytes")
    return message


def _refuse(connection: Any) -> None:
    try:
        connection.send_bytes(FAILURE)
    except OSError:
        pass  # the peer already left; the authentication error is what matters


def deliver_challenge(connection: Any, authkey: bytes, digest_name: str = "sha256") -> None:
    """Check that the peer on ``connection`` knows ``authkey``; raise ``AuthenticationError`` if not."""
    _check_key(authkey)
    message = new_challenge(digest_name)
    connection.send_bytes(CHALLENGE + message)
    response = connection.recv_bytes(_MAX_MESSAGE)
    try:
        verify_challenge(authkey, message, response)
    except AuthenticationError:
        _refuse(connection)
        raise
    connection.send_bytes(WELCOME)


def answer_challenge(connection: Any, authkey: bytes) -> None:
    """Prove to the peer on ``connection`` that we know ``authkey``; raise ``AuthenticationError`` if refused."""
    _check_key(authkey)
    message = _parse_challenge(connection.recv_bytes(_MAX_MESSAGE))
    connection.send_bytes(create_response(authkey, message))
    if connection.recv_bytes(_MAX_MESSAGE) != WELCOME:
        raise AuthenticationError("digest sent was rejected: the two sides have different authkeys")


class ServerHandshake:
    """One peer's side of ``deliver_challenge`` then ``answer_challenge``, driven without blocking.

    ``Listener.accept()`` makes one per connection it takes from the socket and calls ``advance()`` whenever
    the peer's socket is readable; each call reads what is there and moves on as far as whole messages allow.
    Only the small handshake messages are read (at most 256 bytes each), and a handshake past its deadline
    fails with an error that says so.
    """

    _EXPECT_RESPONSE, _EXPECT_CHALLENGE, _EXPECT_WELCOME = range(3)

    def __init__(self, connection: Any, address: Any, authkey: bytes, deadline: float) -> None:
        _check_key(authkey)
        self.connection = connection
        self.address = address
        self.deadline = deadline
        self._authkey = authkey
        self._buffer = bytearray()
        self._message = new_challenge()
        self._state = self._EXPECT_RESPONSE
        # A few dozen bytes into an empty socket buffer: this never blocks.
        connection.send_bytes(CHALLENGE + self._message)

    def fileno(self) -> int:
        return int(self.connection.fileno())

    @property
    def _peer(self) -> str:
        return f"the peer at {self.address!r}" if self.address else "a peer of this unix socket"

    def _wanted(self) -> int:
        """How many bytes to read next: never past the end of the current handshake message, because what the
        peer sends after the handshake belongs to the connection."""
        buffer = self._buffer
        if len(buffer) < 4:
            return 4 - len(buffer)
        size = int.from_bytes(buffer[:4], "big", signed=True)
        if size < 0 or size > _MAX_MESSAGE:
            raise AuthenticationError(f"{self._peer} sent a {size}-byte message during the "
                                      f"authentication handshake (at most {_MAX_MESSAGE} are allowed)")
        return 4 + size - len(buffer)

    def advance(self) -> bool:
        """Read what the peer sent and answer it; True once the peer is authenticated both ways.

        Raises ``AuthenticationError`` if it fails the challenge or refuses ours, ``EOFError`` if it leaves.
        """
        wanted = self._wanted()
        data = os.read(self.fileno(), wanted)  # the socket is readable: this does not wait
        if not data:
            raise EOFError(f"{self._peer} left during the authentication handshake")
        self._buffer += data
        if len(data) < wanted or self._wanted():
            return False  # the rest of the message (or its body) is still on its way
        message = bytes(self._buffer[4:])
        self._buffer.clear()
        if self._state == self._EXPECT_RESPONSE:
            try:
                verify_challenge(self._authkey, self._message, message)
            except AuthenticationError:
                _refuse(self.connection)
                raise
            self.connection.send_bytes(WELCOME)
            self._state = self._EXPECT_CHALLENGE
            return False
        if self._state == self._EXPECT_CHALLENGE:
            self.connection.send_bytes(create_response(self._authkey, _parse_challenge(message)))
            self._state = self._EXPECT_WELCOME
            return False
        if message != WELCOME:
            raise AuthenticationError("digest sent was rejected: the two sides have different authkeys")
        return True

    def expired(self, timeout: float) -> AuthenticationError:
        return AuthenticationError(f"{self._peer} did not complete the authentication handshake "
                                   f"within {timeout:g} s; its connection was closed")
