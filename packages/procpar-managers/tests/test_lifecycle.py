"""A manager's life: custom managers, start and shutdown errors, the initializer, a dead or interrupted server,
the spec's examples."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import manager_targets as t
import pytest

from procpar_core import ProcessError
from procpar_managers import Manager, ManagerNotStartedError, RemoteError, SyncManager

pytestmark = pytest.mark.timeout(90)


def test_custom_manager_exposed_and_errors(ctx: Any) -> None:
    with t.CounterManager(ctx=ctx) as m:
        c = m.Counter(5)
        assert c.bump() == 6 and c.bump(by=4) == 10
        assert not hasattr(c, "_private")
        with pytest.raises(RemoteError, match="not exposed"):
            c._callmethod("_private")
        with pytest.raises(KeyError, match="missing"):
            c.fail()  # the method's own exception, re-raised as is
        with pytest.raises(RemoteError, match="could not send the result of 'unpicklable'"):
            c.unpicklable()
        with pytest.raises(RemoteError, match="could not send the exception of 'raise_unpicklable'"):
            c.raise_unpicklable()
        assert c.bump() == 11  # the connection is still in step after each failure
        with pytest.raises(RemoteError, match="TypeError"):
            m.Counter(1, 2, 3)  # the constructor's failure, with its traceback
        assert list(m.numbers(4)) == [0, 1, 2, 3]
        p = ctx.Process(target=t.bump_in_child, args=(c,))
        p.start()
        p.join(30)
        assert p.exitcode == 0 and c.bump(0) == 21


def test_lifecycle_errors(ctx: Any) -> None:
    m = SyncManager(ctx=ctx)
    with pytest.raises(ManagerNotStartedError, match="not started"):
        m.list()
    with pytest.raises(TypeError, match="initializer must be a callable"):
        m.start(1)  # type: ignore[arg-type]
    m.start()
    with pytest.raises(ProcessError, match="Already started"):
        m.start()
    proc = t.server_process(m)
    m.shutdown()
    m.shutdown()  # again: nothing
    assert proc.exitcode == 0
    with pytest.raises(ManagerNotStartedError, match="shut down"):
        m.dict()
    with pytest.raises(ProcessError, match="shut down"):
        m.__enter__()
    with pytest.raises(ValueError, match="unknown serializer"):
        SyncManager(serializer="json")
    with pytest.raises(TypeError, match="cannot be pickled"):
        import pickle

        pickle.dumps(SyncManager())


def test_manager_initializer_and_manager_function(ctx: Any) -> None:
    m = Manager(ctx=ctx)
    try:
        ns = m.Namespace(test=0)
        with SyncManager(ctx=ctx) as m2:
            pass
        m3 = SyncManager(ctx=ctx)
        m3.start(setattr, (ns, "test", 1))  # the initializer runs in the server process, before it serves
        m3.shutdown()
        assert ns.test == 1 and m2._state.value == 2
    finally:
        m.shutdown()


def test_dead_manager_fails_calls_at_once(ctx: Any) -> None:
    m = SyncManager(ctx=ctx)
    m.start()
    q = m.Queue()
    os.kill(t.server_process(m).pid, signal.SIGKILL)
    t.server_process(m).join(30)
    started = time.monotonic()
    with pytest.raises((EOFError, OSError)):
        q.get(timeout=60)
    assert time.monotonic() - started < 30
    m.shutdown()  # the process is gone: shutdown just records it


def test_interrupted_call_does_not_desync_the_connection(manager: Any) -> None:
    event, lst = manager.Event(), manager.list([1])

    class Interrupt(Exception):
        pass

    def on_alarm(*_: Any) -> None:
        raise Interrupt

    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupt):
            event.wait(30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert lst[0] == 1  # a fresh connection: no stray reply from the interrupted wait
    event.set()
    assert event.is_set()


def test_server_ignores_sigint(manager: Any) -> None:
    d = manager.dict()
    os.kill(manager._process.pid, signal.SIGINT)
    d["after"] = 1
    assert d["after"] == 1 and manager._process.is_alive()


SHIM = """
import sys, procpar_core, procpar_managers
from procpar_managers import managers
procpar_core.Manager = procpar_managers.Manager
procpar_core.managers = managers
sys.modules["multiprocessing"] = procpar_core
sys.modules["multiprocessing.managers"] = managers
if __name__ == "__main__":
    procpar_core.set_start_method(sys.argv[1])
"""
def test_spec_examples(ctx: Any, run_script: Any) -> None:
    from spec_examples import CUSTOM_DEMO, MANAGER_INTRO, MATHS

    out = run_script(SHIM + MANAGER_INTRO, ctx.get_start_method())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["{1: '1', '2': 2, 0.25: None}", "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]"]
    out = run_script(SHIM + MATHS, ctx.get_start_method())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["7", "56"]
    out = run_script(SHIM + CUSTOM_DEMO, ctx.get_start_method())
    assert out.returncode == 0, out.stderr
    for expected in ("you called Foo.f()", "you called Foo.g()", "you called Foo._h()",
                     "<0> <1> <4> <9> <16> <25> <36> <49> <64> <81>", "op.add(23, 45) = 68",
                     f"op.pow(2, 94) = {2 ** 94}", "op._exposed_ = ("):
        assert expected in out.stdout
    assert out.stderr == ""


def test_killed_program_leaves_no_manager(run_script: Any, ctx: Any) -> None:
    out = run_script(f"""
        import os, signal, sys, procpar_core
        from procpar_managers import SyncManager
        if __name__ == "__main__":
            m = SyncManager(ctx=procpar_core.get_context({ctx.get_start_method()!r}))
            m.start()
            print(m._process.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] == "Z":  # exited, waiting for init to reap it
                return
        time.sleep(0.05)
    pytest.fail(f"manager process {pid} outlived its killed parent")
