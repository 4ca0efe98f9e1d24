"""The HMAC challenge, wire-compatible with the stdlib's (both the pre-3.12 and the 3.12+ form).

Server side (``deliver_challenge``): send ``#CHALLENGE#{sha256}`` + 40 random bytes; the answer is either
``{digest}`` + HMAC over the whole challenge text, or (older peers) a bare 16-byte HMAC-MD5 of it. A prefixed
answer cannot downgrade the digest, because the HMAC covers the ``{sha256}`` prefix we sent.
Client side (``answer_challenge``): answer a prefixed challenge with the same digest, a bare 20-byte one
(an older server) with bare HMAC-MD5.
"""

from __future__ import annotations

import os

from ._errors import AuthenticationError

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["deliver_challenge", "answer_challenge"]

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


def deliver_challenge(connection: Any, authkey: bytes, digest_name: str = "sha256") -> None:
    """Check that the peer on ``connection`` knows ``authkey``; raise ``AuthenticationError`` if not."""
    _check_key(authkey)
    if digest_name.encode("ascii") not in _ALLOWED_DIGESTS:
        raise ValueError(f"unsupported digest {digest_name!r}")
    import hmac  # hashlib loads OpenSSL: pay for it only when authenticating

    message = b"{%s}%s" % (digest_name.encode("ascii"), os.urandom(NONCE_LENGTH))
    connection.send_bytes(CHALLENGE + message)
    response = connection.recv_bytes(_MAX_MESSAGE)
    try:
        name, mac = _split_digest(response)
        try:
            expected = hmac.new(authkey, message, name or "md5").digest()
        except ValueError:
            raise AuthenticationError(f"digest {name or 'md5'!r} is not available here") from None
        if not hmac.compare_digest(expected, mac):
            raise AuthenticationError("digest received was wrong: the peer does not know the authkey")
    except AuthenticationError:
        try:
            connection.send_bytes(FAILURE)
        except OSError:
            pass  # the peer already left; the authentication error is what matters
        raise
    connection.send_bytes(WELCOME)


def answer_challenge(connection: Any, authkey: bytes) -> None:
    """Prove to the peer on ``connection`` that we know ``authkey``; raise ``AuthenticationError`` if refused."""
    _check_key(authkey)
    import hmac

    message = connection.recv_bytes(_MAX_MESSAGE)
    if not message.startswith(CHALLENGE):
        raise AuthenticationError(
            "the peer did not start the authentication handshake; is it a procpar/multiprocessing "
            "Listener with an authkey?"
        )
    message = message[len(CHALLENGE) :]
    if len(message) < _LEGACY_CHALLENGE_LENGTH:
        raise AuthenticationError(f"challenge too short: {len(message)} bytes")
    name, _ = _split_digest(message)
    if name:
        response = b"{%s}%s" % (name.encode("ascii"), hmac.new(authkey, message, name).digest())
    else:
        response = hmac.new(authkey, message, "md5").digest()
    connection.send_bytes(response)
    if connection.recv_bytes(_MAX_MESSAGE) != WELCOME:
        raise AuthenticationError("digest sent was rejected: the two sides have different authkeys")
