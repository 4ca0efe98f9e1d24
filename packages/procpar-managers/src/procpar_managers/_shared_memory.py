"""``SharedMemoryManager``: shared memory blocks that live until the manager shuts down.

Blocks are created by the caller (it maps them without another round trip) and their names handed to the
server, which unlinks every one when it stops; the caller's process may exit or crash meanwhile.
"""

from __future__ import annotations

from procpar_core import resource_tracker, util
from procpar_shm.shared_memory import ShareableList, SharedMemory

from . import _connections
from ._manager import BaseManager
from ._server import Server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ._server import ServerRegistry
    from ._typing import Address

__all__ = ["SharedMemoryManager", "SharedMemoryServer"]


class SharedMemoryServer(Server):
    """A server that also keeps the names of the segments its clients made, and unlinks them at the end."""

    public = (*Server.public, "track_segment", "release_segment", "list_segments")

    def __init__(self, registry: ServerRegistry, address: Address | None, authkey: bytes, serializer: str) -> None:
        super().__init__(registry, address, authkey, serializer)
        self.segment_names: list[str] = []

    def track_segment(self, segment_name: str) -> None:
        """Unlink ``segment_name`` when this server stops."""
        util.debug("tracking shared memory segment %r", segment_name)
        with self.mutex:
            self.segment_names.append(segment_name)

    def release_segment(self, segment_name: str) -> None:
        """Unlink ``segment_name`` now and stop tracking it."""
        with self.mutex:
            if segment_name in self.segment_names:
                self.segment_names.remove(segment_name)
        _unlink(segment_name)

    def list_segments(self) -> list[str]:
        with self.mutex:
            return list(self.segment_names)

    def on_stop(self) -> None:
        with self.mutex:
            names, self.segment_names = self.segment_names, []
        for name in names:
            _unlink(name)


def _unlink(name: str) -> None:
    try:
        segment = SharedMemory(name)
    except FileNotFoundError:
        return
    try:
        segment.unlink()
    except FileNotFoundError:
        pass
    finally:
        segment.close()


class SharedMemoryManager(BaseManager):
    """A manager of shared memory blocks: ``SharedMemory(size)`` and ``ShareableList(sequence)`` make blocks
    that stay until ``shutdown()``, whichever process made them."""

    _Server = SharedMemoryServer

    def _prepare_start(self) -> None:
        # Started before the server, the tracker is shared with it: the segments the server unlinks are
        # unregistered from the tracker the creators registered them with, so no leak is reported.
        resource_tracker.ensure_running()

    def get_server(self) -> SharedMemoryServer:
        server = super().get_server()
        assert isinstance(server, SharedMemoryServer)
        return server

    def _track(self, name: str, segment: SharedMemory) -> None:
        try:
            _connections.control_call(self._started_address(), self._serializer, self._authkey, "track_segment",
                                      (name,))
        except BaseException:
            # Not tracked, so nobody would unlink it: give it back now.
            segment.unlink()
            segment.close()
            raise

    def SharedMemory(self, size: int) -> SharedMemory:
        """A new block of ``size`` bytes, unlinked when the manager shuts down."""
        self._check_started()
        segment = SharedMemory(None, create=True, size=size)
        self._track(segment.name, segment)
        return segment

    def ShareableList(self, sequence: Iterable[object] | None) -> ShareableList:
        """A new ``ShareableList`` of ``sequence``, unlinked when the manager shuts down."""
        self._check_started()
        shareable = ShareableList(sequence)
        self._track(shareable.shm.name, shareable.shm)
        return shareable
