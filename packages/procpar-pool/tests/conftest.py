"""procpar-pool's own fixtures (the shared ones, ``ctx`` and ``run_script``, come from the pytest-procpar
plugin): ``pools``, the process engine's ``PoolMaker`` of each start method for the shared behaviour tests
(test_behaviour.py), and ``pool``, a started Pool(2) of each start method."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import procpar_pool
from procpar_pool import Pool


class ProcessPools:
    """The shared behaviour tests' ``PoolMaker`` for process pools of one start method."""

    kind = "process"

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self._made: list[Any] = []

    def pool(self, processes: int = 2, **kwargs: Any) -> Pool:
        p = Pool(processes, context=self._ctx, **kwargs)
        self._made.append(p)
        return p

    def executor(self, max_workers: int = 2, **kwargs: Any) -> procpar_pool.Executor:
        ex = procpar_pool.Executor(max_workers, mp_context=self._ctx, **kwargs)
        self._made.append(ex)
        return ex

    def close(self) -> None:
        for made in self._made:
            if isinstance(made, Pool):
                made.terminate()
            else:
                made.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def pools(ctx: Any) -> Iterator[ProcessPools]:
    maker = ProcessPools(ctx)
    try:
        yield maker
    finally:
        maker.close()


@pytest.fixture
def pool(ctx: Any) -> Any:
    with Pool(2, context=ctx) as p:
        yield p
