"""Behaviour and names that programs and tools written against the stdlib rely on, per Python version."""

from __future__ import annotations

import gc
import os
import queue as pyqueue
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path
from typing import Any

import pytest

import procpar
import procpar.managers

pytestmark = pytest.mark.timeout(120)
METHODS = procpar.get_all_start_methods()


def run_script(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, timeout=100,
                          env=env, cwd=str(tmp_path))


def close_queue(q: Any) -> None:
    q.close()


def test_a_fork_context_lock_is_refused_by_spawn_and_forkserver_children() -> None:
    for method in ("spawn", "forkserver"):
        q = procpar.get_context("fork").Queue()
        p = procpar.get_context(method).Process(target=close_queue, args=(q,))
        with pytest.raises(RuntimeError, match=f"A SemLock created in a fork context .* started by {method}"):
            p.start()
    for queue_method in ("spawn", "forkserver"):
        for method in METHODS:
            q = procpar.get_context(queue_method).Queue()
            p = procpar.get_context(method).Process(target=close_queue, args=(q,))
            p.start()
            p.join(60)
            assert p.exitcode == 0


def test_a_closed_queue_is_closed_for_reading_here_once_used() -> None:
    for q in procpar.Queue(), procpar.JoinableQueue():
        q.close()
        q.join_thread()
        assert q.empty()
    for q in procpar.Queue(), procpar.JoinableQueue():
        q.put("foo")
        q.close()
        q.join_thread()
        with pytest.raises(OSError, match="is closed"):
            q.empty()
    for q in procpar.Queue(), procpar.JoinableQueue():
        q.put(list(range(100_000)))  # big enough to go through the feeder thread
        q.put("more")
        q.close()
        q.join_thread()
        with pytest.raises(OSError, match="is closed"):
            q.empty()
        with pytest.raises(ValueError, match="is closed"):
            q.get()


class _FakeConnection:
    def send(self, payload: Any) -> None:
        pass

    def recv(self) -> Any:
        return "#ERROR", pyqueue.Empty()


def test_manager_errors_hold_no_reference_cycle() -> None:
    gc.disable()
    try:
        with procpar.Manager() as manager:
            q = manager.Queue()
            try:
                q.get_nowait()
            except pyqueue.Empty as exc:
                ref = weakref.ref(exc)
            assert ref() is None
        try:
            procpar.managers.dispatch(_FakeConnection(), None, None)  # type: ignore[arg-type]
        except pyqueue.Empty as exc:
            ref = weakref.ref(exc)
        assert ref() is None
    finally:
        gc.enable()


def _register_at_exit(path: str) -> None:
    import atexit

    atexit.register(lambda: Path(path).write_text("deadbeef"))


@pytest.mark.parametrize("method", METHODS)
def test_atexit_handlers_registered_in_a_child(tmp_path: Path, method: str) -> None:
    """3.13 runs them in fork and forkserver children too (gh-83856); earlier versions only in spawn ones."""
    out = tmp_path / "out.txt"
    p = procpar.get_context(method).Process(target=_register_at_exit, args=(str(out),))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    expected = method == "spawn" or sys.version_info >= (3, 13)
    assert out.exists() == expected
    if expected:
        assert out.read_text() == "deadbeef"


def test_dummy_manager_has_list_and_dict() -> None:
    import procpar.dummy

    manager = procpar.dummy.Manager()
    shared = manager.list([1, 2])
    shared.append(3)
    assert shared == [1, 2, 3]
    assert manager.dict(a=1) == {"a": 1}
    assert manager.Namespace(x=1).x == 1


def test_names_programs_import() -> None:
    import procpar.context
    import procpar.forkserver
    import procpar.popen_fork
    import procpar.popen_forkserver
    import procpar.popen_spawn_posix
    import procpar.resource_sharer
    import procpar.spawn

    assert callable(procpar.context.assert_spawning)
    assert procpar.forkserver._forkserver.ensure_running is not None
    assert procpar.resource_sharer.DupFd is not None
    assert procpar.spawn.get_command_line()[0] == procpar.spawn.get_executable()
    for module in (procpar.popen_fork, procpar.popen_forkserver, procpar.popen_spawn_posix, procpar.forkserver,
                   procpar.spawn, procpar.resource_sharer):
        for name in module.__all__:
            assert hasattr(module, name), (module, name)


def test_cleanup_tests_stops_the_forkserver_so_the_next_start_works(tmp_path: Path) -> None:
    out = run_script(tmp_path, """
        import procpar, procpar.util, procpar.forkserver
        def noop(): pass
        if __name__ == "__main__":
            ctx = procpar.get_context("forkserver")
            for _ in range(2):
                p = ctx.Process(target=noop); p.start(); p.join(30)
                print(p.exitcode, procpar.forkserver._forkserver._forkserver_pid is not None)
                procpar.util._cleanup_tests()
                print(procpar.forkserver._forkserver._forkserver_pid)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "True", "None", "0", "True", "None"]


def test_a_killed_resource_tracker_is_replaced_with_a_warning(tmp_path: Path) -> None:
    out = run_script(tmp_path, """
        import os, signal, warnings
        from procpar.resource_tracker import _resource_tracker, register, unregister
        _resource_tracker.ensure_running()
        assert _resource_tracker._check_alive()
        pid = _resource_tracker._pid
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            register("x", "noop")
            unregister("x", "noop")
        print(len(caught), "resource_tracker: process died" in str(caught[0].message), _resource_tracker._pid != pid)
        register("leak", "noop")
        _resource_tracker._stop()
        print(_resource_tracker._exitcode)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True", "True", "1"]


def test_the_logger_is_multiprocessing_under_install(tmp_path: Path) -> None:
    out = run_script(tmp_path, """
        import logging, procpar
        before = procpar.get_logger().name
        procpar.install()
        import multiprocessing
        logger = multiprocessing.get_logger()
        print(before, logger.name, logger is logging.getLogger("multiprocessing"))
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["procpar", "multiprocessing", "True"]


def test_multiprocessing_util_under_the_alias_then_fork(tmp_path: Path) -> None:
    out = run_script(tmp_path, """
        import procpar
        procpar.install()
        import multiprocessing, multiprocessing.util
        def f(q): q.put("child ran")
        if __name__ == "__main__":
            ctx = multiprocessing.get_context("fork")
            q = ctx.Queue(); p = ctx.Process(target=f, args=(q,)); p.start()
            print(q.get(timeout=30)); p.join(); print(p.exitcode)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["child ran", "0"]


@pytest.mark.parametrize("on_error", ["ignore", "warn", "fail"])
def test_forkserver_preload_on_error(tmp_path: Path, on_error: str) -> None:
    out = run_script(tmp_path, """
        import sys, procpar
        def noop(): pass
        if __name__ == "__main__":
            ctx = procpar.get_context("forkserver")
            ctx.set_forkserver_preload(["no_such_module_here"], on_error=sys.argv[1])
            p = ctx.Process(target=noop)
            try:
                p.start(); p.join(30); print("exit", p.exitcode)
            except RuntimeError as exc:
                print("failed:", exc)
    """, on_error)
    assert out.returncode == 0, out.stderr
    if on_error == "fail":
        assert out.stdout.startswith("failed: the forkserver exited (exit code 1)")
        assert "preloading 'no_such_module_here' failed" in out.stderr
    else:
        assert out.stdout.strip() == "exit 0"
        assert ("could not preload 'no_such_module_here'" in out.stderr) == (on_error == "warn")


def test_forkserver_preload_rejects_a_bad_policy() -> None:
    with pytest.raises(ValueError, match="on_error must be"):
        procpar.set_forkserver_preload([], on_error="sometimes")


def _wait_for_interrupt(ready: Any) -> None:
    try:
        ready.set()
        # Not signal.pause(): a SIGINT that lands between the interpreter's signal check and pause() itself is
        # handled only at the next signal, so pause() would sleep on. Short sleeps meet it at the next bytecode.
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        os._exit(42)


@pytest.mark.parametrize("method", METHODS)
def test_process_interrupt_sends_ctrl_c(method: str) -> None:
    ctx = procpar.get_context(method)
    ready = ctx.Event()
    p = ctx.Process(target=_wait_for_interrupt, args=(ready,))
    p.start()
    try:
        assert ready.wait(60)
        p.interrupt()
        p.join(60)
        assert p.exitcode == 42
    finally:
        if p.exitcode is None:  # failed: do not leave a child for the interpreter's exit to wait on
            p.kill()
            p.join(30)


def test_default_start_method_follows_the_version() -> None:
    from procpar_core.context import default_start_method

    assert default_start_method() == ("forkserver" if sys.version_info >= (3, 14) else "fork")
