"""Remote managers: connecting by address, a wrong authkey, garbage from a peer, malformed replies."""

from __future__ import annotations

import socket
import time
from typing import Any

import manager_targets as t
import pytest

from procpar_core import AuthenticationError

pytestmark = pytest.mark.timeout(90)


def test_remote_manager_connect(remote: Any) -> None:
    address, authkey, serializer = remote
    client = t.RemoteQueueManager(address=tuple(address), authkey=authkey, serializer=serializer)
    client.connect()
    store = client.get_store()
    store.append(("hello", b"bytes", None, 2.25))
    other = t.RemoteQueueManager(address=tuple(address), authkey=authkey, serializer=serializer)
    other.connect()
    got = other.get_store().pop(0)
    assert list(got) == ["hello", b"bytes", None, 2.25]
    counter = other.Counter(1)
    assert counter.bump() == 2
    if serializer == "xmlrpclib":
        with pytest.raises(TypeError):
            store.append(time.sleep)  # XML-RPC cannot carry a function: refused before anything is sent
        assert store.count(None) == 0


def test_wrong_authkey_is_refused_and_the_server_keeps_serving(remote: Any) -> None:
    address, authkey, serializer = remote
    intruder = t.RemoteQueueManager(address=tuple(address), authkey=b"wrong key", serializer=serializer)
    with pytest.raises(AuthenticationError):
        intruder.connect()
    # A peer that connects and never finishes the handshake blocks nobody.
    stalled = socket.create_connection(tuple(address))
    try:
        client = t.RemoteQueueManager(address=tuple(address), authkey=authkey, serializer=serializer)
        client.connect()
        assert client.Counter(3).bump() == 4
    finally:
        stalled.close()


def test_garbage_from_a_peer(remote: Any) -> None:
    from procpar_core.connection import Client

    address, authkey, serializer = remote
    conn = Client(tuple(address), authkey=authkey)
    conn.send_bytes(b"\x80\x05 this is not a request")
    conn.send_bytes(b"garbage again")
    # Each undecodable frame gets an error reply; the connection stays usable.
    from procpar_managers._protocol import WRAPPERS, unpack_reply

    wrapped = WRAPPERS[serializer](conn)
    for _ in range(2):
        kind, message = unpack_reply(wrapped.recv())
        assert kind == "#TRACEBACK" and "could not decode a request" in str(message)
    wrapped.send(("not", "a", "request"))
    kind, message = unpack_reply(wrapped.recv())
    assert kind == "#TRACEBACK" and "malformed request" in str(message)
    wrapped.send((None, "no_such_call", (), {}))
    kind, message = unpack_reply(wrapped.recv())
    assert kind == "#TRACEBACK" and "not a request this manager understands" in str(message)
    conn.close()
    client = t.RemoteQueueManager(address=tuple(address), authkey=authkey, serializer=serializer)
    client.connect()
    assert client.Counter().bump() == 1


@pytest.mark.parametrize("reply", [None, 42, ("#RETURN",), ("#RETURN", 1, 2), (3, "x"), "#RETURN"])
def test_a_reply_that_is_not_kind_and_value_is_a_remote_error(reply: object) -> None:
    from procpar_managers._protocol import RemoteError, unpack_reply

    with pytest.raises(RemoteError, match=r"not \(kind, value\)"):
        unpack_reply(reply)
    assert unpack_reply(["#RETURN", 5]) == ("#RETURN", 5)  # XML-RPC carries tuples as lists
