"""pytest fixtures shared by the tests of every procpar package (loaded through the ``pytest11`` entry point).

* ``ctx``: parametrised over procpar-core's start methods (fork, spawn, forkserver where available); the
  program's default start method is set to the same one for the test, as CPython's suite does per module, so
  objects made with the default context (``procpar_sync.Lock()``) may go to the context's children, which a
  fork-context lock may not under spawn and forkserver (as with the stdlib).
* ``run_script``: run a program in a fresh interpreter (with this one's ``sys.path``) and get its
  ``CompletedProcess``: for what only a whole program shows (exit codes, Ctrl-C, ``__main__`` handling).
* ``start_methods()``: the methods ``ctx`` covers, for tests parametrised by hand.

Modules beside it: ``pool_behaviour``, the pool's behaviour tests shared by every engine (a package imports
them into a test module and provides the ``pools`` and ``pool`` fixtures: procpar-pool over the start methods,
procpar-dask over two clusters), and ``pool_targets``, the functions those tests run in workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from procpar_core.context import BaseContext

__all__ = ["ScriptRunner", "start_methods", "ctx", "run_script"]


def start_methods() -> list[str]:
    import procpar_core

    return procpar_core.get_all_start_methods()


class ScriptRunner(Protocol):
    def __call__(self, source: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]: ...


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Parametrised here rather than in the fixture's decorator: the methods are known only once procpar-core
    # is importable, which is not yet the case when pytest loads its plugins.
    if "ctx" in metafunc.fixturenames:
        metafunc.parametrize("ctx", start_methods(), indirect=True)


@pytest.fixture
def ctx(request: pytest.FixtureRequest) -> Iterator[BaseContext]:
    """The procpar context of each start method, the program's default start method set to it."""
    import procpar_core

    method: str = request.param
    before = procpar_core.get_start_method(allow_none=True)
    procpar_core.set_start_method(method, force=True)
    try:
        yield procpar_core.get_context(method)
    finally:
        procpar_core.set_start_method(before, force=True)


@pytest.fixture
def run_script(tmp_path: Path) -> ScriptRunner:
    """Run a Python program (dedented source) in a fresh interpreter from ``tmp_path``."""

    def run(source: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "script.py"
        path.write_text(textwrap.dedent(source))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=str(tmp_path))

    return run
