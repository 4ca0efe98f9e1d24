"""ctypes objects in shared memory, optionally wrapped with a process-shared lock.

An object lives in a block of the shared heap (``_heap``). It reaches children inherited through fork or as
a ``Process`` argument under spawn and forkserver: it pickles as (its type, its heap block), and the block's
arena travels by file descriptor; anywhere else pickling it raises the usual "only through inheritance"
error. The synchronized wrappers pickle as (object, lock), under the same rule.
"""

from __future__ import annotations

import ctypes
import weakref

from procpar_core.reduction import ForkingPickler, assert_spawning
from procpar_sync import RLock

from ._heap import BufferWrapper

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _ctypes import _CData
    from collections.abc import Iterator, Sequence
    from typing import Any, Callable, Generic, Literal, TypeVar, Union, overload

    from procpar_core.context import BaseContext
    from procpar_sync import Lock
    from procpar_sync import RLock as _RLock

    T = TypeVar("T")
    CT = TypeVar("CT", bound=_CData)
    #: What ``lock=`` takes besides True/False: a lock to share.
    LockLike = Union[Lock, _RLock]
    #: The array module's typecodes, by the Python type their values read as.
    IntCode = Literal["b", "B", "h", "H", "i", "I", "l", "L", "q", "Q"]
    FloatCode = Literal["f", "d"]
    StrCode = Literal["u", "w"]
else:
    from procpar_core.runtime_typing import Generic, overload

    T = CT = None

__all__ = ["RawValue", "RawArray", "Value", "Array", "copy", "synchronized", "typecode_to_type",
           "Synchronized", "SynchronizedArray", "SynchronizedString", "SynchronizedBase"]

typecode_to_type: dict[str, Any] = {
    "c": ctypes.c_char, "u": ctypes.c_wchar,
    "b": ctypes.c_byte, "B": ctypes.c_ubyte,
    "h": ctypes.c_short, "H": ctypes.c_ushort,
    "i": ctypes.c_int, "I": ctypes.c_uint,
    "l": ctypes.c_long, "L": ctypes.c_ulong,
    "q": ctypes.c_longlong, "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float, "d": ctypes.c_double,
}
if ctypes.sizeof(ctypes.c_wchar) == 4:
    typecode_to_type["w"] = ctypes.c_wchar  # array's UCS-4 code (3.13): wchar_t is 4 bytes here


# The base of every ctypes data type (simple types, arrays, structures, unions, pointers).
_CDATA = ctypes.c_int.__mro__[-2]


def _ctype(typecode_or_type: Any) -> Any:
    if isinstance(typecode_or_type, str):
        try:
            return typecode_to_type[typecode_or_type]
        except KeyError:
            raise TypeError(f"unknown typecode {typecode_or_type!r}: use one of "
                            f"{' '.join(sorted(typecode_to_type))} or a ctypes type") from None
    if not (isinstance(typecode_or_type, type) and issubclass(typecode_or_type, _CDATA)):
        raise TypeError(f"{typecode_or_type!r} is neither an array typecode nor a ctypes type")
    return typecode_or_type


def _reduce_ctype(obj: Any) -> tuple[Any, ...]:
    wrapper = getattr(obj, "_wrapper", None)
    if wrapper is None:  # an ordinary ctypes object of a type we registered: pickle it the ordinary way
        return obj.__reduce__()  # type: ignore[no-any-return]
    assert_spawning(obj)
    if isinstance(obj, ctypes.Array):
        return _rebuild_ctype, (obj._type_, wrapper, obj._length_)
    return _rebuild_ctype, (type(obj), wrapper, None)


def _rebuild_ctype(type_: Any, wrapper: BufferWrapper, length: int | None) -> Any:
    if length is not None:
        type_ = type_ * length
    ForkingPickler.register(type_, _reduce_ctype)
    obj = type_.from_buffer(wrapper.create_memoryview())
    obj._wrapper = wrapper
    return obj


def _new_value(type_: Any) -> Any:
    wrapper = BufferWrapper(ctypes.sizeof(type_))
    obj = _rebuild_ctype(type_, wrapper, None)
    if not wrapper.fresh:  # reused heap memory: fresh arena memory is already zero
        ctypes.memset(ctypes.addressof(obj), 0, ctypes.sizeof(obj))
    return obj


@overload
def RawValue(typecode_or_type: type[CT], *args: object) -> CT: ...
@overload
def RawValue(typecode_or_type: IntCode, *args: object) -> ctypes._SimpleCData[int]: ...
@overload
def RawValue(typecode_or_type: FloatCode, *args: object) -> ctypes._SimpleCData[float]: ...
@overload
def RawValue(typecode_or_type: StrCode, *args: object) -> ctypes._SimpleCData[str]: ...
@overload
def RawValue(typecode_or_type: Literal["c"], *args: object) -> ctypes._SimpleCData[bytes]: ...
@overload
def RawValue(typecode_or_type: str, *args: object) -> ctypes._SimpleCData[Any]: ...
def RawValue(typecode_or_type: str | type[_CData], *args: object) -> object:
    """A ctypes object in shared memory, initialised with ``args`` (no lock)."""
    obj = _new_value(_ctype(typecode_or_type))
    obj.__init__(*args)
    return obj


@overload
def RawArray(typecode_or_type: type[CT], size_or_initializer: int | Sequence[object]) -> ctypes.Array[CT]: ...
@overload
def RawArray(typecode_or_type: IntCode, size_or_initializer: int | Sequence[int]) -> ctypes.Array[ctypes.c_int]: ...
@overload
def RawArray(typecode_or_type: FloatCode, size_or_initializer: int | Sequence[float]
             ) -> ctypes.Array[ctypes.c_double]: ...
@overload
def RawArray(typecode_or_type: Literal["c"], size_or_initializer: int | bytes) -> ctypes.Array[ctypes.c_char]: ...
@overload
def RawArray(typecode_or_type: str, size_or_initializer: int | Sequence[Any]) -> ctypes.Array[Any]: ...
def RawArray(typecode_or_type: str | type[_CData], size_or_initializer: int | Sequence[object]) -> object:
    """A ctypes array in shared memory: ``size`` zeroes, or a copy of a sequence (no lock)."""
    type_ = _ctype(typecode_or_type)
    if isinstance(size_or_initializer, int):
        if size_or_initializer < 0:
            raise ValueError(f"array size must be >= 0, not {size_or_initializer}")
        return _new_value(type_ * size_or_initializer)
    try:
        length = len(size_or_initializer)
    except TypeError:
        raise TypeError("size_or_initializer must be an int or a sequence, not "
                        f"{type(size_or_initializer).__name__}") from None
    obj = _new_value(type_ * length)
    obj.__init__(*size_or_initializer)
    return obj


def _lock_for(lock: object, ctx: BaseContext | None) -> Any:
    if lock is True or lock is None:
        factory = getattr(ctx, "RLock", None) if ctx is not None else None
        return factory() if factory is not None else RLock(ctx=ctx)
    if not hasattr(lock, "acquire"):
        raise AttributeError(f"{lock!r} has no method 'acquire': pass lock=True, lock=False or a Lock/RLock")
    return lock


@overload
def Value(typecode_or_type: type[CT], *args: object, lock: Literal[False], ctx: BaseContext | None = None) -> CT: ...
@overload
def Value(typecode_or_type: type[ctypes._SimpleCData[T]], *args: object, lock: Literal[True] | LockLike = True,
          ctx: BaseContext | None = None) -> Synchronized[T]: ...
@overload
def Value(typecode_or_type: IntCode, *args: object, lock: Literal[True] | LockLike = True,
          ctx: BaseContext | None = None) -> Synchronized[int]: ...
@overload
def Value(typecode_or_type: FloatCode, *args: object, lock: Literal[True] | LockLike = True,
          ctx: BaseContext | None = None) -> Synchronized[float]: ...
@overload
def Value(typecode_or_type: StrCode, *args: object, lock: Literal[True] | LockLike = True,
          ctx: BaseContext | None = None) -> Synchronized[str]: ...
@overload
def Value(typecode_or_type: Literal["c"], *args: object, lock: Literal[True] | LockLike = True,
          ctx: BaseContext | None = None) -> Synchronized[bytes]: ...
@overload
def Value(typecode_or_type: type[CT], *args: object, lock: Literal[True] | LockLike = True,
          ctx: BaseContext | None = None) -> SynchronizedBase[CT]: ...
@overload
def Value(typecode_or_type: str, *args: object, lock: bool | LockLike = True,
          ctx: BaseContext | None = None) -> Any: ...
def Value(typecode_or_type: str | type[_CData], *args: object, lock: bool | LockLike = True,
          ctx: BaseContext | None = None) -> object:
    """A shared ctypes object; with ``lock`` (True: a new RLock) wrapped so that access is synchronised."""
    obj = RawValue(typecode_or_type, *args)
    if lock is False:
        return obj
    return synchronized(obj, _lock_for(lock, ctx), ctx=ctx)


@overload
def Array(typecode_or_type: type[CT], size_or_initializer: int | Sequence[object], *, lock: Literal[False],
          ctx: BaseContext | None = None) -> ctypes.Array[CT]: ...
@overload
def Array(typecode_or_type: type[ctypes.c_char] | Literal["c"], size_or_initializer: int | bytes, *,
          lock: Literal[True] | LockLike = True, ctx: BaseContext | None = None) -> SynchronizedString: ...
@overload
def Array(typecode_or_type: type[ctypes._SimpleCData[T]], size_or_initializer: int | Sequence[T], *,
          lock: Literal[True] | LockLike = True, ctx: BaseContext | None = None) -> SynchronizedArray[T]: ...
@overload
def Array(typecode_or_type: IntCode, size_or_initializer: int | Sequence[int], *,
          lock: Literal[True] | LockLike = True, ctx: BaseContext | None = None) -> SynchronizedArray[int]: ...
@overload
def Array(typecode_or_type: FloatCode, size_or_initializer: int | Sequence[float], *,
          lock: Literal[True] | LockLike = True, ctx: BaseContext | None = None) -> SynchronizedArray[float]: ...
@overload
def Array(typecode_or_type: StrCode, size_or_initializer: int | Sequence[str], *,
          lock: Literal[True] | LockLike = True, ctx: BaseContext | None = None) -> SynchronizedArray[str]: ...
@overload
def Array(typecode_or_type: str | type[_CData], size_or_initializer: int | Sequence[Any], *,
          lock: bool | LockLike = True, ctx: BaseContext | None = None) -> Any: ...
def Array(typecode_or_type: str | type[_CData], size_or_initializer: int | Sequence[object], *,
          lock: bool | LockLike = True, ctx: BaseContext | None = None) -> object:
    """A shared ctypes array; with ``lock`` (True: a new RLock) wrapped so that access is synchronised."""
    obj = RawArray(typecode_or_type, size_or_initializer)
    if lock is False:
        return obj
    return synchronized(obj, _lock_for(lock, ctx), ctx=ctx)


def copy(obj: CT) -> CT:
    """A new shared ctypes object holding a copy of ``obj``."""
    new_obj: CT = _new_value(type(obj))
    ctypes.pointer(new_obj)[0] = obj
    return new_obj


_structure_wrappers: weakref.WeakKeyDictionary[type, type] = weakref.WeakKeyDictionary()


@overload
def synchronized(obj: ctypes._SimpleCData[T], lock: LockLike | None = None, ctx: BaseContext | None = None
                 ) -> Synchronized[T]: ...
@overload
def synchronized(obj: ctypes.Array[ctypes.c_char], lock: LockLike | None = None, ctx: BaseContext | None = None
                 ) -> SynchronizedString: ...
@overload
def synchronized(obj: ctypes.Array[ctypes._SimpleCData[T]], lock: LockLike | None = None,
                 ctx: BaseContext | None = None) -> SynchronizedArray[T]: ...
@overload
def synchronized(obj: CT, lock: LockLike | None = None, ctx: BaseContext | None = None) -> SynchronizedBase[CT]: ...
def synchronized(obj: _CData, lock: LockLike | None = None, ctx: BaseContext | None = None) -> object:
    """Wrap the ctypes object ``obj`` so that each access holds ``lock`` (a new RLock if None)."""
    if isinstance(obj, SynchronizedBase):
        raise TypeError("object is already synchronized")
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock, ctx)
    if isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock, ctx)
        return SynchronizedArray(obj, lock, ctx)
    cls = type(obj)
    wrapper_cls = _structure_wrappers.get(cls)
    if wrapper_cls is None:
        fields = [field[0] for field in getattr(cls, "_fields_", ())]
        namespace = {name: _locked_attribute(name) for name in fields}
        wrapper_cls = _structure_wrappers[cls] = type(f"Synchronized{cls.__name__}", (SynchronizedBase,), namespace)
    return wrapper_cls(obj, lock, ctx)


def _locked_attribute(name: str) -> property:
    # acquire/release are the lock's bound (compiled) methods: cheaper than a with-statement through the
    # lock's Python-level __enter__/__exit__, on the hottest path of shared counters.
    def get(self: SynchronizedBase[Any]) -> Any:
        self.acquire()
        try:
            return getattr(self._obj, name)
        finally:
            self.release()

    def set(self: SynchronizedBase[Any], value: Any) -> None:
        self.acquire()
        try:
            setattr(self._obj, name, value)
        finally:
            self.release()

    return property(get, set, doc=f"{name}, read and written with the lock held")


class SynchronizedBase(Generic[CT]):
    """A shared ctypes object together with the lock that guards it."""

    def __init__(self, obj: CT, lock: LockLike | None = None, ctx: BaseContext | None = None) -> None:
        self._obj = obj
        self._lock = lock if lock else _lock_for(True, ctx)
        self.acquire: Callable[..., bool] = self._lock.acquire
        self.release: Callable[[], None] = self._lock.release

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *args: object) -> None:
        self._lock.__exit__(*args)

    def __reduce__(self) -> tuple[Any, ...]:
        assert_spawning(self)
        return synchronized, (self._obj, self._lock)

    def get_obj(self) -> CT:
        """The wrapped ctypes object (accessing it directly bypasses the lock)."""
        return self._obj

    def get_lock(self) -> LockLike:
        """The lock that guards the object."""
        return self._lock

    def __repr__(self) -> str:
        return f"<{type(self).__name__} wrapper for {self._obj}>"


class Synchronized(SynchronizedBase["ctypes._SimpleCData[T]"], Generic[T]):
    if TYPE_CHECKING:
        value: T
    else:
        value = _locked_attribute("value")


class SynchronizedArray(SynchronizedBase["ctypes.Array[Any]"], Generic[T]):
    def __len__(self) -> int:
        return len(self._obj)

    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    @overload
    def __getitem__(self, i: int) -> T: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        obj: Any = self._obj  # ctypes' stubs index arrays by int or slice in separate overloads
        with self._lock:
            item: T | list[T] = obj[i]
            return item

    @overload
    def __setitem__(self, i: slice, value: Sequence[T]) -> None: ...
    @overload
    def __setitem__(self, i: int, value: T) -> None: ...
    def __setitem__(self, i: int | slice, value: T | Sequence[T]) -> None:
        obj: Any = self._obj
        with self._lock:
            obj[i] = value

    def __getslice__(self, start: int, stop: int) -> list[T]:
        with self._lock:
            items: list[T] = self._obj[start:stop]
            return items

    if TYPE_CHECKING:
        def __iter__(self) -> Iterator[T]: ...  # at run time, iteration goes through __getitem__

    def __setslice__(self, start: int, stop: int, values: Sequence[T]) -> None:
        with self._lock:
            self._obj[start:stop] = list(values)


class SynchronizedString(SynchronizedArray[bytes]):
    if TYPE_CHECKING:
        value: bytes
        raw: bytes
    else:
        value = _locked_attribute("value")
        raw = _locked_attribute("raw")

