"""The documentation site's examples (docs/site/examples) run, and print what the pages say they print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "site" / "examples"
# scaling_out.py needs a Dask cluster: procpar-dask's tests run it.
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.py") if p.stem != "scaling_out")


def test_every_example_has_its_expected_output() -> None:
    assert NAMES, f"no examples under {EXAMPLES}"
    assert all((EXAMPLES / f"{name}.out").exists() for name in NAMES)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", NAMES)
def test_example(name: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py")], capture_output=True, text=True,
                          timeout=150, cwd=str(EXAMPLES), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (EXAMPLES / f"{name}.out").read_text(), done.stderr
