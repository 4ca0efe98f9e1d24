"""``procpar.install()``: ``multiprocessing`` (every submodule) and ``ProcessPoolExecutor`` resolve to procpar.

The alias is a finder at the front of ``sys.meta_path``: importing ``multiprocessing.X`` imports
``procpar.X`` and registers that very module under both names, so objects made through either name are the
same. ``concurrent.futures.process`` becomes a small module whose ``ProcessPoolExecutor`` is procpar-pool's
``Executor`` (``concurrent.futures`` imports it from there on first use). Spawn and forkserver children call
``install`` before they import anything of their parent's (``procpar_core.spawn``'s child start-up list);
fork children inherit it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Sequence

__all__ = ["install", "installed"]

_ALIASED = "multiprocessing"
_FUTURES_PROCESS = "concurrent.futures.process"


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self._target)

    def exec_module(self, module: ModuleType) -> None:
        pass  # procpar's module is already loaded: nothing to run again


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds ``multiprocessing[.X]`` as ``procpar[.X]`` and ``concurrent.futures.process`` as procpar's."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == _FUTURES_PROCESS:
            target_name = "procpar._futures_process"
        elif fullname == _ALIASED or fullname.startswith(_ALIASED + "."):
            target_name = "procpar" + fullname[len(_ALIASED):]
            try:
                if importlib.util.find_spec(target_name) is None:
                    return None
            except ModuleNotFoundError:
                return None
        else:
            return None
        # The module keeps its own name and spec: it is procpar's, seen under a second name.
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(target_name))


_finder = _AliasFinder()


def installed() -> bool:
    """Whether ``multiprocessing`` resolves to procpar in this process."""
    return _finder in sys.meta_path


def install() -> None:
    """Make ``import multiprocessing`` (and every ``multiprocessing.X``, ``multiprocessing.dummy`` included)
    give procpar, and ``concurrent.futures.ProcessPoolExecutor`` procpar's executor, in this process and in
    every child it starts. Call it before the program imports ``multiprocessing``; objects the stdlib made
    before stay the stdlib's."""
    if installed():
        return
    stale = [name for name in sys.modules
             if name in (_ALIASED, _FUTURES_PROCESS) or name.startswith(_ALIASED + ".")]
    stale = [name for name in stale if not getattr(sys.modules[name], "__name__", "").startswith("procpar")]
    if stale:
        warnings.warn(f"procpar.install(): {', '.join(sorted(stale))} already imported from the stdlib; "
                      "objects made with them before stay the stdlib's", RuntimeWarning, stacklevel=2)
        for name in stale:
            del sys.modules[name]
    futures = sys.modules.get("concurrent.futures")
    if futures is not None and "ProcessPoolExecutor" in vars(futures):
        delattr(futures, "ProcessPoolExecutor")  # cached by concurrent.futures' lazy import: looked up again
    sys.meta_path.insert(0, _finder)
    from procpar_core import lowlevel

    lowlevel.set_logger_name("multiprocessing")
    lowlevel.add_child_startup("procpar._install:install")
