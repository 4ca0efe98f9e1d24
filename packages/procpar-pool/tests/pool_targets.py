"""Functions the pool tests run in workers (importable under spawn and forkserver)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def fail(x: Any) -> None:
    raise ValueError(f"bad {x}")


def pid(_: Any = None) -> int:
    return os.getpid()


def sleep_then(x: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return x


def die(how: str) -> None:
    if how == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "exit":
        os._exit(3)
    elif how == "segfault":
        import ctypes

        ctypes.string_at(0)
    time.sleep(60)


def die_on(x: int, bad: int) -> int:
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def die_on_three(x: int) -> int:
    return die_on(x, 3)


def unpicklable_result(x: int) -> Any:
    if x == 2:
        return lambda: None
    return x


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel")
        self.lock = __import__("threading").Lock()


def raise_unpicklable(_: Any = None) -> None:
    raise Unpicklable


class NeedsTwoArgs(Exception):
    """Pickles fine, fails to unpickle (its __init__ wants two arguments)."""

    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(f"{a}-{b}")


def raise_needs_two(_: Any = None) -> None:
    raise NeedsTwoArgs(1, 2)


def failing_initializer() -> None:
    raise RuntimeError("no database")


_initialized: list[int] = []


def remember(value: int) -> None:
    _initialized.append(value)


def initialized(_: Any = None) -> list[int]:
    return _initialized


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


def identity(x: Any) -> Any:
    return x


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


def touch_or_fail(path: str) -> None:
    """Create ``path``; the item named ``.../bad`` raises instead (after the others may have started)."""
    import os

    if os.path.basename(path) == "bad":
        raise ValueError("bad item")
    with open(path, "w"):
        pass


def process_engine(pool: Any) -> Any:
    """The engine of a process pool, checked to be one (tests look at its workers' state)."""
    from procpar_pool._process_engine import ProcessEngine

    engine = pool._engine
    assert isinstance(engine, ProcessEngine)
    return engine

