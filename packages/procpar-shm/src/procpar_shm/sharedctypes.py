"""Shared ctypes objects: ``RawValue``, ``RawArray``, ``Value``, ``Array``, ``synchronized``, ``copy``."""

from __future__ import annotations

from ._sharedctypes import *  # noqa: F403
from ._sharedctypes import __all__ as __all__

TYPE_CHECKING = False
if TYPE_CHECKING:
    # The typecode literals of Value/Array/RawArray's signatures, for packages that wrap them.
    from ._sharedctypes import FloatCode as FloatCode
    from ._sharedctypes import IntCode as IntCode
    from ._sharedctypes import StrCode as StrCode
