"""procpar's public names against multiprocessing's."""

from __future__ import annotations

import importlib.util
import multiprocessing
from typing import Any

import pytest

import procpar
from procpar._extensions import EXTENSIONS

pytestmark = pytest.mark.timeout(60)


def _installed(import_name: str) -> bool:
    return importlib.util.find_spec(import_name) is not None


def test_every_multiprocessing_name_is_known() -> None:
    for name in multiprocessing.__all__:
        assert name in procpar.__all__, name
        if name in EXTENSIONS and not _installed(EXTENSIONS[name][0]):
            with pytest.raises(AttributeError, match=f"pip install {EXTENSIONS[name][1]}"):
                getattr(procpar, name)
        else:
            assert getattr(procpar, name) is not None, name


def test_core_names_are_the_core_objects() -> None:
    import procpar_core

    assert procpar.Process is procpar_core.Process
    assert procpar.Pipe is procpar_core.Pipe
    assert procpar.current_process is procpar_core.current_process
    assert procpar.TimeoutError is procpar_core.TimeoutError
    assert procpar.reducer is procpar_core.reduction


@pytest.mark.parametrize("submodule", ["connection", "context", "process", "reduction", "util", "synchronize",
                                       "queues", "sharedctypes", "shared_memory", "heap", "pool", "managers"])
def test_documented_submodules(submodule: str) -> None:
    mod = importlib.import_module(f"procpar.{submodule}")
    std = importlib.import_module(f"multiprocessing.{submodule}")
    assert getattr(procpar, submodule) is mod
    public = {n for n in getattr(std, "__all__", ()) if not n.startswith("_")}
    missing = {n for n in public if not hasattr(mod, n)}
    # Windows-only names have no POSIX counterpart.
    assert missing <= {"PipeConnection", "DupHandle", "duplicate", "steal_handle", "Popen"}, missing


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        procpar.nope
    assert "Process" in dir(procpar)


def test_contexts_are_procpar_contexts_sharing_the_start_method() -> None:
    import procpar_core

    for method in procpar.get_all_start_methods():
        ctx = procpar.get_context(method)
        assert type(ctx).__module__ == "procpar._context"
        assert ctx.get_context("spawn") is procpar.get_context("spawn")
        assert ctx.Process is procpar_core.get_context(method).Process
    assert procpar.get_start_method(allow_none=True) == procpar_core.get_start_method(allow_none=True)


def test_context_names_of_missing_packages_say_what_to_install() -> None:
    ctx: Any = procpar.get_context("spawn")
    for name, (import_name, dist) in EXTENSIONS.items():
        if not _installed(import_name):
            with pytest.raises(AttributeError, match=f"pip install {dist}"):
                getattr(ctx, name)
    with pytest.raises(AttributeError, match="no attribute 'bogus'"):
        ctx.bogus


def test_program_written_for_multiprocessing_runs_unchanged(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(
        """
        import procpar as multiprocessing
        from procpar.connection import Listener, Client

        def worker(conn, n):
            conn.send(sum(i * i for i in range(n)))
            conn.close()

        if __name__ == "__main__":
            for method in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context(method)
                parent, child = ctx.Pipe()
                p = ctx.Process(target=worker, args=(child, 10))
                p.start()
                print(method, parent.recv())
                p.join()
        """
    ))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    for method in procpar.get_all_start_methods():
        assert f"{method} 285" in result.stdout


def test_shared_memory_is_the_implementation_module() -> None:
    import procpar_shm.shared_memory

    # Patching a module global (as CPython's own tests do with _make_filename) must reach the implementation.
    assert procpar.shared_memory is procpar_shm.shared_memory


def test_context_value_factories() -> None:
    ctx: Any = procpar.get_context("spawn")
    v = ctx.Value("i", 3)
    assert v.value == 3 and type(v.get_lock()).__name__ == "RLock"
    raw = ctx.RawArray("d", 4)  # no ctx= for the raw factories, as in the stdlib
    assert raw[:] == [0.0] * 4
    assert procpar.Array("i", [1, 2])[:] == [1, 2]


SPEC_VALUE_ARRAY = """
from multiprocessing import Process, Value, Array

def f(n, a):
    n.value = 3.1415927
    for i in range(len(a)):
        a[i] = -a[i]

if __name__ == '__main__':
    num = Value('d', 0.0)
    arr = Array('i', range(10))

    p = Process(target=f, args=(num, arr))
    p.start()
    p.join()

    print(num.value)
    print(arr[:])
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_spec_shared_memory_example_through_the_meta_package(tmp_path: Any, method: str) -> None:
    import os
    import subprocess
    import sys

    script = tmp_path / "example.py"
    source = SPEC_VALUE_ARRAY.replace("if __name__ == '__main__':\n",
                                      f"if __name__ == '__main__':\n    multiprocessing.set_start_method({method!r})\n")
    prelude = "import procpar as multiprocessing, sys\nsys.modules['multiprocessing'] = multiprocessing\n"
    script.write_text(prelude + source)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env,
                         cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["3.1415927", "[0, -1, -2, -3, -4, -5, -6, -7, -8, -9]"]


@pytest.mark.parametrize("method", procpar.get_all_start_methods())
def test_context_manager_runs_its_server_with_that_context(method: str) -> None:
    ctx: Any = procpar.get_context(method)
    with ctx.Manager() as manager:
        assert manager._ctx is ctx
        shared = manager.dict(a=1)
        p = ctx.Process(target=shared.__setitem__, args=("b", 2))
        p.start()
        p.join(30)
        assert shared.copy() == {"a": 1, "b": 2}
    assert procpar.managers.SyncManager is importlib.import_module("procpar_managers").SyncManager


def test_the_executor_is_reachable_from_procpar() -> None:
    import procpar_pool

    assert procpar.Executor is procpar_pool.Executor
    ctx: Any = procpar.get_context("spawn")
    with ctx.Executor(1) as executor:
        assert executor._pool._ctx is ctx  # the context's Executor runs its workers with that context
        assert executor.submit(abs, -3).result(60) == 3


def test_the_reusable_pool_is_reachable_from_procpar_and_its_contexts() -> None:
    import procpar_pool

    pool = procpar.get_reusable_pool(1)
    try:
        assert pool is procpar_pool.get_reusable_pool(1)
        ctx = procpar.get_context()
        assert ctx.get_reusable_pool(1) is pool  # the default context's start method: the same pool
        assert ctx.get_reusable_executor(1)._pool is pool
    finally:
        pool.terminate()
        pool.join(30)
