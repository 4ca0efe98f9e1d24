from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import procpar_core

METHODS = procpar_core.get_all_start_methods()


@pytest.fixture(params=METHODS)
def ctx(request: pytest.FixtureRequest) -> Any:
    """The procpar-core context of each start method."""
    return procpar_core.get_context(request.param)


@pytest.fixture
def run_script(tmp_path: Any) -> Any:
    def run(source: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "script.py"
        path.write_text(textwrap.dedent(source))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=str(tmp_path))

    return run
