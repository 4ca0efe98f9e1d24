from __future__ import annotations

import array
import os
import socket
import struct
from typing import Any

import core_targets as t
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import procpar_core
from procpar_core import BufferTooShort
from procpar_core.connection import Connection, Pipe, wait

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("duplex", [True, False])
def test_pipe_roundtrip_objects_and_bytes(duplex: bool) -> None:
    a, b = Pipe(duplex)
    receiver, sender = (a, b)
    assert receiver.readable and sender.writable
    assert receiver.writable is duplex and sender.readable is duplex
    for obj in [None, 1, "text", [1, 2, {"x": (3,)}], b"\x00" * 10, list(range(1000))]:
        sender.send(obj)
        assert receiver.recv() == obj
    sender.send_bytes(b"")
    assert receiver.recv_bytes() == b""
    sender.send_bytes(b"abcdef", 2, 3)
    assert receiver.recv_bytes() == b"cde"
    sender.send_bytes(array.array("i", [1, 2, 3]))
    assert receiver.recv_bytes() == array.array("i", [1, 2, 3]).tobytes()


def test_simplex_pipe_directions() -> None:
    r, w = Pipe(duplex=False)
    with pytest.raises(OSError, match="read-only"):
        r.send(1)
    with pytest.raises(OSError, match="write-only"):
        w.recv()
    with pytest.raises(OSError, match="write-only"):
        w.poll()


def test_send_bytes_argument_errors() -> None:
    a, b = Pipe()
    with pytest.raises(ValueError, match="offset is negative"):
        a.send_bytes(b"abc", -1)
    with pytest.raises(ValueError, match="buffer length < offset"):
        a.send_bytes(b"abc", 4)
    with pytest.raises(ValueError, match="size is negative"):
        a.send_bytes(b"abc", 0, -1)
    with pytest.raises(ValueError, match="buffer length < offset \\+ size"):
        a.send_bytes(b"abc", 1, 3)
    with pytest.raises(TypeError):
        a.send_bytes("not bytes")  # type: ignore[arg-type]
    a.send_bytes(b"ok")  # nothing was sent by the failed calls
    assert b.recv_bytes() == b"ok"


def test_recv_bytes_maxlength() -> None:
    a, b = Pipe()
    a.send_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="negative maxlength"):
        b.recv_bytes(-1)
    with pytest.raises(OSError, match="bad message length"):
        b.recv_bytes(10)
    # The stream is out of step: a duplex end stops reading but still sends (as the stdlib's) ...
    assert not b.closed and not b.readable
    with pytest.raises(OSError):
        b.recv_bytes()
    b.send_bytes(b"still")
    assert a.recv_bytes() == b"still"
    # ... and a read-only end is closed.
    r, w = Pipe(duplex=False)
    w.send_bytes(b"x" * 100)
    with pytest.raises(OSError, match="bad message length"):
        r.recv_bytes(10)
    assert r.closed


def test_recv_bytes_into() -> None:
    a, b = Pipe()
    buf = bytearray(10)
    a.send_bytes(b"hello")
    assert b.recv_bytes_into(buf) == 5
    assert buf[:5] == b"hello"
    a.send_bytes(b"xy")
    assert b.recv_bytes_into(buf, 8) == 2
    assert buf == b"hello\x00\x00\x00xy"
    arr = array.array("i", [0] * 4)
    a.send_bytes(array.array("i", [7, 8]))
    assert b.recv_bytes_into(arr, 4) == 8
    assert arr.tolist() == [0, 7, 8, 0]
    a.send_bytes(b"too long for it")
    with pytest.raises(BufferTooShort) as info:
        b.recv_bytes_into(bytearray(3))
    assert info.value.args[0] == b"too long for it"
    with pytest.raises(ValueError, match="negative offset"):
        b.recv_bytes_into(buf, -1)
    with pytest.raises(ValueError, match="offset too large"):
        b.recv_bytes_into(buf, 11)
    with pytest.raises(TypeError):
        b.recv_bytes_into(b"readonly")


def test_poll_and_eof() -> None:
    a, b = Pipe()
    assert not b.poll()
    assert not b.poll(0.01)
    a.send(1)
    assert b.poll(None)
    assert b.recv() == 1
    a.close()
    assert b.poll(5)  # EOF counts as readable
    with pytest.raises(EOFError):
        b.recv()
    with pytest.raises(OSError, match="closed"):
        a.send(1)
    with pytest.raises(OSError, match="closed"):
        a.fileno()


def test_context_manager_and_repr() -> None:
    a, b = Pipe()
    with a:
        assert "handle=" in repr(a)
    assert a.closed
    assert "closed" in repr(a)
    b.close()
    b.close()


def test_invalid_handles() -> None:
    with pytest.raises(ValueError):
        Connection(-1)
    with pytest.raises(ValueError, match="at least one"):
        Connection(0, readable=False, writable=False)


def test_garbage_from_peer_is_an_error_not_a_hang() -> None:
    r, w = os.pipe()
    conn = Connection(r, writable=False)
    os.write(w, struct.pack("!i", -5))
    with pytest.raises(OSError, match="invalid message length"):
        conn.recv_bytes()
    r2, w2 = os.pipe()
    conn2 = Connection(r2, writable=False)
    os.write(w2, struct.pack("!i", 10) + b"abc")
    os.close(w2)
    with pytest.raises(OSError, match="end of file during message"):
        conn2.recv_bytes()
    r3, w3 = os.pipe()
    conn3 = Connection(r3, writable=False)
    os.write(w3, struct.pack("!i", 3) + b"\x80\x05X")  # not a pickle
    with pytest.raises(Exception):
        conn3.recv()
    os.close(w)
    os.close(w3)


@pytest.mark.parametrize("size", [0, 1, 16383, 16384, 16385, 65536, 65537, 3 * 1024 * 1024 + 17])
def test_message_sizes_through_a_child(ctx: Any, size: int) -> None:
    a, b = ctx.Pipe()
    p = ctx.Process(target=t.echo, args=(b,))
    p.start()
    b.close()
    payload = os.urandom(size)
    a.send_bytes(payload)
    assert a.recv_bytes() == payload
    a.close()
    p.join(30)
    assert p.exitcode == 0


@pytest.mark.parametrize("size", [65537, 5 * 1024 * 1024 + 3])
def test_large_messages_over_a_simplex_pipe(ctx: Any, size: int) -> None:
    # Pipes and sockets read large bodies differently (capped reads vs MSG_WAITALL): both must be exact.
    to_child_r, to_child_w = ctx.Pipe(duplex=False)
    back_r, back_w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=t.relay, args=(to_child_r, back_w, 3))
    p.start()
    to_child_r.close()
    back_w.close()
    payloads = [os.urandom(size) for _ in range(3)]
    for payload in payloads:
        to_child_w.send_bytes(payload)
        assert back_r.recv_bytes() == payload
    p.join(30)
    assert p.exitcode == 0


def test_long_message_header_roundtrip(monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages of 2 GiB or more use the -1 + 8-byte length header; lower the limit to test it cheaply.
    from procpar_core import _connection

    monkeypatch.setattr(_connection, "_MAX_SHORT", 100)
    a, b = Pipe()
    a.send_bytes(b"y" * 200_000)
    assert b.recv_bytes() == b"y" * 200_000


def test_stdlib_reads_procpar_messages_and_back() -> None:
    import multiprocessing.connection as stdlib_connection

    r, w = os.pipe()
    sender = Connection(w, readable=False)
    receiver = stdlib_connection.Connection(r, writable=False)
    sender.send({"k": [1, 2]})
    sender.send_bytes(b"z" * 60_000)  # fits the pipe buffer: one thread writes and reads
    assert receiver.recv() == {"k": [1, 2]}
    assert receiver.recv_bytes() == b"z" * 60_000
    r2, w2 = os.pipe()
    s2 = stdlib_connection.Connection(w2, readable=False)
    recv2 = Connection(r2, writable=False)
    s2.send(("from", "stdlib"))
    assert recv2.recv() == ("from", "stdlib")


def test_connection_passed_to_child(ctx: Any) -> None:
    a, b = ctx.Pipe()
    p = ctx.Process(target=t.echo_objects, args=(b,))
    p.start()
    b.close()
    a.send([1, "x"])
    assert a.recv() == [1, "x"]
    a.send(None)
    p.join(30)
    assert p.exitcode == 0


def test_connection_sent_over_a_connection(ctx: Any) -> None:
    control_parent, control_child = ctx.Pipe()
    p = ctx.Process(target=t.use_passed_connection, args=(control_child,))
    p.start()
    mine, theirs = Pipe()
    control_parent.send(theirs)
    theirs.close()
    assert mine.recv() == ("through passed connection", p.pid)
    assert control_parent.recv() == "done"
    p.join(30)
    assert p.exitcode == 0


def test_socket_passed_to_child(ctx: Any) -> None:
    s1, s2 = socket.socketpair()
    p = ctx.Process(target=t.use_socket, args=(s2,))
    p.start()
    s2.close()
    s1.settimeout(30)
    data = b""
    while len(data) < 16:
        chunk = s1.recv(100)
        if not chunk:
            break
        data += chunk
    assert data == b"hello from child"
    p.join(30)
    s1.close()


def test_send_handle_recv_handle() -> None:
    from procpar_core.reduction import recv_handle, send_handle

    a, b = Pipe()
    r, w = os.pipe()
    send_handle(a, w, os.getpid())
    received = recv_handle(b)
    assert received != w
    os.write(received, b"via fd")
    assert os.read(r, 10) == b"via fd"
    for fd in (r, w, received):
        os.close(fd)


def test_wait_over_mixed_objects(ctx: Any) -> None:
    a, b = Pipe()
    s1, s2 = socket.socketpair()
    r, w = ctx.Pipe()
    p = ctx.Process(target=t.wait_for_message, args=(w,))
    p.start()
    assert wait([a, b, s1, p.sentinel], timeout=0.05) == []
    b.send(1)
    assert wait([a, b, s1, p.sentinel], timeout=5) == [a]
    s2.send(b"x")
    assert set(map(id, wait([b, s1], timeout=5))) == {id(s1)}
    r.send("stop")
    assert p.sentinel in wait([p.sentinel], timeout=30)
    p.join(30)
    assert wait([], timeout=0) == []
    with pytest.raises(TypeError, match="wait"):
        wait([object()], timeout=0)  # type: ignore[type-var]
    for s in (s1, s2):
        s.close()


def test_wait_returns_every_ready_object_and_accepts_fds() -> None:
    a, b = Pipe()
    c, d = Pipe()
    a.send(1)
    c.send(2)
    ready = wait([b, d, b.fileno()], timeout=5)
    assert b in ready and d in ready and b.fileno() in ready


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=70_000), max_size=6))
def test_framing_roundtrip(messages: list[bytes]) -> None:
    a, b = Pipe()
    for m in messages:
        a.send_bytes(m)
        assert b.recv_bytes() == m
    a.close()
    b.close()


@settings(max_examples=50, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers() | st.text() | st.binary(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=30,
    )
)
def test_pickle_roundtrip(obj: Any) -> None:
    a, b = Pipe()
    a.send(obj)
    assert b.recv() == obj
    a.close()
    b.close()


def test_pipe_context_method_matches_module_function(ctx: Any) -> None:
    a, b = ctx.Pipe(duplex=False)
    assert isinstance(a, Connection) and not a.writable and not b.readable
    assert procpar_core.Pipe is Pipe


def test_sendfds_recvfds() -> None:
    from procpar_core.reduction import recvfds, sendfds

    s1, s2 = socket.socketpair()
    r, w = os.pipe()
    sendfds(s1, [r, w])
    got = recvfds(s2, 2)
    assert len(got) == 2 and set(got).isdisjoint({r, w})
    os.write(got[1], b"ok")
    assert os.read(r, 2) == b"ok"
    sendfds(s1, [r])
    with pytest.raises(RuntimeError, match="expected 2"):
        recvfds(s2, 2)
    for fd in (r, w, *got):
        os.close(fd)
    s1.close()
    with pytest.raises(EOFError):
        recvfds(s2, 1)
    s2.close()
