from __future__ import annotations

import ctypes
import pickle
from typing import Any

import pytest
import shm_targets as t

import procpar_shm as shm
from procpar_core import reduction
from procpar_shm import sharedctypes
from procpar_sync import Lock, RLock

pytestmark = pytest.mark.timeout(60)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double)]


def test_value_and_array_basics() -> None:
    v = shm.Value("i", 7)
    assert v.value == 7
    v.value += 1
    assert v.value == 8
    assert repr(v) == "<Synchronized wrapper for c_int(8)>"
    assert isinstance(v.get_obj(), ctypes.c_int)
    assert type(v.get_lock()) is RLock
    with v:
        v.value = 3
    assert v.value == 3
    a = shm.Array("d", range(5))
    assert len(a) == 5 and a[:] == [0.0, 1.0, 2.0, 3.0, 4.0] and a[-1] == 4.0
    a[1:3] = [9.0, 8.0]
    assert a[:] == [0.0, 9.0, 8.0, 3.0, 4.0]
    assert list(a) == a[:]
    with pytest.raises(IndexError):
        a[5]


def test_char_arrays_have_value_and_raw() -> None:
    s = shm.Array("c", 8)
    assert s.raw == b"\0" * 8
    s.value = b"hello"
    assert s.value == b"hello" and s.raw == b"hello\0\0\0"
    assert type(s).__name__ == "SynchronizedString"


def test_lock_argument() -> None:
    raw = shm.Value("i", 1, lock=False)
    assert isinstance(raw, ctypes.c_int)
    lock = Lock()
    v = shm.Value("i", 1, lock=lock)
    assert v.get_lock() is lock
    a = shm.Array("i", 3, lock=lock)
    assert a.get_lock() is lock
    with pytest.raises(AttributeError, match="has no method 'acquire'"):
        shm.Value("i", 1, lock="yes")  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        shm.Array("i", 3, True)  # type: ignore[call-overload]  # lock is keyword-only


@pytest.mark.parametrize("typecode", sorted(sharedctypes.typecode_to_type))
def test_every_typecode(typecode: str) -> None:
    type_ = sharedctypes.typecode_to_type[typecode]
    arr = shm.RawArray(typecode, 4)
    assert ctypes.sizeof(arr) == 4 * ctypes.sizeof(type_)
    value = shm.RawValue(typecode)
    assert isinstance(value, type_)


def test_unknown_typecodes_and_types_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown typecode 'z'"):
        shm.RawValue("z")
    with pytest.raises(TypeError, match="neither an array typecode nor a ctypes type"):
        shm.RawArray(int, 3)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="array size must be >= 0"):
        shm.RawArray("i", -1)
    with pytest.raises(TypeError, match="must be an int or a sequence"):
        shm.RawArray("i", 2.5)  # type: ignore[call-overload]


def test_raw_objects_and_structures() -> None:
    assert shm.RawArray(ctypes.c_short, 7)[:] == [0] * 7
    assert shm.RawArray("i", (9, 2, 8))[:] == [9, 2, 8]
    points = shm.Array(Point, [(1.875, -6.25), (-5.75, 2.0)])
    assert [(p.x, p.y) for p in points] == [(1.875, -6.25), (-5.75, 2.0)]
    p = shm.Value(Point, 1.0, 2.0)
    assert type(p).__name__ == "SynchronizedPoint"
    p.x = 5.0  # type: ignore[attr-defined]  # a structure's fields are made at run time
    assert (p.x, p.y) == (5.0, 2.0)  # type: ignore[attr-defined]


def test_copy_and_synchronized() -> None:
    class Foo(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double), ("z", ctypes.c_longlong)]

    foo = Foo(2, 5.0, 2**33)
    bar = shm.copy(foo)
    foo.x = 0
    assert (bar.x, bar.y, bar.z) == (2, 5.0, 2**33)
    raw = shm.RawValue("i", 4)
    wrapped = shm.synchronized(raw)
    assert wrapped.value == 4 and wrapped.get_obj() is raw
    with pytest.raises(TypeError, match="already synchronized"):
        shm.synchronized(wrapped)  # type: ignore[call-overload]


def test_sending_outside_process_creation_is_refused() -> None:
    for obj in (shm.Value("i", 1), shm.RawArray("d", 3)):
        with pytest.raises(RuntimeError, match="through inheritance"):
            reduction.dumps(obj)


def test_plain_ctypes_objects_still_pickle_after_registration() -> None:
    shm.RawValue("i", 1)  # registers a reducer for c_int
    assert pickle.loads(bytes(reduction.dumps(ctypes.c_int(5)))).value == 5


def test_buffer_protocol_is_zero_copy() -> None:
    np = pytest.importorskip("numpy")
    arr = shm.RawArray("d", 10)
    view = np.frombuffer(arr, dtype=np.float64)
    view[3] = 2.5
    assert arr[3] == 2.5
    wrapped = shm.Array("i", 4)
    np.frombuffer(wrapped.get_obj(), dtype=np.int32)[:] = [1, 2, 3, 4]
    assert wrapped[:] == [1, 2, 3, 4]
    assert memoryview(arr).nbytes == 80


def test_spec_value_array_example(ctx: Any) -> None:
    num = shm.Value("d", 0.0)
    arr = shm.Array("i", range(10))
    p = ctx.Process(target=t.negate, args=(num, arr))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert num.value == 3.1415927
    assert arr[:] == [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]


SPEC_POINT_EXAMPLE = """
import sys
from procpar_core import Process, set_start_method
from procpar_sync import Lock
from procpar_shm.sharedctypes import Value, Array
from ctypes import Structure, c_double

class Point(Structure):
    _fields_ = [('x', c_double), ('y', c_double)]

def modify(n, x, s, A):
    n.value **= 2
    x.value **= 2
    s.value = s.value.upper()
    for a in A:
        a.x **= 2
        a.y **= 2

if __name__ == '__main__':
    set_start_method(sys.argv[1])
    lock = Lock()

    n = Value('i', 7)
    x = Value(c_double, 1.0/3.0, lock=False)
    s = Array('c', b'hello world', lock=lock)
    A = Array(Point, [(1.875,-6.25), (-5.75,2.0), (2.375,9.5)], lock=lock)

    p = Process(target=modify, args=(n, x, s, A))
    p.start()
    p.join()

    print(n.value)
    print(x.value)
    print(s.value)
    print([(a.x, a.y) for a in A])
"""


def test_spec_point_example(ctx: Any, run_script: Any) -> None:
    result = run_script(SPEC_POINT_EXAMPLE, ctx.get_start_method())
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "49",
        "0.1111111111111111",
        "b'HELLO WORLD'",
        "[(3.515625, 39.0625), (33.0625, 4.0), (5.640625, 90.25)]",
    ]
    assert result.stderr == ""


def test_locked_increments_from_two_processes_are_exact(ctx: Any) -> None:
    v = shm.Value("i", 0)
    procs = [ctx.Process(target=t.increment_many, args=(v, 2000)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert v.value == 4000


def test_raw_array_written_by_a_child(ctx: Any) -> None:
    arr = shm.RawArray("d", 1000)
    p = ctx.Process(target=t.fill_raw, args=(arr, 1.5))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert set(arr) == {1.5}
