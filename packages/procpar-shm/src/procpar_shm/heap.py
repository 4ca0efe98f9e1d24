"""The shared heap under sharedctypes: ``BufferWrapper`` blocks carved from ``Heap`` arenas."""

from __future__ import annotations

from ._heap import Arena as Arena
from ._heap import BufferWrapper as BufferWrapper
from ._heap import Heap as Heap

__all__ = ["Arena", "BufferWrapper", "Heap"]
