from __future__ import annotations

import gc
import os
from typing import Any

import core_targets as t
import pytest

import procpar_core
from procpar_core import util

pytestmark = pytest.mark.timeout(60)


def test_finalize_runs_once_when_object_dies() -> None:
    calls: list[Any] = []

    class Resource:
        pass

    r = Resource()
    f = util.Finalize(r, calls.append, args=("collected",))
    assert f.still_active()
    assert "callback=list.append" in repr(f)
    del r
    gc.collect()
    assert calls == ["collected"]
    assert not f.still_active()
    assert f() is None  # already ran
    assert calls == ["collected"]


def test_finalize_cancel_and_exit_priorities() -> None:
    from procpar_core._util import _run_finalizers

    order: list[str] = []
    low = util.Finalize(None, order.append, args=("low",), exitpriority=1)
    util.Finalize(None, order.append, args=("high",), exitpriority=10)
    cancelled = util.Finalize(None, order.append, args=("cancelled",), exitpriority=5)
    cancelled.cancel()
    _run_finalizers(5)
    assert order == ["high"]
    assert low.still_active()
    _run_finalizers(0)
    assert order == ["high", "low"]
    with pytest.raises(TypeError, match="exitpriority"):
        util.Finalize(None, print)


def test_register_after_fork_runs_in_fork_children() -> None:
    class Holder:
        value = "parent"

    holder = Holder()
    util.register_after_fork(holder, lambda obj: setattr(obj, "value", "reset in child"))
    ctx = procpar_core.get_context("fork")
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_send_holder_value, args=(w, holder))
    p.start()
    assert r.recv() == "reset in child"
    p.join(30)
    assert holder.value == "parent"


def _send_holder_value(conn: Any, holder: Any) -> None:
    conn.send(holder.value)


def test_temp_dir_is_shared_with_children_and_removed(run_script: Any) -> None:
    result = run_script(
        """
        import os, procpar_core
        from procpar_core import util
        def child(conn):
            conn.send(util.get_temp_dir())
        if __name__ == "__main__":
            d = util.get_temp_dir()
            print("dir", d, os.path.isdir(d), oct(os.stat(d).st_mode & 0o777))
            for m in procpar_core.get_all_start_methods():
                ctx = procpar_core.get_context(m)
                r, w = ctx.Pipe()
                p = ctx.Process(target=child, args=(w,)); p.start()
                print(m, r.recv() == d); p.join(30)
            print("exiting", util.is_exiting())
        """
    )
    assert result.returncode == 0, result.stderr
    path = result.stdout.split("dir ")[1].split()[0]
    assert "True 0o700" in result.stdout
    for m in procpar_core.get_all_start_methods():
        assert f"{m} True" in result.stdout
    assert "exiting False" in result.stdout
    assert not os.path.exists(path)


def test_log_to_stderr_format_and_child_process_names(run_script: Any) -> None:
    result = run_script(
        """
        import logging, procpar_core
        from procpar_core import util
        def child():
            procpar_core.get_logger().warning("hello from %s", "child")
        if __name__ == "__main__":
            logger = procpar_core.log_to_stderr(logging.INFO)
            assert logger is procpar_core.get_logger()
            logger.warning("hello from main")
            for m in procpar_core.get_all_start_methods():
                p = procpar_core.get_context(m).Process(target=child, name="kid-" + m)
                p.start(); p.join(30)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "[WARNING/MainProcess] hello from main" in result.stderr
    for m in procpar_core.get_all_start_methods():
        assert f"[WARNING/kid-{m}] hello from child" in result.stderr
    # INFO level is on: the exit sequence is logged too
    assert "[INFO/MainProcess] process shutting down" in result.stderr


def test_logger_levels() -> None:
    logger = procpar_core.get_logger()
    assert logger.name == "procpar"
    import logging

    assert logging.getLevelName(util.SUBDEBUG) == "SUBDEBUG"
    assert logging.getLevelName(util.SUBWARNING) == "SUBWARNING"
    assert util.DEFAULT_LOGGING_FORMAT == "[%(levelname)s/%(processName)s] %(message)s"


def test_fork_aware_lock_and_local() -> None:
    lock = util.ForkAwareThreadLock()
    with lock:
        pass
    assert lock.acquire()
    lock.release()
    local = util.ForkAwareLocal()
    local.x = 1
    assert local.x == 1


def test_close_fds_ignores_closed() -> None:
    r, w = os.pipe()
    util.close_fds(r, w, r)


def test_stdin_in_child_reads_as_empty(ctx: Any) -> None:
    r, w = ctx.Pipe()
    p = ctx.Process(target=t.report_identity, args=(w,))
    p.start()
    assert r.recv()["stdin_read"] == ""
    p.join(30)


def test_effective_log_level_reaches_spawned_children(run_script: Any) -> None:
    result = run_script(
        """
        import logging, procpar_core
        def child(conn):
            conn.send(procpar_core.get_logger().getEffectiveLevel())
        if __name__ == "__main__":
            procpar_core.get_logger()
            logging.getLogger().setLevel(37)
            for m in procpar_core.get_all_start_methods():
                ctx = procpar_core.get_context(m)
                r, w = ctx.Pipe()
                p = ctx.Process(target=child, args=(w,)); p.start()
                print(m, r.recv()); p.join(30)
        """
    )
    assert result.returncode == 0, result.stderr
    for m in procpar_core.get_all_start_methods():
        assert f"{m} 37" in result.stdout


def test_util_logging_names_the_callers_file() -> None:
    """util.info() and friends log with the caller's file and line, as the stdlib's (3.12+ tests check it)."""
    import io
    import logging

    from procpar_core import util

    logger = util.get_logger()
    level = logger.level
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(levelname)s] [%(filename)s] %(message)s"))
    logger.addHandler(handler)
    try:
        logger.setLevel(util.DEBUG)
        util.info("two")
        util.debug("three")
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == ["[INFO] [test_util.py] two", "[DEBUG] [test_util.py] three"]
    assert (util.NOTSET, util.DEBUG, util.INFO) == (0, 10, 20) and util.MAXFD > 2


def test_resource_sharer_stop_waits_for_its_thread() -> None:
    import os

    from procpar_core import _resource_sharer, resource_sharer

    r, w = os.pipe()
    try:
        resource_sharer.DupFd(r)
        thread = _resource_sharer._sharer._thread
        assert thread is not None and thread.is_alive()
        resource_sharer.stop(timeout=30)
        assert not thread.is_alive()
    finally:
        os.close(r)
        os.close(w)
