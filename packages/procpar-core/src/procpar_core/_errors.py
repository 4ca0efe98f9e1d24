"""Exceptions of the multiprocessing API."""

from __future__ import annotations

__all__ = ["ProcessError", "BufferTooShort", "TimeoutError", "AuthenticationError"]


class ProcessError(Exception):
    """Base class of procpar's own exceptions."""


class BufferTooShort(ProcessError):
    """The buffer given to ``recv_bytes_into`` cannot hold the message.

    ``args[0]`` is the whole message, as bytes.
    """


class TimeoutError(ProcessError):
    """A call with a timeout ran out of time."""


class AuthenticationError(ProcessError):
    """The peer failed the HMAC challenge, or sent something that is not part of it."""
