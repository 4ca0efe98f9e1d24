"""``multiprocessing.popen_spawn_win32``: the spawn start method on Windows, which procpar does not support.

The module exists so that code listing or importing the stdlib's submodules finds every name; starting a
process with it says what is missing instead of failing with an import error somewhere else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Popen"]


class Popen:
    """Refuses: procpar runs on POSIX systems only (Linux is the tested one)."""

    method = "spawn"

    def __init__(self, process_obj: Any) -> None:
        raise OSError("procpar does not support Windows: popen_spawn_win32 cannot start processes; use the "
                      "'spawn', 'fork' or 'forkserver' start method on a POSIX system")
