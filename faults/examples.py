"""The spec's examples that Ctrl-C is sent to at random moments, verbatim (``multiprocessing`` is whichever
implementation the trial runs: the trial program installs it under that name first).

They live as programs in ``packages/procpar/tests/programs/spec_*.py``, where the drop-in runner's tests run
them too.
"""

from __future__ import annotations

import os

_PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "packages", "procpar", "tests",
                         "programs")


def _load(name: str) -> str:
    with open(os.path.join(_PROGRAMS, f"spec_{name}.py"), encoding="utf-8") as f:
        return f.read()


EXAMPLES = {name: _load(name) for name in ("queue", "pipe", "lock", "pool", "manager", "workers")}
