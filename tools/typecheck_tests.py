"""mypy over every package's tests (run by ``nox -s typecheck``).

Each package's tests are checked on their own (their helper modules, ``pool_targets`` and the like, are top-level
modules whose names repeat between packages), with ``--check-untyped-defs``: a test's body is checked even where
a fixture is typed ``Any``. Left out: the programs the drop-in runner's tests run as their users wrote them, and
the specification's examples, which are kept verbatim.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCLUDE = r"(^|/)(programs/|spec_examples\.py$)"


def main() -> int:
    sources = [str(p) for p in sorted((ROOT / "packages").glob("*/src"))] + [str(ROOT / "tools/pytest-procpar/src")]
    failed = []
    for tests in sorted((ROOT / "packages").glob("*/tests")):
        env = dict(os.environ, MYPYPATH=os.pathsep.join([*sources, str(tests)]))
        command = [sys.executable, "-m", "mypy", "--check-untyped-defs", "--explicit-package-bases",
                   "--no-error-summary", "--exclude", EXCLUDE, "--cache-dir", str(ROOT / ".mypy_cache" / "tests"),
                   "."]
        print(f"mypy: {tests.relative_to(ROOT)}", flush=True)
        if subprocess.run(command, cwd=tests, env=env).returncode:
            failed.append(tests.parent.name)
    if failed:
        print(f"type errors in the tests of: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
