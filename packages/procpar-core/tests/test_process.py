from __future__ import annotations

import os
import signal
import sys
from typing import Any

import core_targets as t
import pytest

import procpar_core
from procpar_core.connection import wait

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def default_method(ctx: Any) -> Any:
    """Make ctx's start method the default one for the test, then restore the previous choice."""
    previous = procpar_core.get_start_method(allow_none=True)
    procpar_core.set_start_method(ctx.get_start_method(), force=True)
    yield ctx
    procpar_core.set_start_method(previous, force=True)


def test_target_args_kwargs(ctx: Any) -> None:
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=t.send_back, args=(w, 1, "two"), kwargs={"three": [3]})
    p.start()
    w.close()
    assert r.recv() == ((1, "two"), {"three": [3]})
    p.join(30)
    assert p.exitcode == 0
    assert not p.is_alive()


def test_child_identity(ctx: Any) -> None:
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=t.report_identity, args=(w,), name="worker-x")
    assert p.name == "worker-x"
    p.start()
    info = r.recv()
    p.join(30)
    assert info["name"] == "worker-x"
    assert info["pid"] == p.pid
    assert info["authkey"] == bytes(procpar_core.current_process().authkey)
    assert info["parent_pid"] == os.getpid()
    assert info["parent_name"] == "MainProcess"
    assert info["start_method"] == ctx.get_start_method()
    assert info["stdin_read"] == ""  # stdin is /dev/null in a child
    assert procpar_core.parent_process() is None


def test_default_names_follow_identity(ctx: Any) -> None:
    p1 = ctx.Process(target=t.noop)
    p2 = ctx.Process(target=t.noop)
    n1 = int(p1.name.rsplit("-", 1)[1])
    n2 = int(p2.name.rsplit("-", 1)[1])
    assert n2 == n1 + 1
    assert p1.name.startswith(type(p1).__name__ + "-")


def test_nested_child_name_has_two_numbers(default_method: Any) -> None:
    ctx = default_method
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=t.start_grandchild, args=(w, False))
    p.start()
    status, name, exitcode = r.recv()
    p.join(30)
    assert status == "ok", (name, exitcode)
    prefix, numbers = name.rsplit("-", 1)
    assert numbers == p.name.rsplit("-", 1)[1] + ":1"
    assert exitcode == 0


def test_daemon_cannot_have_children(default_method: Any) -> None:
    ctx = default_method
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=t.start_grandchild, args=(w, True), daemon=True)
    assert p.daemon
    p.start()
    status, kind, message = r.recv()
    p.join(30)
    assert (status, kind) == ("error", "AssertionError")
    assert "daemonic processes are not allowed to have children" in message


def test_subclass_run(default_method: Any) -> None:
    ctx = default_method
    r, w = ctx.Pipe(duplex=False)
    p = t.Worker(w, 21)
    p.start()
    kind, value, name = r.recv()
    p.join(30)
    assert (kind, value, name) == ("subclass", 42, p.name)
    assert p.name.startswith("Worker-")


@pytest.mark.parametrize(
    ("target", "args", "expected"),
    [
        (t.noop, (), 0),
        (t.exit_with, (3,), 3),
        (t.exit_with, (None,), 0),
        (t.exit_with, ("a message",), 1),
        (t.os_exit, (7,), 7),
        (t.raise_error, (), 1),
    ],
)
def test_exitcode(ctx: Any, target: Any, args: tuple[Any, ...], expected: int) -> None:
    p = ctx.Process(target=target, args=args)
    assert p.exitcode is None
    p.start()
    p.join(30)
    assert p.exitcode == expected


def test_exception_traceback_goes_to_stderr(run_script: Any) -> None:
    result = run_script(
        """
        import sys, procpar_core
        def fail():
            raise ValueError("boom from the child")
        if __name__ == "__main__":
            for m in procpar_core.get_all_start_methods():
                p = procpar_core.get_context(m).Process(target=fail, name="failing-" + m)
                p.start(); p.join(30)
                print(m, p.exitcode)
        """
    )
    assert result.returncode == 0, result.stderr
    for m in procpar_core.get_all_start_methods():
        assert f"{m} 1" in result.stdout
        assert f"Process failing-{m}:" in result.stderr
    assert "ValueError: boom from the child" in result.stderr


@pytest.mark.parametrize(("method_name", "signum"), [("terminate", signal.SIGTERM), ("kill", signal.SIGKILL)])
def test_terminate_and_kill(ctx: Any, method_name: str, signum: int) -> None:
    r, w = ctx.Pipe()
    p = ctx.Process(target=t.sleep_until_killed, args=(w,))
    p.start()
    assert r.recv() == "ready"
    assert p.is_alive()
    p.join(0.01)
    assert p.exitcode is None
    getattr(p, method_name)()
    p.join(30)
    assert p.exitcode == -signum
    assert f"exitcode=-{signal.Signals(signum).name}" in repr(p)
    # signalling a finished process is harmless
    getattr(p, method_name)()


def test_join_timeout_and_sentinel(ctx: Any) -> None:
    r, w = ctx.Pipe()
    p = ctx.Process(target=t.wait_for_message, args=(w,))
    with pytest.raises(ValueError, match="not started"):
        p.sentinel
    p.start()
    p.join(timeout=0.05)
    assert p.is_alive()
    assert wait([p.sentinel], timeout=0.05) == []
    r.send("go")
    assert wait([p.sentinel], timeout=30) == [p.sentinel]
    p.join()
    assert p.exitcode == 0


def test_state_errors(ctx: Any) -> None:
    p = ctx.Process(target=t.noop)
    with pytest.raises(AssertionError, match="started process"):
        p.join()
    assert not p.is_alive()
    p.start()
    with pytest.raises(AssertionError, match="twice"):
        p.start()
    with pytest.raises(AssertionError, match="already started"):
        p.daemon = True
    p.join(30)
    p.close()
    p.close()  # closing twice is fine
    for call in (p.start, p.join, p.is_alive, p.terminate, p.kill):
        with pytest.raises(ValueError, match="closed"):
            call()
    for attr in ("exitcode", "pid", "sentinel"):
        with pytest.raises(ValueError, match="closed"):
            getattr(p, attr)
    assert "closed" in repr(p)


def test_close_running_process_is_refused(ctx: Any) -> None:
    r, w = ctx.Pipe()
    p = ctx.Process(target=t.wait_for_message, args=(w,))
    p.start()
    with pytest.raises(ValueError, match="still running"):
        p.close()
    r.send("go")
    p.join(30)
    p.close()


def test_repr_shows_state(ctx: Any) -> None:
    p = ctx.Process(target=t.noop, name="repr-me", daemon=True)
    assert repr(p).startswith(f"<{type(p).__name__} name='repr-me' parent={os.getpid()} initial")
    assert repr(p).endswith(" daemon>")
    p.start()
    p.join(30)
    text = repr(p)
    assert f"pid={p.pid}" in text and "stopped exitcode=0" in text


def test_group_must_be_none(ctx: Any) -> None:
    with pytest.raises(ValueError, match="group"):
        ctx.Process(group=object(), target=t.noop)


def test_active_children_reaps(ctx: Any) -> None:
    r, w = ctx.Pipe()
    p = ctx.Process(target=t.wait_for_message, args=(w,))
    p.start()
    assert p in procpar_core.active_children()
    r.send("go")
    assert wait([p.sentinel], timeout=30)
    # no join: active_children() itself reaps the finished child
    assert p not in procpar_core.active_children()
    assert p.exitcode == 0


def test_main_process_state() -> None:
    me = procpar_core.current_process()
    assert me.name == "MainProcess"
    assert me.is_alive()
    assert me.pid == os.getpid()
    assert isinstance(me.authkey, bytes) and len(me.authkey) == 32
    assert procpar_core.cpu_count() == os.cpu_count()


def test_authkey_is_not_picklable_outside_spawning() -> None:
    import pickle

    with pytest.raises(TypeError, match="security"):
        pickle.dumps(procpar_core.current_process().authkey)


def test_parent_sentinel_fires_when_parent_exits(ctx: Any) -> None:
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=t.middle, args=(w, ctx.get_start_method()))
    p.start()
    messages = [r.recv() for _ in range(3)]
    p.join(30)
    assert any(m[0] == "middle grandchild pid" for m in messages)  # sent by the middle process: any order
    assert ("watching", True) in messages
    assert ("parent gone", True, False) in messages


def test_daemonic_children_terminated_at_exit(run_script: Any) -> None:
    result = run_script(
        """
        import sys, time, procpar_core
        def forever():
            while True:
                time.sleep(1)
        def finite():
            time.sleep(0.2)
            print("non-daemon finished", flush=True)
        if __name__ == "__main__":
            procpar_core.set_start_method(sys.argv[1])
            ctx = procpar_core.get_context(sys.argv[1])
            d = ctx.Process(target=forever, daemon=True); d.start()
            n = ctx.Process(target=finite); n.start()
            print("daemon pid", d.pid, flush=True)
        """,
        procpar_core.get_start_method(),
    )
    assert result.returncode == 0, result.stderr
    assert "non-daemon finished" in result.stdout
    pid = int(result.stdout.split("daemon pid ")[1].split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("method", [m for m in ("spawn", "forkserver") if m in procpar_core.get_all_start_methods()])
def test_unguarded_main_gets_runtime_error(run_script: Any, method: str) -> None:
    result = run_script(
        f"""
        import procpar_core
        def f():
            pass
        p = procpar_core.get_context({method!r}).Process(target=f)
        p.start()
        p.join(30)
        print("exitcode", p.exitcode)
        """
    )
    assert "RuntimeError" in result.stderr
    assert "if __name__ == '__main__':" in result.stderr
    # the child fails instead of starting processes recursively
    assert result.stdout.count("exitcode") == 1


@pytest.mark.parametrize("method", [m for m in ("spawn", "forkserver") if m in procpar_core.get_all_start_methods()])
def test_main_module_is_mp_main_in_child(run_script: Any, method: str) -> None:
    result = run_script(
        f"""
        import sys, procpar_core
        class Payload:
            def __init__(self, v): self.v = v
        def f(conn, payload):
            conn.send((__name__, sys.modules["__main__"].__name__, payload.v, type(payload).__module__))
        if __name__ == "__main__":
            ctx = procpar_core.get_context({method!r})
            r, w = ctx.Pipe()
            p = ctx.Process(target=f, args=(w, Payload(5)))
            p.start()
            print(r.recv())
            p.join(30)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "('__mp_main__', '__mp_main__', 5, '__mp_main__')" in result.stdout


def test_interactive_style_main_without_file_runs_importable_targets(run_script: Any) -> None:
    code = (
        "import procpar_core, os\n"
        "if __name__ == '__main__':\n"
        "    for m in procpar_core.get_all_start_methods():\n"
        "        p = procpar_core.get_context(m).Process(target=os.getpid)\n"
        "        p.start(); p.join(30); print(m, p.exitcode)\n"
    )
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    for m in procpar_core.get_all_start_methods():
        assert f"{m} 0" in result.stdout


def test_the_forkserver_refuses_a_client_without_the_programs_key() -> None:
    import os
    import socket
    import struct

    from procpar_core import forkserver

    ctx = procpar_core.get_context("forkserver")
    p = ctx.Process(target=t.noop)
    p.start()
    p.join(30)
    assert p.exitcode == 0
    address = forkserver._forkserver._forkserver_address
    assert address is not None
    intruder = socket.socket(socket.AF_UNIX)
    intruder.settimeout(30)
    try:
        intruder.connect(address)
        intruder.sendall(struct.pack("!QI16s32s", 4, 0, os.urandom(16), bytes(32)) + b"data")
        try:
            reply = intruder.recv(8)
        except ConnectionResetError:
            reply = b""
        assert reply == b""  # no pid: nothing was forked for it
    finally:
        intruder.close()
    p = ctx.Process(target=t.noop)  # the server serves the program on
    p.start()
    p.join(30)
    assert p.exitcode == 0
