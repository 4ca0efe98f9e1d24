"""Which package provides each name of the ``multiprocessing`` API that procpar-core does not.

The meta-package re-exports a name once its package is installed; until then, using it raises an
``AttributeError`` that says which distribution to install.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EXTENSIONS", "NO_CONTEXT_ARGUMENT", "CONTEXT_KEYWORD", "load"]

# public name -> (import name, distribution)
EXTENSIONS: dict[str, tuple[str, str]] = {
    **{name: ("procpar_sync", "procpar-sync") for name in (
        "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Condition", "Event", "Barrier",
        "Queue", "SimpleQueue", "JoinableQueue", "AbandonedLockWarning", "set_owner_death_policy",
        "get_owner_death_policy")},
    **{name: ("procpar_shm", "procpar-shm") for name in ("Value", "Array", "RawValue", "RawArray")},
    "Manager": ("procpar_managers", "procpar-managers"),
    "Pool": ("procpar_pool", "procpar-pool"),
    "Executor": ("procpar_pool", "procpar-pool"),
    "get_reusable_pool": ("procpar_pool", "procpar-pool"),
    "get_reusable_executor": ("procpar_pool", "procpar-pool"),
}

# Factories that take no ``ctx=`` (they create no lock or process).
NO_CONTEXT_ARGUMENT = frozenset({"RawValue", "RawArray", "AbandonedLockWarning", "set_owner_death_policy",
                                 "get_owner_death_policy"})
# Factories whose context keyword is not ``ctx`` (the stdlib's Pool takes ``context=``).
CONTEXT_KEYWORD = {"Pool": "context", "Executor": "mp_context", "get_reusable_pool": "context",
                   "get_reusable_executor": "mp_context"}


def missing(name: str, where: str) -> AttributeError:
    _, dist = EXTENSIONS[name]
    return AttributeError(
        f"{where}.{name} is provided by the {dist} package, which is not installed; "
        f"install it with: pip install {dist}"
    )


def load(name: str) -> Any:
    """The object ``name`` from the package that provides it (``AttributeError`` if not installed)."""
    module_name, _ = EXTENSIONS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise missing(name, "procpar") from None
    return getattr(module, name)
