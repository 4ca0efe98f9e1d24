from __future__ import annotations

import sys
from typing import Any

import pytest

import procpar_core
from procpar_core.context import BaseContext, DefaultContext

pytestmark = pytest.mark.timeout(60)


def test_start_methods_match_the_stdlib() -> None:
    import multiprocessing

    assert set(procpar_core.get_all_start_methods()) == set(multiprocessing.get_all_start_methods())
    # the default is what the running CPython's multiprocessing uses here
    assert procpar_core.get_all_start_methods()[0] == multiprocessing.get_context().get_start_method()


def test_get_context_per_method() -> None:
    for method in procpar_core.get_all_start_methods():
        ctx = procpar_core.get_context(method)
        assert isinstance(ctx, BaseContext)
        assert ctx.get_start_method() == method
        assert ctx.get_context() is ctx
        assert ctx.get_context(method) is ctx
        assert ctx.Process._start_method == method
    with pytest.raises(ValueError, match="cannot find context for 'nope'"):
        procpar_core.get_context("nope")
    with pytest.raises(ValueError, match="concrete context"):
        procpar_core.get_context("spawn").set_start_method("fork")


def test_context_carries_the_core_api() -> None:
    ctx = procpar_core.get_context("spawn")
    for name in ("Process", "Pipe", "current_process", "parent_process", "active_children", "cpu_count",
                 "get_logger", "log_to_stderr", "freeze_support", "set_executable", "set_forkserver_preload",
                 "allow_connection_pickling", "ProcessError", "TimeoutError", "BufferTooShort",
                 "AuthenticationError", "reducer"):
        assert hasattr(ctx, name), name
    assert issubclass(ctx.TimeoutError, procpar_core.ProcessError)
    ctx.allow_connection_pickling()
    ctx.freeze_support()


def test_set_start_method_rules(run_script: Any) -> None:
    result = run_script(
        """
        import procpar_core
        print("none", procpar_core.get_start_method(allow_none=True))
        procpar_core.set_start_method("spawn")
        print("now", procpar_core.get_start_method())
        try:
            procpar_core.set_start_method("fork")
        except RuntimeError as exc:
            print("again", exc)
        procpar_core.set_start_method("forkserver", force=True)
        print("forced", procpar_core.get_start_method())
        procpar_core.set_start_method(None, force=True)
        print("reset", procpar_core.get_start_method(allow_none=True))
        try:
            procpar_core.set_start_method("bogus")
        except ValueError as exc:
            print("bogus", exc)
        print("default", procpar_core.get_start_method())
        """
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "none None" in out
    assert "now spawn" in out
    assert "again context has already been set" in out
    assert "forced forkserver" in out
    assert "reset None" in out
    assert "bogus cannot find context for 'bogus'" in out
    assert f"default {procpar_core.context.default_start_method()}" in out


def test_default_context_process_follows_the_method(run_script: Any) -> None:
    result = run_script(
        """
        import procpar_core, os
        def f():
            pass
        if __name__ == "__main__":
            procpar_core.set_start_method("forkserver")
            p = procpar_core.Process(target=f)
            p.start(); p.join(30)
            print(type(p._popen).__name__, p.exitcode)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "PopenForkServer 0" in result.stdout


def test_set_executable(run_script: Any) -> None:
    result = run_script(
        f"""
        import procpar_core, sys
        def f(q):
            q.send(sys.executable)
        if __name__ == "__main__":
            procpar_core.set_executable({sys.executable!r})
            ctx = procpar_core.get_context("spawn")
            r, w = ctx.Pipe()
            p = ctx.Process(target=f, args=(w,))
            p.start(); print("exe", r.recv()); p.join(30)
            procpar_core.set_executable("/nonexistent/python")
            try:
                ctx.Process(target=f, args=(w,)).start()
            except OSError as exc:
                print("error", type(exc).__name__)
        """
    )
    assert result.returncode == 0, result.stderr
    assert f"exe {sys.executable}" in result.stdout
    assert "error FileNotFoundError" in result.stdout


def test_forkserver_preload(run_script: Any) -> None:
    result = run_script(
        """
        import procpar_core, sys
        def f(conn):
            conn.send("colorsys" in sys.modules)
        if __name__ == "__main__":
            try:
                procpar_core.set_forkserver_preload("colorsys")
            except TypeError as exc:
                print("typeerror", exc)
            procpar_core.set_forkserver_preload(["colorsys", "module_that_does_not_exist"])
            ctx = procpar_core.get_context("forkserver")
            r, w = ctx.Pipe()
            p = ctx.Process(target=f, args=(w,))
            p.start(); print("preloaded", r.recv()); p.join(30)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "typeerror module_names must be a list of strings" in result.stdout
    assert "preloaded True" in result.stdout


def test_repr_of_contexts() -> None:
    assert "'spawn'" in repr(procpar_core.get_context("spawn"))
    from procpar_core import _context

    assert isinstance(_context._default_context, DefaultContext)
