"""Stand-ins for ``typing``'s ``Generic``, ``cast`` and ``overload``, for packages that keep ``typing`` out of
their run-time imports.

A spawned child imports the procpar packages it needs; ``typing`` costs a few milliseconds per process. A module
writes ``if TYPE_CHECKING: from typing import Generic, cast, overload`` and
``else: from procpar_core.runtime_typing import Generic, cast, overload``: type checkers see the real ones; at
run time ``Generic[...]`` is a plain base class that makes the subclass subscriptable (``AsyncResult[int]``,
``Queue[int]``, as the stdlib's), ``cast`` returns its value and ``overload`` its function (the last
definition, the implementation, is the one kept).
"""

from __future__ import annotations

import types

__all__ = ["Generic", "cast", "overload"]


class _Subscriptable:
    __slots__ = ()
    __class_getitem__: classmethod[_Subscriptable, [object], types.GenericAlias] = classmethod(types.GenericAlias)


class _GenericStandIn:
    def __getitem__(self, params: object) -> type[_Subscriptable]:
        return _Subscriptable


Generic = _GenericStandIn()


def cast(typ: object, value: object) -> object:
    return value


def overload(func: object) -> object:
    return func
