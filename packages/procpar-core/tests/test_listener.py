from __future__ import annotations

import os
import socket
import threading
from typing import Any, Callable

import pytest

import procpar_core
import procpar_core.util
from procpar_core import AuthenticationError
from procpar_core.connection import Client, Listener, Pipe, answer_challenge, deliver_challenge

pytestmark = pytest.mark.timeout(60)

FAMILIES = ["AF_INET", "AF_UNIX"]


def _serve_once(listener: Any, handler: Callable[[Any], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn = listener.accept()
            with conn:
                handler(conn)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _double(conn: Any) -> None:
    conn.send(conn.recv() * 2)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("authkey", [None, b"secret"])
def test_listener_client_roundtrip(family: str, authkey: Any) -> None:
    with Listener(family=family, authkey=authkey) as listener:
        thread, errors = _serve_once(listener, _double)
        with Client(listener.address, authkey=authkey) as conn:
            conn.send(21)
            assert conn.recv() == 42
        thread.join(30)
        assert not errors
        assert listener.last_accepted is not None or family == "AF_UNIX"
    with pytest.raises(OSError, match="closed"):
        listener.accept()
    with pytest.raises(OSError, match="closed"):
        listener.address


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("authkey", [None, b"secret"])
def test_closing_a_listener_wakes_the_thread_blocked_in_accept(family: str, authkey: Any) -> None:
    # The stdlib's accept() sleeps on after another thread closes its listener; ours fails with "closed".
    listener = Listener(family=family, authkey=authkey)
    served = threading.Event()
    outcome: list[BaseException] = []

    def serve() -> None:
        try:
            while True:
                listener.accept().close()
                served.set()
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with Client(listener.address, authkey=authkey):
        assert served.wait(30)
    listener.close()  # the server is back in accept(), or on its way there
    thread.join(30)
    assert not thread.is_alive(), "accept() slept on after its listener was closed"
    assert len(outcome) == 1 and isinstance(outcome[0], OSError) and "closed" in str(outcome[0]), outcome


def _close(listener: Any) -> None:
    listener.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_a_forked_child_closing_its_copy_leaves_the_parents_listener_open(family: str) -> None:
    with Listener(family=family, authkey=b"k") as listener:
        child = procpar_core.get_context("fork").Process(target=_close, args=(listener,))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        thread, errors = _serve_once(listener, _double)
        with Client(listener.address, authkey=b"k") as conn:
            conn.send(4)
            assert conn.recv() == 8
        thread.join(30)
        assert not errors


def test_unix_listener_path_is_private_and_removed() -> None:
    listener = Listener()
    address = listener.address
    assert isinstance(address, str) and os.path.exists(address)
    assert os.path.dirname(address) == procpar_core.util.get_temp_dir()
    listener.close()
    assert not os.path.exists(address)


def test_explicit_addresses(tmp_path: Any) -> None:
    path = str(tmp_path / "sock")
    with Listener(path) as listener:
        assert listener.address == path
        thread, errors = _serve_once(listener, _double)
        with Client(path) as conn:
            conn.send("ab")
            assert conn.recv() == "abab"
        thread.join(30)
    with Listener(("127.0.0.1", 0)) as listener:
        address = listener.address
        assert isinstance(address, tuple)  # (a str for AF_UNIX: the type says either)
        host, port = address
        assert host == "127.0.0.1" and port > 0
    path_like = tmp_path / "by-path"
    with Listener(path_like) as listener:  # a path-like address is its path
        assert listener.address == str(path_like)
        thread, errors = _serve_once(listener, _double)
        with Client(path_like) as conn:
            conn.send(2)
            assert conn.recv() == 4
        thread.join(30)
        assert not errors
    assert not path_like.exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_wrong_authkey_fails_on_both_sides(family: str) -> None:
    with Listener(family=family, authkey=b"right") as listener:
        thread, errors = _serve_once(listener, _double)
        with pytest.raises(AuthenticationError, match="rejected"):
            Client(listener.address, authkey=b"wrong")
        thread.join(30)
        assert len(errors) == 1 and isinstance(errors[0], AuthenticationError)


def test_client_without_authkey_against_authenticating_listener() -> None:
    with Listener(authkey=b"key") as listener:
        thread, errors = _serve_once(listener, _double)
        with Client(listener.address) as conn:
            # the client never answers the challenge: the server gets garbage, not an object
            challenge = conn.recv_bytes()
            assert challenge.startswith(b"#CHALLENGE#{sha256}")
            conn.send_bytes(b"not an answer at all, just something else to read")
        thread.join(30)
        assert len(errors) == 1 and isinstance(errors[0], AuthenticationError)


def test_client_with_authkey_against_plain_listener() -> None:
    with Listener() as listener:
        thread, errors = _serve_once(listener, lambda c: c.send_bytes(b"hello, not a challenge"))
        with pytest.raises(AuthenticationError, match="did not start the authentication"):
            Client(listener.address, authkey=b"key")
        thread.join(30)


def test_nothing_is_unpickled_before_authentication() -> None:
    import pickle

    class Boom:
        def __reduce__(self) -> Any:
            return (os.abort, ())

    with Listener(authkey=b"key") as listener:
        thread, errors = _serve_once(listener, _double)
        raw = socket.socket(socket.AF_UNIX)
        raw.connect(listener.address)
        conn = procpar_core.connection.Connection(raw.detach())
        conn.recv_bytes()  # the challenge
        conn.send_bytes(pickle.dumps(Boom()))  # a pickle instead of the HMAC answer
        thread.join(30)
        assert len(errors) == 1 and isinstance(errors[0], AuthenticationError)
        conn.close()


@pytest.mark.parametrize("authkey", [b"shared", None])
def test_interoperates_with_stdlib_both_ways(authkey: Any) -> None:
    import multiprocessing.connection as stdlib

    with Listener(authkey=authkey) as listener:
        thread, errors = _serve_once(listener, _double)
        with stdlib.Client(listener.address, authkey=authkey) as conn:
            conn.send([1, 2])
            assert conn.recv() == [1, 2, 1, 2]
        thread.join(30)
        assert not errors
    with stdlib.Listener(authkey=authkey) as slistener:
        thread, errors = _serve_once(slistener, _double)
        with Client(slistener.address, authkey=authkey) as conn:
            conn.send("x")
            assert conn.recv() == "xx"
        thread.join(30)
        assert not errors


def test_stdlib_wrong_key_is_rejected() -> None:
    import multiprocessing
    import multiprocessing.connection as stdlib

    with Listener(authkey=b"a") as listener:
        thread, errors = _serve_once(listener, _double)
        with pytest.raises(multiprocessing.AuthenticationError):
            stdlib.Client(listener.address, authkey=b"b")
        thread.join(30)
        assert errors and isinstance(errors[0], AuthenticationError)


def test_legacy_md5_answer_is_accepted() -> None:
    # A pre-3.12 peer answers any challenge with a bare 16-byte HMAC-MD5 of the whole challenge text.
    import hmac

    a, b = Pipe()
    replies: list[bytes] = []

    def legacy_client() -> None:
        message = b.recv_bytes()[len(b"#CHALLENGE#") :]
        b.send_bytes(hmac.new(b"k", message, "md5").digest())
        replies.append(b.recv_bytes())

    thread = threading.Thread(target=legacy_client)
    thread.start()
    deliver_challenge(a, b"k")
    thread.join(30)
    assert replies == [b"#WELCOME#"]


def test_answer_legacy_challenge() -> None:
    import hmac

    a, b = Pipe()
    nonce = os.urandom(20)
    result: list[bytes] = []

    def server() -> None:
        a.send_bytes(b"#CHALLENGE#" + nonce)
        result.append(a.recv_bytes())
        a.send_bytes(b"#WELCOME#")

    thread = threading.Thread(target=server)
    thread.start()
    answer_challenge(b, b"k")
    thread.join(30)
    assert result == [hmac.new(b"k", nonce, "md5").digest()]


def test_challenge_argument_errors() -> None:
    a, b = Pipe()
    with pytest.raises(ValueError, match="bytes"):
        deliver_challenge(a, "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bytes"):
        answer_challenge(a, "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="byte string"):
        Listener(authkey="text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="byte string"):
        Client(("127.0.0.1", 1), authkey="text")  # type: ignore[arg-type]


def test_address_errors() -> None:
    with pytest.raises(ValueError, match="unrecognized"):
        Listener(address=12)  # type: ignore[arg-type]  # on purpose
    with pytest.raises(ValueError, match="AF_PIPE"):
        Listener(family="AF_PIPE")
    with pytest.raises(ValueError, match="not supported"):
        Listener(family="AF_NOPE")
    with pytest.raises(ValueError, match="does not belong"):
        Listener(("127.0.0.1", 0), family="AF_UNIX")
    with pytest.raises(FileNotFoundError):
        Client("/nonexistent/procpar/socket")
