"""procpar contexts where the stdlib expects a multiprocessing context."""

from __future__ import annotations

import multiprocessing.queues as stdlib_queues
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

import procpar

pytestmark = pytest.mark.timeout(90)


def square(x: int) -> int:
    return x * x


def fail(x: int) -> int:
    raise ValueError(f"bad {x}")


@pytest.mark.parametrize("method", procpar.get_all_start_methods())
def test_process_pool_executor_with_a_procpar_context(method: str) -> None:
    # A procpar context where typeshed expects the stdlib's: the interoperation under test.
    with ProcessPoolExecutor(max_workers=2, mp_context=procpar.get_context(method)) as executor:  # type: ignore[call-overload]
        assert list(executor.map(square, range(20))) == [x * x for x in range(20)]
        future = executor.submit(fail, 3)
        with pytest.raises(ValueError, match="bad 3"):
            future.result(timeout=60)


class DerivedStdlibQueue(stdlib_queues.Queue):  # type: ignore[type-arg]
    """What libraries do: subclass the stdlib's queue and hand it a context (here procpar's)."""

    def __init__(self, maxsize: int = 0, *, ctx: Any) -> None:
        super().__init__(maxsize, ctx=ctx)


def put_in(q: Any, value: Any) -> None:
    q.put(value)


@pytest.mark.parametrize("method", procpar.get_all_start_methods())
def test_stdlib_queue_classes_accept_a_procpar_context(method: str) -> None:
    ctx: Any = procpar.get_context(method)
    q = DerivedStdlibQueue(ctx=ctx)
    p = ctx.Process(target=put_in, args=(q, ("hello", method)))
    p.start()
    assert q.get(timeout=60) == ("hello", method)
    p.join(60)
    assert p.exitcode == 0
