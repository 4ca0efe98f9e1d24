"""The compiled message framing under the queues: compatible with connections, exact, and strict."""

from __future__ import annotations

import os
import struct
import threading
from typing import Any

import pytest

from procpar_core import connection
from procpar_sync import _arena, _wire

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pipe() -> Any:
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def _stash(size: int = 1 << 16) -> Any:
    return _arena.Arena(size).buffer


def test_write_messages_speaks_connection_framing() -> None:
    reader, writer = connection.Pipe(duplex=False)
    messages = [b"", b"x", os.urandom(1000), *(bytes([i % 256]) * i for i in range(600))]
    done = threading.Thread(target=_wire.write_messages, args=(writer.fileno(), messages))
    done.start()  # 600+ messages: more than one writev batch
    assert [reader.recv_bytes() for _ in messages] == messages
    done.join(30)


def test_read_message_reads_connection_messages() -> None:
    reader, writer = connection.Pipe(duplex=False)
    writer.send_bytes(b"hello")
    writer.send_bytes(b"")
    assert _wire.read_message(reader.fileno()) == b"hello"
    assert _wire.read_message(reader.fileno()) == b""
    writer.close()
    with pytest.raises(EOFError):
        _wire.read_message(reader.fileno())


def test_read_message_rejects_garbage_and_truncation(pipe: Any) -> None:
    r, w = pipe
    os.write(w, struct.pack("!i", -7))
    with pytest.raises(OSError, match="invalid message length -7"):
        _wire.read_message(r)
    os.write(w, struct.pack("!i", 10) + b"abc")
    os.close(w)
    with pytest.raises(OSError, match="end of file during message"):
        _wire.read_message(r)


def test_write_messages_rejects_non_bytes(pipe: Any) -> None:
    with pytest.raises(TypeError, match="needs bytes, not str"):
        _wire.write_messages(pipe[1], [b"ok", "text"])  # type: ignore[list-item]  # the wrong type on purpose
    with pytest.raises(ValueError, match="out of range"):
        _wire.write_messages(-1, [b"x"])


def test_stash_takes_many_messages_per_read(pipe: Any) -> None:
    r, w = pipe
    stash = _stash()
    _wire.write_messages(w, [b"a", b"bb", b"ccc"])
    assert _wire.read_message_stashed(r, stash) == b"a"
    # the other two came out of the pipe with the first one
    assert _wire.stashed(stash) == 2 * 4 + 5
    assert _wire.read_message_stashed(r, stash) == b"bb"
    assert _wire.read_message_stashed(r, stash) == b"ccc"
    assert _wire.stashed(stash) == 0


def test_stash_passes_messages_larger_than_itself(pipe: Any) -> None:
    r, w = pipe
    stash = _stash(4096)
    small, big = b"s" * 100, os.urandom(200_000)
    writer = threading.Thread(target=_wire.write_messages, args=(w, [small, big, small]))
    writer.start()
    assert _wire.read_message_stashed(r, stash) == small
    assert _wire.read_message_stashed(r, stash) == big
    assert _wire.read_message_stashed(r, stash) == small
    writer.join(30)


def test_stash_reports_eof_and_truncation(pipe: Any) -> None:
    r, w = pipe
    stash = _stash()
    os.write(w, struct.pack("!i", 3) + b"abc" + struct.pack("!i", 5) + b"xy")
    os.close(w)
    assert _wire.read_message_stashed(r, stash) == b"abc"
    with pytest.raises(OSError, match="end of file during message"):
        _wire.read_message_stashed(r, stash)


def test_stash_rejects_a_bad_buffer(pipe: Any) -> None:
    with pytest.raises(ValueError, match="at least 24 bytes"):
        _wire.read_message_stashed(pipe[0], bytearray(8))
    with pytest.raises(BufferError, match="not writable"):
        _wire.read_message_stashed(pipe[0], b"read-only buffer of enough size")


def test_unread_counts_pending_bytes(pipe: Any) -> None:
    r, w = pipe
    assert _wire.unread(r) == 0
    os.write(w, b"12345")
    assert _wire.unread(r) == 5


def test_has_message_sees_whole_messages_only(pipe: Any) -> None:
    r, w = pipe
    stash = bytearray(8 + 4096)
    assert not _wire.has_message(stash)
    _wire.write_messages(w, [b"one", b"two"])
    os.write(w, struct.pack("!i", 5) + b"ab")  # a third, cut short
    assert _wire.read_message_stashed(r, stash) == b"one"
    assert _wire.has_message(stash)
    assert _wire.read_message_stashed(r, stash) == b"two"
    assert not _wire.has_message(stash)
    os.write(w, b"cde")
    assert _wire.read_message_stashed(r, stash) == b"abcde"


@pytest.fixture
def sockets() -> Any:
    import socket

    a, b = socket.socketpair()
    yield a.fileno(), b.fileno()
    a.close()
    b.close()


def test_read_messages_stashed_takes_every_whole_message_after_one_read(pipe: Any) -> None:
    r, w = pipe
    stash = _stash()
    _wire.write_messages(w, [b"a", b"bb"])
    os.write(w, struct.pack("!i", 4) + b"cc")  # a third, cut short
    assert _wire.read_messages_stashed(r, stash) == [b"a", b"bb"]
    os.write(w, b"dd")
    assert _wire.read_messages_stashed(r, stash) == [b"ccdd"]
    os.close(w)
    with pytest.raises(EOFError):
        _wire.read_messages_stashed(r, stash)


@pytest.mark.parametrize("kind", ["pipe", "sockets"])
def test_socket_first_reads_and_writes_like_the_plain_path(kind: str, request: pytest.FixtureRequest) -> None:
    # On a socket, what is there is taken at once; a pipe (ENOTSOCK) and an empty socket go the waiting way.
    ends = request.getfixturevalue(kind)
    r, w = ends if kind == "pipe" else (ends[0], ends[1])
    stash = _stash(4096)
    big = os.urandom(300_000)  # more than a socket buffer: the writer must wait for the reader half-way
    writer = threading.Thread(target=_wire.write_messages, args=(w, [b"first", big, b"last"], True))
    writer.start()
    assert _wire.read_messages_stashed(r, stash, True)[0] == b"first"
    assert _wire.read_message_stashed(r, stash, True) == big
    assert _wire.read_message_stashed(r, stash, True) == b"last"
    writer.join(30)
    assert not writer.is_alive()
    # Nothing there yet: the socket_first read waits for the message instead of failing.
    later = threading.Timer(0.05, _wire.write_messages, args=(w, [b"late"]))
    later.start()
    assert _wire.read_message_stashed(r, stash, True) == b"late"
    later.join(30)


def test_socket_first_write_reports_a_closed_peer() -> None:
    import socket

    a, b = socket.socketpair()
    b.close()
    with a, pytest.raises(BrokenPipeError):
        _wire.write_messages(a.fileno(), [b"x" * 100] * 10, True)


def test_spin_readable(sockets: Any) -> None:
    a, b = sockets
    assert _wire.spin_readable(a, 0.001) is False  # nothing came within the budget
    os.write(b, b"x")
    assert _wire.spin_readable(a, 0.001) is True
    later = threading.Timer(0.02, os.write, args=(b, b"y"))
    later.start()
    assert _wire.spin_readable(a, 0.5) is True  # came while it looked
    later.join(30)
    with pytest.raises(ValueError, match="between 0 and 1"):
        _wire.spin_readable(a, 5)
    with pytest.raises(ValueError, match="out of range"):
        _wire.spin_readable(-1, 0.001)


def test_pack_numbers_round_trips_exact_ints_and_floats() -> None:
    import math

    ints = [0, 1, -1, 2**63 - 1, -(2**63), 12345678901234]
    assert _wire.unpack_numbers(_wire.pack_numbers(ints)) == ints
    floats = [0.5, -0.0, math.inf, -math.inf, 1e-308]
    back = _wire.unpack_numbers(_wire.pack_numbers(floats))
    assert back == floats and math.copysign(1.0, back[1]) == -1.0
    assert math.isnan(_wire.unpack_numbers(_wire.pack_numbers([math.nan]))[0])


def test_pack_numbers_declines_anything_else() -> None:
    import enum

    class Colour(enum.IntEnum):
        RED = 1

    # Each of these must come back as itself, so it goes by pickle instead.
    for values in ([], [1, True], [True], [1, 2**64], [1, 1.0], [1.0, 1], [Colour.RED], [1, None], (1, 2), "12"):
        assert _wire.pack_numbers(values) is None, values
    with pytest.raises(ValueError, match="not a packed list"):
        _wire.unpack_numbers(b"q1234567")
    with pytest.raises(ValueError, match="not a packed list"):
        _wire.unpack_numbers(b"x" + bytes(8))
