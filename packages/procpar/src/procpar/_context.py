"""The meta-package's contexts: procpar-core's, plus the API of every procpar package installed.

They subclass the core contexts, so ``Process`` classes and the process-wide start method are shared: the
module-level ``procpar.set_start_method`` and ``procpar_core.set_start_method`` are one switch.
"""

from __future__ import annotations

import functools

from procpar_core.context import BaseContext, DefaultContext, ForkContext, ForkServerContext, SpawnContext

from ._extensions import EXTENSIONS, load, missing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FullContextMixin", "ProcparForkContext", "ProcparSpawnContext", "ProcparForkServerContext",
           "ProcparDefaultContext", "family", "default_context"]


class FullContextMixin:
    """Adds ``Lock``, ``Queue``, ``Value``, ``Pool``, ... bound to this context, from the packages present."""

    def __getattr__(self, name: str) -> Any:
        if name not in EXTENSIONS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            factory = load(name)
        except AttributeError:
            raise missing(name, "context") from None
        # The default context hands out its current concrete context, as the stdlib's does.
        return functools.partial(factory, ctx=self.get_context())  # type: ignore[attr-defined,unused-ignore]


class ProcparForkContext(FullContextMixin, ForkContext):
    pass


class ProcparSpawnContext(FullContextMixin, SpawnContext):
    pass


class ProcparForkServerContext(FullContextMixin, ForkServerContext):
    pass


class ProcparDefaultContext(FullContextMixin, DefaultContext):
    pass


def _make_family() -> dict[str, BaseContext]:
    from procpar_core.context import make_family

    return make_family(ProcparForkContext, ProcparSpawnContext, ProcparForkServerContext)


family = _make_family()
default_context = ProcparDefaultContext(family)
