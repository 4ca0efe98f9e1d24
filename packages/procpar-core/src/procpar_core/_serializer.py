"""Which pickler turns objects into bytes: ``pickle`` (default) or ``cloudpickle`` (opt-in extra).

cloudpickle's output is ordinary pickle data, so the receiving side always uses ``pickle.loads``; it only
needs cloudpickle importable when the data refers to cloudpickle's helpers.
"""

from __future__ import annotations

import io

from ._reduction import _current_table
from ._reduction import dumps_bytes as _pickle_dumps

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any, Callable

__all__ = ["set_serializer", "get_serializer", "serialize", "SERIALIZERS"]

SERIALIZERS = ("pickle", "cloudpickle")

_name = "pickle"
serialize: Callable[[Any], Any] = _pickle_dumps


def _cloudpickle_dumps_factory() -> Callable[[Any], Any]:
    try:
        import cloudpickle  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise ImportError(
            "the 'cloudpickle' serializer needs the cloudpickle package: "
            "pip install 'procpar-core[cloudpickle]' (or pip install cloudpickle)"
        ) from None
    from collections import ChainMap

    base = cloudpickle.Pickler

    class _CloudForkingPickler(base):  # type: ignore[misc, valid-type]
        def __init__(self, file: Any, protocol: int | None = None) -> None:
            super().__init__(file, protocol=5 if protocol is None else protocol)
            # procpar's fd reducers first, then cloudpickle's own table (which includes copyreg's).
            # (cloudpickle's table is typed a Mapping; ChainMap only reads its later maps.)
            self.dispatch_table = ChainMap(_current_table(), base.dispatch_table)  # pyright: ignore[reportArgumentType]

    def _dumps(obj: Any) -> memoryview:
        buf = io.BytesIO()
        _CloudForkingPickler(buf).dump(obj)
        return buf.getbuffer()

    return _dumps


def set_serializer(name: str) -> None:
    """Choose how procpar pickles objects in this process and the children it starts.

    ``"pickle"``: the standard pickler at the highest protocol. ``"cloudpickle"``: also lambdas, closures and
    functions defined in ``__main__`` of an interactive session (needs ``procpar-core[cloudpickle]``).
    """
    global _name, serialize
    if name == "pickle":
        serialize = _pickle_dumps
    elif name == "cloudpickle":
        serialize = _cloudpickle_dumps_factory()
    else:
        raise ValueError(f"unknown serializer {name!r}; choose one of {', '.join(SERIALIZERS)}")
    _name = name


def get_serializer() -> str:
    """The name of the serializer in use: ``"pickle"`` or ``"cloudpickle"``."""
    return _name
