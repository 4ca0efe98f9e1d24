"""Reference counting of shared objects: across children, forks and threads."""

from __future__ import annotations

import gc
import threading
from typing import Any

import manager_targets as t
import pytest

import procpar_core
from procpar_managers import SyncManager

pytestmark = pytest.mark.timeout(90)


def _objects(manager: Any) -> int:
    gc.collect()
    return int(manager._number_of_objects())


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
