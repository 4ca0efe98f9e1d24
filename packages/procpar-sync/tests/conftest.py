from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any, Iterator

import pytest

import procpar_core

METHODS = procpar_core.get_all_start_methods()


@pytest.fixture(params=METHODS)
def ctx(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The procpar-core context of each start method.

    The program's start method is set to the same one for the test, as CPython's suite does per module: objects
    made with the default context (``procpar_sync.Lock()``) may then go to its children, which a fork-context
    lock may not under spawn and forkserver (as with the stdlib).
    """
    before = procpar_core.get_start_method(allow_none=True)
    procpar_core.set_start_method(request.param, force=True)
    try:
        yield procpar_core.get_context(request.param)
    finally:
        procpar_core.set_start_method(before, force=True)


@pytest.fixture
def run_script(tmp_path: Any) -> Any:
    def run(source: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "script.py"
        path.write_text(textwrap.dedent(source))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=str(tmp_path))

    return run
