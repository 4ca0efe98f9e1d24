"""Named POSIX shared memory: ``SharedMemory`` blocks and ``ShareableList``.

Segments are files in ``/dev/shm`` named like the stdlib's (``/psm_`` and random hex), so procpar programs
and programs using ``multiprocessing.shared_memory`` open each other's segments by name, and a
``ShareableList`` has the stdlib's byte layout.

Lifetime: the process that *creates* a segment registers it with procpar's resource tracker, which unlinks
it if the program ends (SIGKILL included) without calling ``unlink()``; ``track=False`` makes a segment that
outlives its program. Attaching by name does not register by default: a process that only uses a segment
cannot destroy it at exit, and nothing warns about "leaked" segments that belong to someone else (the
stdlib's gh-82300). Attaching with an explicit ``track=True`` registers, as 3.13's stdlib documents: that
process's tracker then removes the segment, with its leak warning, when the process ends.
"""

from __future__ import annotations

import errno
import mmap
import os
import secrets
import struct
import types
from functools import partial

from procpar_core import resource_tracker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Iterator

__all__ = ["SharedMemory", "ShareableList"]

_USE_POSIX = True
_O_CREX = os.O_CREAT | os.O_EXCL
# Short names: some systems (macOS) limit POSIX shared memory names to 31 characters.
_SHM_SAFE_NAME_LENGTH = 14
_SHM_NAME_PREFIX = "/psm_"
_SHM_DIR = "/dev/shm"


def _make_filename() -> str:
    """A fresh random segment name with the stdlib's prefix."""
    nbytes = (_SHM_SAFE_NAME_LENGTH - len(_SHM_NAME_PREFIX)) // 2
    return _SHM_NAME_PREFIX + secrets.token_hex(nbytes)


def _segment_path(name: str) -> str:
    bare = name[1:] if name.startswith("/") else name
    if not bare or "/" in bare or bare in (".", ".."):
        raise OSError(errno.EINVAL, f"invalid shared memory name {name!r}: one path component, like 'psm_1234'")
    if not os.path.isdir(_SHM_DIR):  # pragma: no cover - procpar-shm targets Linux
        raise OSError(errno.ENOSYS, f"POSIX shared memory needs {_SHM_DIR}, which this system does not have")
    return os.path.join(_SHM_DIR, bare)


def _shm_open(name: str, flags: int, mode: int) -> int:
    return os.open(_segment_path(name), flags | os.O_CLOEXEC | os.O_NOFOLLOW, mode)


def _shm_unlink(name: str) -> None:
    os.unlink(_segment_path(name))


class SharedMemory:
    """A block of shared memory, created (``create=True``) or attached by ``name``.

    ``buf`` is a memoryview of the whole block (``size`` bytes; the system may round it up). Call ``close()``
    in every process when done with it, and ``unlink()`` once, in one process, to destroy it.
    """

    _name: str | None = None
    _fd = -1
    _mmap: mmap.mmap | None = None
    _buf: memoryview | None = None
    _flags = os.O_RDWR
    _mode = 0o600
    _prepend_leading_slash = True
    _track = True

    def __init__(self, name: str | None = None, create: bool = False, size: int = 0, *,
                 track: bool | None = None) -> None:
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"'size' must be a positive integer, not {size!r}")
        if create:
            self._flags = _O_CREX | os.O_RDWR
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero when creating a segment")
        if name is None and not self._flags & os.O_EXCL:
            raise ValueError("'name' can only be None if create=True: name the segment to attach to")
        # None: track what this process creates only; True: also what it attaches to; False: nothing. unlink()
        # tells the tracker unless track=False: whichever process removes a segment, its creator registered it.
        self._track = track is not False
        registers = track is True or (create and track is None)
        if name is None:
            while True:
                candidate = _make_filename()
                try:
                    self._fd = _shm_open(candidate, self._flags, self._mode)
                except FileExistsError:
                    continue
                self._name = candidate
                break
        else:
            candidate = "/" + name if self._prepend_leading_slash and not name.startswith("/") else name
            self._fd = _shm_open(candidate, self._flags, self._mode)
            self._name = candidate
        try:
            if create:
                os.ftruncate(self._fd, size)
            size = os.fstat(self._fd).st_size
            if size == 0:
                raise ValueError(f"shared memory segment {self.name!r} is empty: it cannot be mapped")
            self._mmap = mmap.mmap(self._fd, size)
        except BaseException:
            if create:
                self.unlink()
            self.close()
            raise
        self._size = size
        self._buf = memoryview(self._mmap)
        if registers:
            resource_tracker.register(self._name, "shared_memory")

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"

    @property
    def buf(self) -> memoryview:
        """A memoryview of the contents of the shared memory block."""
        if self._buf is None:
            raise ValueError(f"shared memory segment {self._name!r} is closed")
        return self._buf

    @property
    def name(self) -> str:
        """The unique name of the block, as given to another process to attach to it."""
        assert self._name is not None
        if self._prepend_leading_slash and self._name.startswith("/"):
            return self._name[1:]
        return self._name

    @property
    def size(self) -> int:
        """Size of the block in bytes."""
        return self._size

    def close(self) -> None:
        """Stop using the block from this instance (the block itself stays; see ``unlink``)."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def unlink(self) -> None:
        """Destroy the block once every process has closed it; call it once, from one process."""
        if self._name:
            _shm_unlink(self._name)
            if self._track:
                resource_tracker.unregister(self._name, "shared_memory")


# -- ShareableList ---------------------------------------------------------------------------------------
#
# Byte layout (the stdlib's, so both can share a list), all little fields in native order:
#   q              number of items N
#   q * (N + 1)    offset of each item's slot in the data area, then the data area's size
#   data area      one slot per item: 8 bytes for numbers, bool and None; a multiple of 8 for str/bytes
#   8s * N         each item's struct format, as ASCII
#   b * N          each item's kind: 0 number/bool, 1 str, 2 bytes, 3 None

_ENCODING = "utf8"
_SLOT = 8
_FORMATS: dict[type, str] = {int: "q", float: "d", bool: "xxxxxxx?", type(None): "xxxxxx?x"}
_KIND_PLAIN, _KIND_STR, _KIND_BYTES, _KIND_NONE = 0, 1, 2, 3


def _kind(value: Any) -> int:
    if isinstance(value, str):
        return _KIND_STR
    if isinstance(value, bytes):
        return _KIND_BYTES
    if value is None:
        return _KIND_NONE
    return _KIND_PLAIN


def _decode(kind: int, raw: Any) -> Any:
    if kind == _KIND_STR:
        return raw.rstrip(b"\x00").decode(_ENCODING)
    if kind == _KIND_BYTES:
        return raw.rstrip(b"\x00")
    if kind == _KIND_NONE:
        return None
    return raw


def _format_of(value: Any) -> str:
    if isinstance(value, (str, bytes)):
        # The stdlib sizes a str slot by its characters; keep its formats, but never a slot too small for
        # the encoded bytes (the stdlib would cut a multi-byte string short).
        size = _SLOT * (len(value) // _SLOT + 1)
        if isinstance(value, str) and len(value.encode(_ENCODING)) > size:
            size = _SLOT * (len(value.encode(_ENCODING)) // _SLOT + 1)
        return f"{size}s"
    try:
        return _FORMATS[type(value)]
    except KeyError:
        raise TypeError(f"ShareableList holds int, float, bool, str, bytes and None, not {type(value).__name__}") \
            from None


def _encoded(value: Any) -> Any:
    return value.encode(_ENCODING) if isinstance(value, str) else value


class ShareableList:
    """A fixed-length list of int, float, bool, str, bytes and None in one shared memory block.

    Items can be replaced (a str or bytes item only by one that fits its slot) but the list cannot grow or
    shrink. ``ShareableList(name=...)`` attaches to an existing list.
    """

    def __init__(self, sequence: Iterable[Any] | None = None, *, name: str | None = None) -> None:
        if name is None or sequence is not None:
            items = list(sequence or ())
            formats = [_format_of(item) for item in items]
            offsets = [0]
            for fmt in formats:
                offsets.append(offsets[-1] + (int(fmt[:-1]) if fmt.endswith("s") else _SLOT))
            count = len(items)
            size = struct.calcsize("q" * (count + 2) + "".join(formats) + "8s" * count + "b" * count)
            self.shm = SharedMemory(name, create=True, size=size)
            self._list_len = count
            self._allocated_offsets = offsets
            buf = self.shm.buf
            struct.pack_into("q" * (count + 2), buf, 0, count, *offsets)
            struct.pack_into("".join(formats), buf, self._offset_data_start, *(_encoded(v) for v in items))
            struct.pack_into("8s" * count, buf, self._offset_packing_formats, *(f.encode("ascii") for f in formats))
            struct.pack_into("b" * count, buf, self._offset_back_transform_codes, *(_kind(v) for v in items))
        else:
            self.shm = SharedMemory(name)
            (self._list_len,) = struct.unpack_from("q", self.shm.buf, 0)
            self._allocated_offsets = list(struct.unpack_from("q" * (self._list_len + 1), self.shm.buf, _SLOT))

    # -- layout --------------------------------------------------------------------------------------------

    @property
    def _offset_data_start(self) -> int:
        return (self._list_len + 2) * _SLOT

    @property
    def _offset_packing_formats(self) -> int:
        return self._offset_data_start + self._allocated_offsets[-1]

    @property
    def _offset_back_transform_codes(self) -> int:
        return self._offset_packing_formats + self._list_len * 8

    def _position(self, position: int, what: str) -> int:
        if not isinstance(position, int):
            raise TypeError(f"ShareableList indices must be integers, not {type(position).__name__}")
        if position < 0:
            position += self._list_len
        if not 0 <= position < self._list_len:
            raise IndexError(f"{what} out of range")
        return position

    def _get_packing_format(self, position: int) -> str:
        (raw,) = struct.unpack_from("8s", self.shm.buf, self._offset_packing_formats + position * 8)
        return str(raw.rstrip(b"\x00").decode("ascii"))

    def _get_kind(self, position: int) -> int:
        return int(struct.unpack_from("b", self.shm.buf, self._offset_back_transform_codes + position)[0])

    # -- list protocol -------------------------------------------------------------------------------------

    def __getitem__(self, position: int) -> Any:
        position = self._position(position, "index")
        offset = self._offset_data_start + self._allocated_offsets[position]
        (raw,) = struct.unpack_from(self._get_packing_format(position), self.shm.buf, offset)
        return _decode(self._get_kind(position), raw)

    def __setitem__(self, position: int, value: Any) -> None:
        position = self._position(position, "assignment index")
        slot_start = self._allocated_offsets[position]
        if isinstance(value, (str, bytes)):
            data = _encoded(value)
            room = self._allocated_offsets[position + 1] - slot_start
            if len(data) > room:
                raise ValueError(f"bytes/str item exceeds available storage: {len(data)} bytes into a slot of {room}")
            fmt = f"{room}s"
        else:
            fmt = _format_of(value)
            data = value
        buf = self.shm.buf
        struct.pack_into("8s", buf, self._offset_packing_formats + position * 8, fmt.encode("ascii"))
        struct.pack_into("b", buf, self._offset_back_transform_codes + position, _kind(value))
        struct.pack_into(fmt, buf, self._offset_data_start + slot_start, data)

    def __len__(self) -> int:
        return int(struct.unpack_from("q", self.shm.buf, 0)[0])

    def __iter__(self) -> Iterator[Any]:
        for position in range(self._list_len):
            yield self[position]

    def __reduce__(self) -> tuple[Any, ...]:
        return partial(self.__class__, name=self.shm.name), ()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({list(self)}, name={self.shm.name!r})"

    @property
    def format(self) -> str:
        """The struct format of all the items, concatenated."""
        return "".join(self._get_packing_format(i) for i in range(self._list_len))

    def count(self, value: Any) -> int:
        """How many items equal ``value``."""
        return sum(value == item for item in self)

    def index(self, value: Any) -> int:
        """The position of the first item equal to ``value``; ``ValueError`` if there is none."""
        for position, item in enumerate(self):
            if value == item:
                return position
        raise ValueError(f"{value!r} not in this container")

    __class_getitem__: Any = classmethod(types.GenericAlias)
