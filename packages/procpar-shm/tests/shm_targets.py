"""Functions run in child processes by the tests (importable under spawn and forkserver)."""

from __future__ import annotations

from typing import Any


def negate(n: Any, a: Any) -> None:
    n.value = 3.1415927
    for i in range(len(a)):
        a[i] = -a[i]


def increment_many(v: Any, times: int) -> None:
    for _ in range(times):
        with v.get_lock():
            v.value += 1


def write_shared_memory(name_or_obj: Any, data: bytes) -> None:
    from procpar_shm.shared_memory import SharedMemory

    shm = SharedMemory(name_or_obj) if isinstance(name_or_obj, str) else name_or_obj
    shm.buf[: len(data)] = data
    shm.close()


def touch_list(sl: Any) -> None:
    sl[0] = "changed"
    sl[1] = sl[1][:2] * 2
    sl.shm.close()


def fill_raw(arr: Any, value: float) -> None:
    for i in range(len(arr)):
        arr[i] = value
