"""Clients that die in the middle of a call, and servers that die under their clients."""

from __future__ import annotations

import os
import signal
from typing import Any

import manager_targets as t
import pytest

from procpar_managers import Manager

pytestmark = pytest.mark.timeout(120)


def _kill_when_waiting(p: Any, entered: Any) -> None:
    assert entered.wait(30)  # set by the server's thread for the child, as its call begins to wait
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)


def test_an_item_is_not_lost_to_a_client_that_died_waiting_for_it(ctx: Any) -> None:
    with t.DeathManager(ctx=ctx) as manager:
        entered, started = manager.Event(), manager.Event()
        q = manager.EnteringQueue(entered)
        p = ctx.Process(target=t.get_one, args=(q, started))
        p.start()
        _kill_when_waiting(p, entered)
        q.put("precious")  # the dead client's server thread may take it: it finds its client gone, puts it back
        assert q.get(timeout=30) == "precious"
        assert q.qsize() == 0


def test_a_lock_is_not_held_for_a_client_that_died_waiting_for_it(ctx: Any) -> None:
    with t.DeathManager(ctx=ctx) as manager:
        entered, started = manager.Event(), manager.Event()
        lock = manager.EnteringSemaphore(entered)
        assert lock.acquire()
        entered.clear()
        p = ctx.Process(target=t.acquire_held, args=(lock, started))
        p.start()
        _kill_when_waiting(p, entered)
        lock.release()  # the dead client's server thread may get it: it gives it back at once
        assert lock.acquire(timeout=30)
        lock.release()


def test_a_call_cut_off_by_the_servers_death_says_which_manager(ctx: Any) -> None:
    manager = Manager(ctx=ctx)
    try:
        q = manager.Queue()
        address = manager.address
        os.kill(t.server_process(manager).pid, signal.SIGKILL)
        with pytest.raises((EOFError, ConnectionError)) as info:
            q.get(timeout=30)
        assert repr(address) in str(info.value) and "Queue.get()" in str(info.value)
    finally:
        manager.shutdown()
