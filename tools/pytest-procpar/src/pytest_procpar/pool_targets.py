"""Functions the shared pool behaviour tests run in workers (``pytest_procpar.pool_behaviour``).

In an installed module, not a test directory: every engine's workers import them by name, a spawned process
pool's as much as a Dask worker started elsewhere from the same environment.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
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
        return threading.Lock()  # no pickler takes it (a lambda would travel where results go by cloudpickle)
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
    """What ``remember`` noted in this worker (a worker of a shared cluster may have served other pools)."""
    return _initialized


def identity(x: Any) -> Any:
    return x


def touch_or_fail(path: str) -> None:
    """Create ``path``; the item named ``.../bad`` raises instead (after the others may have started)."""
    import os

    if os.path.basename(path) == "bad":
        raise ValueError("bad item")
    with open(path, "w"):
        pass


def append_line(path: str, line: str) -> None:
    """Append ``line`` to the file at ``path`` (how a test counts the calls that really ran)."""
    with open(path, "a") as f:
        f.write(line + "\n")


def endless(pulled: list[int]) -> Iterator[int]:
    """0, 1, 2, ... forever, noting in ``pulled`` each number handed out (an input ``imap`` must read lazily)."""
    n = 0
    while True:
        pulled.append(n)
        yield n
        n += 1



_gate: Any = None


def install_gate(gate: Any) -> None:
    """A pool's initializer: the event ``through_gate`` waits on (events reach workers only this way)."""
    global _gate
    _gate = gate


def through_gate(x: Any) -> Any:
    """Wait (up to 60 s) until the test opens the gate installed by ``install_gate``, then return ``x``."""
    if not _gate.wait(60):
        raise TimeoutError("the test never opened the gate")
    return x
