"""procpar-core's low-level API: what procpar's other packages (and libraries built on procpar) use beyond the
``multiprocessing`` API.

Public and versioned like the rest of the package: a name here changes only with a note under "Low-level API"
in the changelog, and its behaviour stays within the package's declared version range. procpar's packages meet
only through modules like this one (``tools/check_private_imports.py`` enforces it in CI).

* Pickling on the hot path: ``dumps_bytes`` (one reused pickler per thread, procpar's reducers, an optional
  out-of-band buffer callback), ``dumps_each`` (each object on its own, or the exception it raised),
  ``serialize`` (with the serializer chosen by ``set_serializer``), ``get_serializer``.
* Start-up of children: ``add_child_startup("module:function")`` (called first thing in every spawn and
  forkserver child, and passed on to theirs).
* Logging: ``set_logger_name`` (the package logger's name; ``"multiprocessing"`` under the drop-in alias).
"""

from __future__ import annotations

from ._log import set_logger_name
from ._reduction import dumps_bytes, dumps_each
from ._serializer import get_serializer, serialize
from ._spawn import add_child_startup

__all__ = ["dumps_bytes", "dumps_each", "serialize", "get_serializer", "add_child_startup", "set_logger_name"]
