from __future__ import annotations

import gc
import os
import signal
import socket
import threading
import time
from typing import Any

import manager_targets as t
import pytest

import procpar_core
from procpar_core import AuthenticationError, ProcessError
from procpar_managers import Manager, ManagerNotStartedError, RemoteError, SyncManager
from procpar_managers.managers import BaseProxy, Namespace, Token

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def manager(ctx: Any) -> Any:
    with SyncManager(ctx=ctx) as m:
        yield m


def _objects(manager: Any) -> int:
    gc.collect()
    return int(manager._number_of_objects())


def test_sync_types_shared_with_a_child(manager: Any, ctx: Any) -> None:
    d, lst, ns = manager.dict(), manager.list(), manager.Namespace()
    p = ctx.Process(target=t.fill, args=(d, lst, ns))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert d["child"] == p.pid and lst[:] == ["from child"] and ns.seen is True


def test_locks_are_held_by_the_server(manager: Any, ctx: Any) -> None:
    lock = manager.Lock()
    p = ctx.Process(target=t.lock_and_exit, args=(lock,))
    p.start()
    p.join(30)
    # The child exited holding it: a dead client's locks are released for it (stdlib: held for good).
    assert lock.acquire(timeout=30)
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    rlock, sem = manager.RLock(), manager.BoundedSemaphore(1)
    with rlock, rlock:
        pass
    assert sem.acquire() and not sem.acquire(False)
    sem.release()
    with pytest.raises(ValueError):
        sem.release()


def test_a_lock_taken_by_a_thread_that_ended_stays_held(manager: Any) -> None:
    import threading

    lock = manager.Lock()
    thread = threading.Thread(target=lock.acquire)
    thread.start()
    thread.join(30)
    gc.collect()  # the thread's connection to the manager is closed: its process lives on, so the lock is kept
    assert not lock.acquire(timeout=0.2)
    lock.release()  # another thread may release a Lock
    assert lock.acquire(timeout=30)
    lock.release()


def test_condition_event_barrier_queue(manager: Any, ctx: Any) -> None:
    cond, flag = manager.Condition(), manager.Value("i", 0)
    with cond:
        p = ctx.Process(target=t.condition_notify, args=(cond, flag))
        p.start()
        assert cond.wait_for(lambda: flag.value == 1, timeout=30)
    p.join(30)
    event = manager.Event()
    assert not event.is_set() and event.wait(0.01) is False
    event.set()
    assert event.wait(1)
    barrier, results = manager.Barrier(2), manager.list()
    p = ctx.Process(target=t.barrier_party, args=(barrier, results))
    p.start()
    results.append(barrier.wait(30))
    p.join(30)
    assert sorted(results[:]) == [0, 1] and barrier.parties == 2 and not barrier.broken
    inbox, outbox = manager.Queue(), manager.JoinableQueue()
    p = ctx.Process(target=t.queue_round_trip, args=(inbox, outbox))
    p.start()
    inbox.put(21)
    assert outbox.get(timeout=30) == 42
    p.join(30)


def test_value_array_and_containers(manager: Any) -> None:
    v = manager.Value("d", 1.5)
    v.value += 1
    assert v.get() == 2.5 and "2.5" in str(v)
    arr = manager.Array("i", range(5))
    arr[0] = 10
    assert len(arr) == 5 and arr[:] .tolist() == [10, 1, 2, 3, 4]
    lst = manager.list([3, 1, 2])
    lst += [0]
    lst *= 2
    lst.sort()
    assert lst[:] == [0, 0, 1, 1, 2, 2, 3, 3] and len(lst) == 8 and 3 in lst
    assert (manager.list([1, 2, 3]) == [1, 2, 3]) is False  # proxies do not compare by value (documented)
    d = manager.dict(a=1)
    d.update(b=2)
    d |= {"c": 3}
    assert sorted(d.keys()) == ["a", "b", "c"] and sorted(d.items())[0] == ("a", 1)
    assert sorted(d) == ["a", "b", "c"] and d.get("x", 7) == 7 and d | {"z": 0} == {"a": 1, "b": 2, "c": 3, "z": 0}
    assert d.copy() == {"a": 1, "b": 2, "c": 3} and d._getvalue() == d.copy()
    ns = manager.Namespace(x=1)
    ns.y = "hello"
    ns._private = 12.3  # an attribute of the proxy itself
    assert str(ns) == "Namespace(x=1, y='hello')" and ns._private == 12.3
    del ns.x
    with pytest.raises(AttributeError):
        ns.x
    assert repr(Namespace(a=1, _b=2)) == "Namespace(a=1)"


def test_documented_proxy_behaviour(manager: Any) -> None:
    lst = manager.list([i * i for i in range(10)])
    assert str(lst) == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"
    assert repr(lst).startswith("<ListProxy object, typeid 'list' at 0x")
    assert lst[4] == 16 and lst[2:5] == [4, 9, 16]
    assert lst._callmethod("__len__") == 10
    assert lst._callmethod("__getitem__", (slice(2, 7),)) == [4, 9, 16, 25, 36]
    with pytest.raises(IndexError):
        lst._callmethod("__getitem__", (20,))
    a, b = manager.list(), manager.list()
    a.append(b)
    b.append("hello")
    assert str(a[0]) == "['hello']"
    outer = manager.list([manager.dict() for _ in range(2)])
    inner = outer[0]
    inner["a"] = 1
    outer[1]["c"] = 3
    assert str(outer[0]) == "{'a': 1}" and str(outer[1]) == "{'c': 3}"
    import copy

    assert copy.deepcopy(outer[1]) == {"c": 3}


def test_references_are_counted_and_released(manager: Any, ctx: Any) -> None:
    base = _objects(manager)
    lst = manager.list([1])
    d = manager.dict()
    assert _objects(manager) == base + 2
    it = iter(d)  # a proxy returned by a method
    assert _objects(manager) == base + 3
    del it, d
    assert _objects(manager) == base + 1
    # A child's unpickled copy counts while the child lives, and is released when it exits.
    p = ctx.Process(target=t.fill, args=(manager.dict(), lst, manager.Namespace()))
    p.start()
    p.join(30)
    del p
    assert _objects(manager) == base + 1
    # Nested: the outer list keeps the inner dict alive after the caller's proxy to it is gone.
    outer = manager.list()
    inner = manager.dict(k="v")
    outer.append(inner)
    del inner
    assert outer[0]["k"] == "v"
    del outer
    assert _objects(manager) == base + 1
    del lst
    assert _objects(manager) == base


def test_forked_child_keeps_its_own_references() -> None:
    ctx = procpar_core.get_context("fork")
    with SyncManager(ctx=ctx) as m:
        lst, go, done = m.list(["kept"]), m.Event(), m.Queue()
        p = ctx.Process(target=t.use_inherited, args=(lst, go, done))
        p.start()
        del lst  # the child counted its own reference at the fork
        gc.collect()
        go.set()
        assert done.get(timeout=30) == ["kept"]
        p.join(30)
        assert p.exitcode == 0


def test_custom_manager_exposed_and_errors(ctx: Any) -> None:
    with t.CounterManager(ctx=ctx) as m:
        c = m.Counter(5)
        assert c.bump() == 6 and c.bump(by=4) == 10
        assert not hasattr(c, "_private")
        with pytest.raises(RemoteError, match="not exposed"):
            c._callmethod("_private")
        with pytest.raises(KeyError, match="missing"):
            c.fail()  # the method's own exception, re-raised as is
        with pytest.raises(RemoteError, match="could not send the result of 'unpicklable'"):
            c.unpicklable()
        with pytest.raises(RemoteError, match="could not send the exception of 'raise_unpicklable'"):
            c.raise_unpicklable()
        assert c.bump() == 11  # the connection is still in step after each failure
        with pytest.raises(RemoteError, match="TypeError"):
            m.Counter(1, 2, 3)  # the constructor's failure, with its traceback
        assert list(m.numbers(4)) == [0, 1, 2, 3]
        p = ctx.Process(target=t.bump_in_child, args=(c,))
        p.start()
        p.join(30)
        assert p.exitcode == 0 and c.bump(0) == 21


def test_lifecycle_errors(ctx: Any) -> None:
    m = SyncManager(ctx=ctx)
    with pytest.raises(ManagerNotStartedError, match="not started"):
        m.list()
    with pytest.raises(TypeError, match="initializer must be a callable"):
        m.start(1)  # type: ignore[arg-type]
    m.start()
    with pytest.raises(ProcessError, match="Already started"):
        m.start()
    proc = t.server_process(m)
    m.shutdown()
    m.shutdown()  # again: nothing
    assert proc.exitcode == 0
    with pytest.raises(ManagerNotStartedError, match="shut down"):
        m.dict()
    with pytest.raises(ProcessError, match="shut down"):
        m.__enter__()
    with pytest.raises(ValueError, match="unknown serializer"):
        SyncManager(serializer="json")
    with pytest.raises(TypeError, match="cannot be pickled"):
        import pickle

        pickle.dumps(SyncManager())


def test_manager_initializer_and_manager_function(ctx: Any) -> None:
    m = Manager(ctx=ctx)
    try:
        ns = m.Namespace(test=0)
        with SyncManager(ctx=ctx) as m2:
            pass
        m3 = SyncManager(ctx=ctx)
        m3.start(setattr, (ns, "test", 1))  # the initializer runs in the server process, before it serves
        m3.shutdown()
        assert ns.test == 1 and m2._state.value == 2
    finally:
        m.shutdown()


def test_dead_manager_fails_calls_at_once(ctx: Any) -> None:
    m = SyncManager(ctx=ctx)
    m.start()
    q = m.Queue()
    os.kill(t.server_process(m).pid, signal.SIGKILL)
    t.server_process(m).join(30)
    started = time.monotonic()
    with pytest.raises((EOFError, OSError)):
        q.get(timeout=60)
    assert time.monotonic() - started < 30
    m.shutdown()  # the process is gone: shutdown just records it


def test_interrupted_call_does_not_desync_the_connection(manager: Any) -> None:
    event, lst = manager.Event(), manager.list([1])

    class Interrupt(Exception):
        pass

    def on_alarm(*_: Any) -> None:
        raise Interrupt

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupt):
            event.wait(30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert lst[0] == 1  # a fresh connection: no stray reply from the interrupted wait
    event.set()
    assert event.is_set()


def test_server_ignores_sigint(manager: Any) -> None:
    d = manager.dict()
    os.kill(manager._process.pid, signal.SIGINT)
    d["after"] = 1
    assert d["after"] == 1 and manager._process.is_alive()


def test_threads_each_use_their_own_connection(manager: Any) -> None:
    lst = manager.list()
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(50):
                lst.append((i, j))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors and len(lst) == 200


# -- remote managers, authentication, garbage ----------------------------------------------------------------

@pytest.fixture(params=["pickle", "xmlrpclib"])
def remote(request: pytest.FixtureRequest, ctx: Any) -> Any:
    authkey = os.urandom(16)
    reader, writer = procpar_core.Pipe(duplex=False)
    p = ctx.Process(target=t.serve_remote, args=(("127.0.0.1", 0), authkey, request.param, writer), daemon=True)
    p.start()
    address = reader.recv()
    yield address, authkey, request.param
    p.terminate()
    p.join(30)


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


def test_proxy_tokens_and_pickling(manager: Any) -> None:
    import pickle

    lst = manager.list([1, 2])
    token = lst._token
    assert isinstance(token, Token) and token.typeid == "list"
    assert pickle.loads(pickle.dumps(token)) == token
    again = pickle.loads(pickle.dumps(lst))  # increfs in its own right
    del lst
    gc.collect()
    assert again[:] == [1, 2]
    assert isinstance(again, BaseProxy)


# -- the spec's examples -------------------------------------------------------------------------------------

SHIM = """
import sys, procpar_core, procpar_managers
from procpar_managers import managers
procpar_core.Manager = procpar_managers.Manager
procpar_core.managers = managers
sys.modules["multiprocessing"] = procpar_core
sys.modules["multiprocessing.managers"] = managers
if __name__ == "__main__":
    procpar_core.set_start_method(sys.argv[1])
"""


def test_spec_examples(ctx: Any, run_script: Any) -> None:
    from spec_examples import CUSTOM_DEMO, MANAGER_INTRO, MATHS

    out = run_script(SHIM + MANAGER_INTRO, ctx.get_start_method())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["{1: '1', '2': 2, 0.25: None}", "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]"]
    out = run_script(SHIM + MATHS, ctx.get_start_method())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["7", "56"]
    out = run_script(SHIM + CUSTOM_DEMO, ctx.get_start_method())
    assert out.returncode == 0, out.stderr
    for expected in ("you called Foo.f()", "you called Foo.g()", "you called Foo._h()",
                     "<0> <1> <4> <9> <16> <25> <36> <49> <64> <81>", "op.add(23, 45) = 68",
                     f"op.pow(2, 94) = {2 ** 94}", "op._exposed_ = ("):
        assert expected in out.stdout
    assert out.stderr == ""


def test_killed_program_leaves_no_manager(run_script: Any, ctx: Any) -> None:
    out = run_script(f"""
        import os, signal, sys, procpar_core
        from procpar_managers import SyncManager
        if __name__ == "__main__":
            m = SyncManager(ctx=procpar_core.get_context({ctx.get_start_method()!r}))
            m.start()
            print(m._process.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] == "Z":  # exited, waiting for init to reap it
                return
        time.sleep(0.05)
    pytest.fail(f"manager process {pid} outlived its killed parent")


# -- SharedMemoryManager ------------------------------------------------------------------------------------

def test_shared_memory_manager(ctx: Any) -> None:
    from procpar_managers import SharedMemoryManager
    from procpar_shm.shared_memory import ShareableList, SharedMemory

    smm = SharedMemoryManager(ctx=ctx)
    with pytest.raises(ValueError, match="not started"):
        smm.SharedMemory(size=9)
    smm.start()
    lists = [smm.ShareableList(range(i)) for i in range(3, 6)]
    blocks = [smm.SharedMemory(size=n) for n in (32, 64)]
    assert len(ShareableList(name=lists[0].shm.name)) == 3
    twin = SharedMemory(name=blocks[0].name)
    twin.buf[0] = 7
    assert blocks[0].buf[0] == 7
    twin.close()
    names = [sl.shm.name for sl in lists] + [b.name for b in blocks]
    for sl in lists:
        sl.shm.close()
    for b in blocks:
        b.close()
    smm.shutdown()
    for name in names:
        with pytest.raises(FileNotFoundError):
            SharedMemory(name=name)
    with SharedMemoryManager(ctx=ctx) as smm2:
        held = smm2.ShareableList("howdy").shm.name
    with pytest.raises(FileNotFoundError):
        ShareableList(name=held)


def test_shared_memory_manager_warns_of_nothing(run_script: Any, ctx: Any) -> None:
    out = run_script(f"""
        import procpar_core
        from procpar_managers import SharedMemoryManager
        if __name__ == "__main__":
            smm = SharedMemoryManager(ctx=procpar_core.get_context({ctx.get_start_method()!r}))
            smm.start()
            sl = smm.ShareableList(range(10))
            smm.shutdown()
            print("ok")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ok"
    assert out.stderr == ""


def test_todays_proxy_api(ctx: Any) -> None:
    """3.14's SyncManager.set(), ListProxy.clear()/copy(); DictProxy's |, |=, reversed(), fromkeys()."""
    import collections.abc

    with SyncManager(ctx=ctx) as manager:
        s = manager.set([1, 2])
        s.add(3)
        s |= {4}
        s -= {1}
        assert sorted(s) == [2, 3, 4] and len(s) == 3 and 2 in s and 1 not in s
        assert s & {2, 9} == {2} and s.union({7}) == {2, 3, 4, 7}
        assert isinstance(s, collections.abc.MutableSet)
        with pytest.raises(KeyError):
            s.remove(99)
        items = manager.list([1, 2])
        copy = items.copy()
        items.clear()
        assert copy == [1, 2] and list(items) == []
        d = manager.dict(a=1)
        assert d | {"b": 2} == {"a": 1, "b": 2}
        d |= {"c": 3}
        assert list(reversed(d)) == ["c", "a"]
        assert d.fromkeys("xy", 0) == {"x": 0, "y": 0}
        assert isinstance(d, collections.abc.MutableMapping)


@pytest.mark.parametrize("kind", ["Lock", "Semaphore", "BoundedSemaphore"])
def test_a_hand_off_release_of_what_a_finished_child_took(manager: Any, ctx: Any, kind: str) -> None:
    """A Lock or Semaphore may be released by another process than the one that took it (the stdlib's
    TestSyncManagerTypes): what a child took before it exited is the parent's to release, exactly once."""
    lock = getattr(manager, kind)(1) if kind != "Lock" else manager.Lock()
    p = ctx.Process(target=t.lock_and_exit, args=(lock,))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    lock.release()
    if kind == "Lock":
        with pytest.raises(RuntimeError):
            lock.release()
    elif kind == "BoundedSemaphore":
        with pytest.raises(ValueError):
            lock.release()
    assert lock.acquire(timeout=30)
    lock.release()


def test_a_waiter_gets_the_lock_of_a_holder_that_dies(manager: Any, ctx: Any) -> None:
    import threading

    lock, holding, die = manager.Lock(), manager.Event(), manager.Event()
    p = ctx.Process(target=t.acquire_then_wait, args=(lock, holding, die))
    p.start()
    assert holding.wait(60)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=60)))
    waiter.start()
    die.set()
    p.join(60)
    waiter.join(90)
    assert got == [True]
    lock.release()


def test_a_shared_memory_manager_leaves_its_tracker_nothing_to_warn_about(run_script: Any) -> None:
    """bpo-36867: segments the manager's server removed at shutdown are not reported as leaked."""
    result = run_script("""
        from procpar_managers import SharedMemoryManager

        smm = SharedMemoryManager()
        smm.start()
        sl = smm.ShareableList(range(10))
        smm.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("reply", [None, 42, ("#RETURN",), ("#RETURN", 1, 2), (3, "x"), "#RETURN"])
def test_a_reply_that_is_not_kind_and_value_is_a_remote_error(reply: object) -> None:
    from procpar_managers._protocol import RemoteError, unpack_reply

    with pytest.raises(RemoteError, match=r"not \(kind, value\)"):
        unpack_reply(reply)
    assert unpack_reply(["#RETURN", 5]) == ("#RETURN", 5)  # XML-RPC carries tuples as lists
