"""``multiprocessing.spawn``: how a fresh interpreter becomes a child (executable, preparation data, main)."""

from __future__ import annotations

import sys

from ._freeze import freeze_support
from ._spawn import get_executable, get_preparation_data, interpreter_args, set_executable
from ._spawn_child import _fixup_main_from_path, prepare
from ._spawn_child import main as _main  # a spawn child's entry point (the stdlib's name)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["_main", "freeze_support", "set_executable", "get_executable", "get_preparation_data",
           "get_command_line", "import_main_path", "prepare"]


def get_command_line(**kwds: Any) -> list[str]:
    """The command line of a spawn child (its data and fds follow ``--procpar-spawn``); ``kwds`` are ignored:
    procpar passes everything through a pipe."""
    from ._popen_spawn import _CHILD_CODE

    return [get_executable(), *interpreter_args(), "-c", _CHILD_CODE, "--procpar-spawn"]


def import_main_path(main_path: str) -> None:
    """Run the program at ``main_path`` as ``__mp_main__`` (and ``__main__``), as a spawn child does."""
    _fixup_main_from_path(main_path)


# For code that checks, as the stdlib's spawn module offers them.
WINEXE = False
WINSERVICE = False
_python_exe = sys.executable
