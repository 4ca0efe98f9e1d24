"""The meta-package's contexts: procpar-core's, plus the API of every procpar package installed.

They subclass the core contexts, so ``Process`` classes and the process-wide start method are shared: the
module-level ``procpar.set_start_method`` and ``procpar_core.set_start_method`` are one switch.
"""

from __future__ import annotations

import functools

from procpar_core import context as _core

from ._extensions import CONTEXT_KEYWORD, EXTENSIONS, NO_CONTEXT_ARGUMENT, load, missing

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FullContextMixin", "ForkContext", "SpawnContext", "ForkServerContext", "DefaultContext", "family",
           "default_context"]


class FullContextMixin:
    """Adds ``Lock``, ``Queue``, ``Value``, ``Pool``, ... bound to this context, from the packages present."""

    def __getattr__(self, name: str) -> Any:
        if name not in EXTENSIONS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            factory = load(name)
        except AttributeError:
            raise missing(name, "context") from None
        if name in NO_CONTEXT_ARGUMENT:
            return factory
        # The default context hands out its current concrete context, as the stdlib's does.
        keyword = CONTEXT_KEYWORD.get(name, "ctx")
        return functools.partial(factory, **{keyword: self.get_context()})  # type: ignore[attr-defined,unused-ignore]


class ForkContext(FullContextMixin, _core.ForkContext):
    """fork, with the API of every procpar package installed."""


class SpawnContext(FullContextMixin, _core.SpawnContext):
    """spawn, with the API of every procpar package installed."""


class ForkServerContext(FullContextMixin, _core.ForkServerContext):
    """forkserver, with the API of every procpar package installed."""


class DefaultContext(FullContextMixin, _core.DefaultContext):
    """The default context, with the API of every procpar package installed."""

    def get_context(self, method: str | None = None) -> ForkContext | SpawnContext | ForkServerContext:
        context = super().get_context(method)
        assert isinstance(context, (ForkContext, SpawnContext, ForkServerContext))  # its family is these
        return context


def _make_family() -> dict[str, _core.BaseContext]:
    from procpar_core.context import make_family

    return make_family(ForkContext, SpawnContext, ForkServerContext)


family = _make_family()
default_context = DefaultContext(family)
