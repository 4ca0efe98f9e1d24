"""Targets for tests of what a worker imports: this module itself imports nothing (not even typing)."""

from __future__ import annotations

import sys

HEAVY = ("typing", "logging", "concurrent.futures", "procpar_pool._process_engine", "procpar_pool._results",
         "procpar_pool.engine")


def heavy_modules_loaded(_: object) -> list[str]:
    """Which of the modules a worker should not need it has imported."""
    return [name for name in HEAVY if name in sys.modules]
