"""Large buffers beside the pickle: pickle protocol 5's out-of-band buffers, carried in shared memory.

A numpy array, a bytearray or anything else that pickles its memory as a ``PickleBuffer`` is not copied into
the pickle when it is large: its bytes go once into a fresh ``/dev/shm`` segment, the message carries the
segment's name and where each buffer lies, and the receiver maps the segment and unpickles the objects over
the mapping itself (``numpy.frombuffer``-style: no second copy, no trip through the socket).

Ownership: the creator registers the segment with procpar's resource tracker; the receiver unlinks it as soon
as it has mapped it and unregisters it. A segment whose receiver died first is unlinked by the pool when it
fails the task; a segment left by a program that died is removed by the tracker. ``bytes`` objects are always
pickled in-band (pickle gives them no out-of-band path).
"""

from __future__ import annotations

import mmap
import os
import struct

from procpar_core import lowlevel, resource_tracker
from procpar_core.lowlevel import dumps_bytes, dumps_each
from procpar_core.reduction import ForkingPickler, loads
from procpar_core.util import owned_name_prefix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pickle import PickleBuffer

__all__ = ["THRESHOLD", "PLAIN", "NUMBERS", "LargeBuffer", "dumps", "dumps_inband", "dumps_each_inband",
           "loads_message", "discard", "ensure_tracker", "SegmentBytes"]

THRESHOLD = 1 << 20  # smaller buffers stay in the pickle: a segment costs more than copying them
_ALIGN = 64
_SHM_DIR = "/dev/shm"
PLAIN, _WITH_SEGMENT = b"\0", b"\1"
# A reply that is a list of numbers, packed by procpar-sync's _wire.pack_numbers (the outcome is success).
NUMBERS = b"\2"
_LAYOUT_LENGTH = struct.Struct("!I")


def ensure_tracker() -> None:
    """Make the resource tracker's pipe now, so that children started from here share it; the tracker process
    itself starts when first needed (the first segment this process creates or takes), not on the CPUs the first
    workers are starting on."""
    if os.path.isdir(_SHM_DIR):
        resource_tracker.ensure_running(defer=True)



def _segment_path(name: str) -> str:
    return os.path.join(_SHM_DIR, name.lstrip("/"))


class SegmentBytes:
    """Bytes one pool put into segments and took out of them, for ``pool.stats()`` (updated under its engine's
    mutex, like everything the engine reads and writes of its workers)."""

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0


def dumps(obj: object, prefix: bytes = b"", counts: SegmentBytes | None = None) -> tuple[bytes, str | None]:
    """``obj`` pickled (protocol 5) with its large buffers in a new segment: (``prefix`` + message body, segment
    name). The prefix (a message header) is joined in the copy that makes the body, not in one more. The
    segment's bytes are added to ``counts.sent``."""
    if lowlevel.get_serializer() != "pickle":
        return prefix + PLAIN + bytes(lowlevel.serialize(obj)), None
    big: list[PickleBuffer] = []

    def aside(buffer: PickleBuffer) -> bool:
        if buffer.raw().nbytes >= THRESHOLD:
            big.append(buffer)
            return False  # out of band
        return True

    head = prefix + PLAIN
    data = dumps_bytes(obj, aside, head)
    if not big or not os.path.isdir(_SHM_DIR):
        if big:  # no shared memory here: pickle everything in-band
            return head + bytes(ForkingPickler.dumps(obj)), None
        return data, None
    data = data[len(head):]  # the pickle alone (small: its large buffers go to the segment)
    layout: list[tuple[int, int]] = []
    offset = 0
    for buffer in big:
        size = buffer.raw().nbytes
        layout.append((offset, size))
        offset += (size + _ALIGN - 1) // _ALIGN * _ALIGN
    # Named after the program (a later program removes it if this one dies with its tracker), and registered
    # before it exists: a SIGKILL between its creation and its registration would leave it behind for good.
    name = "/" + owned_name_prefix("oob") + os.urandom(8).hex()
    resource_tracker.register(name, "shared_memory")
    try:
        fd = os.open(_segment_path(name), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except BaseException:
        resource_tracker.unregister(name, "shared_memory")
        raise
    try:
        os.ftruncate(fd, max(offset, 1))
        # Written with pwrite() rather than through a mapping: the kernel fills each new page as it allocates
        # it, where a mapping has every page zeroed (and faulted in) before the copy overwrites it.
        for buffer, (start, size) in zip(big, layout, strict=True):
            view = buffer.raw()
            written = 0
            while written < size:
                written += os.pwrite(fd, view[written:], start + written)
    except BaseException:
        os.close(fd)
        os.unlink(_segment_path(name))
        resource_tracker.unregister(name, "shared_memory")
        raise
    os.close(fd)
    if counts is not None:
        counts.sent += offset
    description = bytes(ForkingPickler.dumps((name, layout)))
    return prefix + _WITH_SEGMENT + _LAYOUT_LENGTH.pack(len(description)) + description + data, name


class LargeBuffer(Exception):
    """``dumps_inband`` met a buffer that should travel in shared memory."""


def _refuse_large(buffer: PickleBuffer) -> bool:
    if buffer.raw().nbytes >= THRESHOLD:
        raise LargeBuffer
    return True  # in band


def dumps_each_inband(objs: list[object]) -> list[bytes | Exception]:
    """Each object pickled with its buffers in band (a plain pickle, not a message body), or the exception it
    raised: ``LargeBuffer`` when one of its buffers is large enough for shared memory (``dumps`` is then the
    way)."""
    if lowlevel.get_serializer() != "pickle":
        out: list[bytes | Exception] = []
        for obj in objs:
            try:
                out.append(bytes(lowlevel.serialize(obj)))
            except Exception as exc:
                out.append(exc)
        return out
    return dumps_each(objs, _refuse_large)


def dumps_inband(obj: object) -> bytes:
    """``dumps_each_inband`` of one object, raising its error."""
    (pickled,) = dumps_each_inband([obj])
    if isinstance(pickled, Exception):
        raise pickled
    return pickled


def loads_message(body: memoryview, counts: SegmentBytes | None = None) -> object:
    """The object of a body made by ``dumps``; takes ownership of its segment (maps it, then unlinks it), whose
    bytes are added to ``counts.received``."""
    if body[:1] == PLAIN:
        return loads(body[1:])
    (length,) = _LAYOUT_LENGTH.unpack_from(body, 1)
    start = 1 + _LAYOUT_LENGTH.size
    name, layout = loads(body[start : start + length])
    fd = os.open(_segment_path(name), os.O_RDWR | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        mapping = mmap.mmap(fd, size)
        if counts is not None:
            counts.received += size
    finally:
        os.close(fd)
        discard(name)
    view = memoryview(mapping)
    return loads(body[start + length :], buffers=[view[offset : offset + n] for offset, n in layout])


def discard(name: str) -> None:
    """Unlink a segment (if still there) and stop tracking it."""
    try:
        os.unlink(_segment_path(name))
    except FileNotFoundError:
        return
    resource_tracker.unregister(name, "shared_memory")
