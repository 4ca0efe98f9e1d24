"""Generic classes for type checkers without ``typing`` at run time.

procpar-pool keeps ``typing`` out of its import (a spawned worker imports the package; ``typing`` costs a few
milliseconds per process). Modules write ``if TYPE_CHECKING: from typing import Generic, TypeVar, cast`` and
``else: from ._generic import Generic, cast``; at run time ``Generic[...]`` is a plain base class that makes the
subclass subscriptable (``AsyncResult[int]``, as the stdlib's), and ``cast`` returns its value.
"""

from __future__ import annotations

import types

__all__ = ["Generic", "cast"]


class _Subscriptable:
    __slots__ = ()
    __class_getitem__: classmethod[_Subscriptable, [object], types.GenericAlias] = classmethod(types.GenericAlias)


class _GenericStandIn:
    def __getitem__(self, params: object) -> type[_Subscriptable]:
        return _Subscriptable


Generic = _GenericStandIn()


def cast(typ: object, value: object) -> object:
    return value
