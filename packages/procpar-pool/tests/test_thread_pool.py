"""ThreadPool: the same API on threads; terminate() fails what has not started."""

from __future__ import annotations

import threading

import pool_targets as t
import pytest

from procpar_pool import (
    ThreadPool,
)

pytestmark = pytest.mark.timeout(90)


def test_thread_pool() -> None:
    with ThreadPool(3) as tp:
        assert tp.map(t.square, range(10)) == [x * x for x in range(10)]
        assert tp.apply(lambda: threading.current_thread().name).startswith("ThreadPoolWorker")
        assert list(tp.imap(lambda x: x + 1, range(3))) == [1, 2, 3]
        with pytest.raises(ValueError, match="bad 1"):
            tp.apply(t.fail, (1,))
        assert tp.starmap(t.add, [(1, 2)]) == [3]
    tp = ThreadPool(1)
    tp.close()
    tp.join()


def test_thread_pool_releases_tasks_and_warns_when_left_running() -> None:
    import gc
    import weakref

    class Counted:
        pass

    objs = [Counted() for _ in range(10)]
    refs = [weakref.ref(o) for o in objs]
    with ThreadPool(2) as tp:
        assert tp.map(t.identity, objs) == objs
        del objs
        gc.collect()
        assert {r() for r in refs} == {None}  # no worker thread keeps the last task's arguments alive
    tp = ThreadPool(1)
    with pytest.warns(ResourceWarning, match="unclosed running multiprocessing pool"):
        del tp
        gc.collect()


def test_a_failing_initializer_fails_the_tasks_instead_of_leaving_them_waiting() -> None:
    # No thread would ever take them: the stdlib's thread pool starts new threads that fail again, forever.
    with ThreadPool(2, initializer=t.failing_initializer) as pool:
        with pytest.raises(RuntimeError, match=r"initializer raised in a worker thread.*no database"):
            pool.apply_async(t.square, (3,)).get(30)  # raised by one or the other, as the threads are quick
        with pytest.raises(RuntimeError, match="initializer raised"):
            pool.map(t.square, range(3))
