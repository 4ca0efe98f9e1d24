"""What the proxies of a SyncManager do: the shared types, their documented behaviour, today's additions, pickling."""

from __future__ import annotations

import gc
import threading
from typing import Any

import manager_targets as t
import pytest

from procpar_managers import SyncManager
from procpar_managers.managers import BaseProxy, Namespace, Token

pytestmark = pytest.mark.timeout(90)


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
