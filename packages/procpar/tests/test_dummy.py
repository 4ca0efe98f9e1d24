"""procpar.dummy: the multiprocessing API over threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import procpar
from procpar import dummy
from procpar.dummy import connection

pytestmark = pytest.mark.timeout(60)


def test_process_is_a_thread_with_the_process_api() -> None:
    seen: list[Any] = []
    p = dummy.Process(target=lambda x: seen.append((x, dummy.current_process().name)), args=(1,), name="worker")
    assert p.exitcode is None and dummy.active_children() == []
    p.start()
    p.join(30)
    assert seen == [(1, "worker")] and p.exitcode == 0
    assert dummy.active_children() == []  # finished children are forgotten
    assert dummy.current_process() is threading.current_thread()


def test_only_the_creating_thread_may_start_it() -> None:
    p = dummy.Process(target=lambda: None)
    errors: list[BaseException] = []

    def start_elsewhere() -> None:
        try:
            p.start()
        except RuntimeError as exc:
            errors.append(exc)

    t = threading.Thread(target=start_elsewhere)
    t.start()
    t.join(30)
    assert errors and "current_process" in str(errors[0])


def test_active_children_lists_running_ones() -> None:
    go = dummy.Event()
    p = dummy.Process(target=go.wait, args=(30,))
    p.start()
    try:
        assert dummy.active_children() == [p]
    finally:
        go.set()
        p.join(30)


def test_shared_objects_and_manager() -> None:
    m = dummy.Manager()
    assert m is dummy
    v = m.Value("i", 1)
    v.value += 1
    assert v.value == 2 and repr(v) == "<Value('i', 2)>"
    a = m.Array("d", [1.0, 2.0])
    assert a.tolist() == [1.0, 2.0]
    ns = m.Namespace(x=1)
    assert repr(ns) == "Namespace(x=1)"
    q = m.JoinableQueue()
    q.put(1)
    assert q.get() == 1
    q.task_done()
    q.join()
    with m.Lock(), m.RLock():
        pass
    assert m.Barrier(1).wait() == 0
    m.shutdown()


def test_pool_is_a_thread_pool() -> None:
    with dummy.Pool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
        assert pool.apply(threading.current_thread).name.startswith("ThreadPoolWorker")


def test_connection_between_threads() -> None:
    a, b = dummy.Pipe()
    a.send({"x": 1})
    assert b.poll(1) and b.recv() == {"x": 1}
    assert not a.poll() and not a.poll(0.01)
    with connection.Listener() as listener:
        address = listener.address
        assert address is not None  # None once the listener is closed

        def client() -> None:
            with connection.Client(address) as conn:
                conn.send_bytes(b"hello")
                conn.send(conn.recv() * 2)

        t = threading.Thread(target=client)
        t.start()
        with listener.accept() as server_side:
            assert server_side.recv_bytes() == b"hello"
            server_side.send(21)
            assert server_side.recv() == 42
        t.join(30)
    with pytest.raises(OSError, match="closed"):
        listener.accept()


def test_closing_a_listener_wakes_the_thread_in_accept() -> None:
    listener = connection.Listener()
    address = listener.address
    assert address is not None
    served = threading.Event()
    outcome: list[BaseException] = []

    def serve() -> None:
        try:
            while True:
                listener.accept()
                served.set()
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    connection.Client(address)
    assert served.wait(30)
    listener.close()  # the server waits in accept() again, or is on its way there
    t.join(30)
    assert not t.is_alive(), "accept() slept on after its listener was closed"
    assert len(outcome) == 1 and isinstance(outcome[0], OSError) and "closed" in str(outcome[0])


def test_reachable_from_procpar() -> None:
    assert procpar.dummy is dummy and procpar.dummy.connection is connection
