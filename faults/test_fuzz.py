"""Hypothesis against what peers can send: connection frames, the HMAC handshake, the manager's envelope.

Whatever arrives, the receiver raises a clean error or goes on; it never hangs, crashes or unpickles anything
from a peer that has not authenticated.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procpar_core import AuthenticationError
from procpar_core.connection import Client, Connection, Listener
from procpar_sync import Queue

pytestmark = pytest.mark.timeout(300)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Tripwire:
    """Unpickling this records that a peer's bytes were unpickled."""

    def __reduce__(self) -> Any:
        return (os.putenv, ("PROCPAR_FUZZ_UNPICKLED", "1"))


TRIPWIRE = pickle.dumps(_Tripwire())


def _unpickled() -> bool:
    # os.putenv changes the C environment only: read it back through a fresh look at it.
    import ctypes

    return bool(ctypes.CDLL(None).getenv(b"PROCPAR_FUZZ_UNPICKLED"))


def _framed(body: bytes) -> bytes:
    return struct.pack("!i", len(body)) + body


@FAST
@given(st.binary(max_size=300))
def test_garbage_on_a_connection_raises_or_returns(data: bytes) -> None:
    a, b = socket.socketpair()
    a.sendall(data)
    a.close()
    conn = Connection(b.detach())
    try:
        while True:
            conn.recv_bytes(1 << 20)
    except (EOFError, OSError):
        pass
    finally:
        conn.close()


@FAST
@given(st.lists(st.binary(max_size=100), max_size=6), st.binary(max_size=3) | st.binary(min_size=4, max_size=40).map(
    lambda b: b"\xff\xff\xff\xfe" + b))
def test_garbage_in_a_queue_pipe_raises_or_returns(frames: list[bytes], tail: bytes) -> None:
    # Whole frames, then a broken header or half of one. (A frame announcing a huge length is what a large
    # item in progress looks like: the reader rightly waits for it.)
    q = Queue()
    os.write(q._writer.fileno(), b"".join(_framed(f) for f in frames) + tail)
    got = 0
    try:
        for _ in range(len(frames) + 2):
            q._rlock.acquire()
            try:
                from procpar_sync import _queue

                if _queue.get(q._reader.fileno(), q._stash, None, 0.05, None) is None:
                    break
                got += 1
            finally:
                q._rlock.release()
    except OSError:
        pass
    assert got <= len(frames) + 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=4))
def test_a_listener_never_unpickles_what_an_unauthenticated_peer_sends(messages: list[bytes]) -> None:
    os.unsetenv("PROCPAR_FUZZ_UNPICKLED")
    with Listener(authkey=b"secret", handshake_timeout=0.3) as listener:
        peer = socket.socket(socket.AF_UNIX)
        peer.connect(listener.address)
        peer.sendall(b"".join(_framed(m) for m in messages) + _framed(TRIPWIRE))
        peer.shutdown(socket.SHUT_WR)
        with pytest.raises((AuthenticationError, EOFError, OSError)):
            listener.accept().recv()
        peer.close()
    assert not _unpickled()


@pytest.fixture(scope="module")
def manager() -> Any:
    from procpar_managers import Manager

    with Manager() as m:
        yield m


@FAST
@given(st.one_of(
    st.binary(max_size=200),
    st.tuples(st.one_of(st.none(), st.text(max_size=5)), st.text(max_size=20), st.lists(st.integers(), max_size=3),
              st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)).map(pickle.dumps),
))
def test_the_manager_answers_any_envelope_and_keeps_serving(manager: Any, body: bytes) -> None:
    conn = Client(manager.address, authkey=bytes(manager._authkey))
    try:
        conn.send_bytes(body)
        if conn.poll(10):
            try:
                kind, _ = conn.recv()
                assert kind in ("#RETURN", "#ERROR", "#TRACEBACK", "#UNSERIALIZABLE", "#PROXY")
            except (EOFError, OSError):
                pass
    finally:
        conn.close()
    assert manager.list([1])[:] == [1]  # still serving


def test_a_wrong_authkey_is_refused_and_the_manager_goes_on(manager: Any) -> None:
    with pytest.raises(AuthenticationError):
        Client(manager.address, authkey=b"not the key")
    assert manager.dict(a=1)["a"] == 1


def test_threads_hammering_a_listener_with_garbage_do_not_stop_good_clients() -> None:
    listener = Listener(authkey=b"k", handshake_timeout=2.0, backlog=64)
    refused: list[BaseException] = []

    def serve() -> None:
        while True:
            try:
                conn = listener.accept()
            except (AuthenticationError, EOFError):
                continue
            except OSError:
                return  # closed: the test is over
            conn.send("welcome")
            conn.close()

    def garbage() -> None:
        for i in range(20):
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(listener.address)
                s.sendall(os.urandom(i * 7))

    def good(out: list[Any]) -> None:
        with Client(listener.address, authkey=b"k") as c:
            out.append(c.recv())

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    out: list[Any] = []
    clients = [threading.Thread(target=garbage) for _ in range(3)] + [
        threading.Thread(target=good, args=(out,)) for _ in range(3)]
    for th in clients:
        th.start()
    for th in clients:
        th.join(60)
    listener.close()
    server.join(30)
    assert out == ["welcome"] * 3 and not refused
