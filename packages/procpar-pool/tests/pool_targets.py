"""Functions the pool tests run in workers (importable under spawn and forkserver): those of the shared
behaviour tests (``pytest_procpar.pool_targets``, re-exported), and those only procpar-pool's own tests use."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from pytest_procpar.pool_targets import *  # noqa: F403


def double(a: Any) -> Any:
    return a * 2


def grow(b: bytearray) -> bytearray:
    return b + b"!"


def is_shared(a: Any) -> bool:
    """Whether the array arrived over shared memory (its base is a mapping, not a private copy)."""
    import mmap

    base = a
    while getattr(base, "base", None) is not None:
        base = base.base
    return isinstance(base, (mmap.mmap, memoryview)) or type(base).__name__ == "mmap"


def die_holding(a: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _refuse_to_load() -> None:
    raise ValueError("refuses to be unpickled")


class FailsToLoad:
    """Pickles fine; unpickling it raises."""

    def __reduce__(self) -> Any:
        return _refuse_to_load, ()


def hold_memory(megabytes: int, seconds: float) -> int:
    """Allocate and touch that much memory, keep it a while, return how much."""
    block = bytearray(megabytes << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(seconds)
    return len(block) >> 20


_kept: list[bytearray] = []


def grow_and_keep(megabytes: int) -> int:
    """Leave the worker bigger than before (as a leaking task would)."""
    block = bytearray(megabytes << 20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    _kept.append(block)
    return os.getpid()


def wait_for_file(path: str) -> str:
    """Block until ``path`` exists (a gate the test opens), then return it."""
    import os
    import time

    while not os.path.exists(path):
        time.sleep(0.005)
    return path


def process_engine(pool: Any) -> Any:
    """The engine of a process pool, checked to be one (tests look at its workers' state)."""
    from procpar_pool._process_engine import ProcessEngine

    engine = pool._engine
    assert isinstance(engine, ProcessEngine)
    return engine
