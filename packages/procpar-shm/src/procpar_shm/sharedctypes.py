"""Shared ctypes objects: ``RawValue``, ``RawArray``, ``Value``, ``Array``, ``synchronized``, ``copy``."""

from __future__ import annotations

from ._sharedctypes import *  # noqa: F403
from ._sharedctypes import __all__ as __all__
