"""``freeze_support``: let a frozen executable (PyInstaller and the like) act as a spawn child."""

from __future__ import annotations

import sys


def freeze_support() -> None:
    """Run the spawn child's code and exit if this frozen executable was started as a child.

    Call it first thing under ``if __name__ == '__main__':``. Elsewhere it does nothing.
    """
    if getattr(sys, "frozen", False) and "--procpar-spawn" in sys.argv:
        from ._spawn_child import main

        main()
