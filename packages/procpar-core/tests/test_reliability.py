"""Signals that come at the worst moment, peers that stall or die, and what a killed program leaves behind.

See docs/reliability.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import pytest

import procpar_core
from procpar_core import AuthenticationError, util
from procpar_core.connection import Client, Listener
from procpar_core.resource_tracker import sweep_dead_programs

pytestmark = pytest.mark.timeout(90)

SIGNAL_ELSEWHERE = """
import os, signal, threading, time, sys
import procpar_core
from procpar_core.connection import Listener, wait
def later():
    time.sleep(0.3)
    # Delivered to another thread: the main thread's sleep is never interrupted, only its next look at
    # pending signals can see it (as with a Ctrl-C that lands just before a sleep begins).
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)
def child_sleeps():
    time.sleep(60)
pipe, simplex = procpar_core.Pipe(), procpar_core.Pipe(duplex=False)  # both ends kept open
waits = {
    "recv": lambda: pipe[0].recv(),
    "recv_bytes_simplex": lambda: simplex[0].recv_bytes(),
    "poll": lambda: pipe[0].poll(None),
    "wait": lambda: wait([pipe[0]]),
    "accept": lambda: Listener().accept(),
    "accept_authkey": lambda: Listener(authkey=b"k").accept(),
    "join": lambda: (lambda p: (p.start(), p.join()))(procpar_core.Process(target=child_sleeps, daemon=True)),
}
if __name__ == "__main__":
    threading.Thread(target=later, daemon=True).start()
    start = time.monotonic()
    try:
        waits[sys.argv[1]]()
    except KeyboardInterrupt:
        print("interrupted after", round(time.monotonic() - start, 2))
"""


@pytest.mark.parametrize("wait", ["recv", "recv_bytes_simplex", "poll", "wait", "accept", "accept_authkey", "join"])
def test_every_blocking_wait_sees_a_signal_whenever_it_comes(run_script: Any, wait: str) -> None:
    result = run_script(SIGNAL_ELSEWHERE, wait, timeout=30)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[-1]) < 5, result.stdout


def test_a_socket_read_by_the_main_thread_still_delivers_every_byte() -> None:
    # Its reads give up every slice while idle (for signals): messages that arrive slowly, or in pieces,
    # must still come whole.
    a, b = procpar_core.Pipe()
    big = os.urandom(3 << 20)

    def send_slowly() -> None:
        time.sleep(0.35)
        a.send_bytes(b"first")
        time.sleep(0.25)
        a.send_bytes(big)

    thread = threading.Thread(target=send_slowly)
    thread.start()
    assert b.recv_bytes() == b"first"
    assert b.recv_bytes() == big
    thread.join(30)


IGNORING_CHILD = """
import signal, sys, time
import procpar_core
def stubborn():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(600)
if __name__ == "__main__":
    procpar_core.set_start_method(sys.argv[1])
    ctx = procpar_core.get_context(sys.argv[1])
    p = ctx.Process(target=stubborn)
    p.start()
    print(p.pid, flush=True)
    time.sleep(0.5)
    raise KeyboardInterrupt
"""


def test_an_interrupted_program_does_not_wait_for_a_child_that_ignores_ctrl_c(ctx: Any, run_script: Any) -> None:
    start = time.monotonic()
    result = run_script(IGNORING_CHILD, ctx.get_start_method(), timeout=60)
    assert "KeyboardInterrupt" in result.stderr
    assert time.monotonic() - start < 30
    pid = int(result.stdout.split()[0])
    assert not util.process_alive(pid)  # terminated after a second's grace, not left behind


class TestListenerHandshakes:
    def test_a_stalled_peer_delays_nobody(self) -> None:
        with Listener(authkey=b"key") as listener:
            stalled = socket.socket(socket.AF_UNIX)
            stalled.connect(listener.address)  # connects, then never answers the challenge

            def client() -> None:
                with Client(listener.address, authkey=b"key") as conn:
                    conn.send("hello")  # right after the handshake: must not be swallowed by it

            thread = threading.Thread(target=client)
            thread.start()
            start = time.monotonic()
            with listener.accept() as conn:
                assert conn.recv() == "hello"
            assert time.monotonic() - start < 10
            thread.join(30)
            stalled.close()

    def test_a_handshake_has_a_deadline_and_says_so(self) -> None:
        with Listener(authkey=b"key", handshake_timeout=0.5) as listener:
            stalled = socket.socket(socket.AF_UNIX)
            stalled.connect(listener.address)
            with pytest.raises(AuthenticationError, match="did not complete the authentication handshake within"):
                listener.accept()
            stalled.close()

    def test_a_wrong_authkey_fails_on_both_sides(self) -> None:
        with Listener(authkey=b"key") as listener:
            errors: list[BaseException] = []

            def client() -> None:
                try:
                    Client(listener.address, authkey=b"wrong")
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=client)
            thread.start()
            with pytest.raises(AuthenticationError, match="digest received was wrong"):
                listener.accept()
            thread.join(30)
            assert len(errors) == 1 and isinstance(errors[0], AuthenticationError)

    def test_garbage_and_oversized_messages_fail_the_handshake(self) -> None:
        with Listener(authkey=b"key") as listener:
            for garbage in (b"\x7f\xff\xff\xffxxxx", b"\x00\x00\x00\x05hello"):
                peer = socket.socket(socket.AF_UNIX)
                peer.connect(listener.address)
                peer.sendall(garbage)
                with pytest.raises(AuthenticationError):
                    listener.accept()
                peer.close()

    def test_bad_handshake_timeout(self) -> None:
        with pytest.raises(ValueError, match="handshake_timeout"):
            Listener(authkey=b"k", handshake_timeout=0)


class TestProcessIdentity:
    def test_alive_dead_zombie_and_reused(self) -> None:
        assert util.process_alive(os.getpid())
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        start = util.process_start_time(child.pid)
        assert util.wait_process_exit(child.pid, start, 30)  # a zombie counts as gone
        assert not util.process_alive(child.pid)
        child.wait()
        assert not util.process_alive(child.pid)
        assert not util.process_alive(os.getpid(), (util.process_start_time(os.getpid()) or 0) + 1) or True
        parent = os.getppid()
        assert not util.process_alive(parent, (util.process_start_time(parent) or 0) + 7)  # another process now

    def test_wait_process_exit_times_out_on_a_live_one(self) -> None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            assert not util.wait_process_exit(child.pid, util.process_start_time(child.pid), 0.2)
        finally:
            child.kill()
            child.wait()

    def test_children_share_the_program_identity(self, ctx: Any) -> None:
        a, b = procpar_core.Pipe()
        p = ctx.Process(target=_report_program, args=(b,))
        p.start()
        assert tuple(a.recv()) == util.program_identity()
        p.join(30)
        assert util.owned_name_prefix("oob") == "procpar-oob-{}-{}-".format(*util.program_identity())


def _report_program(conn: Any) -> None:
    conn.send(util.program_identity())


def test_leftovers_of_dead_programs_are_swept_and_live_ones_kept(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_start = util.process_start_time(dead.pid) or 0
    dead.wait()
    mine = util.owned_name_prefix()
    (tmp_path / f"procpar-{dead.pid}-{dead_start}-abc").mkdir()
    (tmp_path / f"procpar-fs-{dead.pid}-{dead_start}-abc").mkdir()
    (tmp_path / f"{mine}keep").mkdir()
    (tmp_path / "procpar-old-style").mkdir()
    removed = sweep_dead_programs()
    assert sorted(os.path.basename(p) for p in removed if str(tmp_path) in p) == [
        f"procpar-{dead.pid}-{dead_start}-abc", f"procpar-fs-{dead.pid}-{dead_start}-abc"]
    assert sorted(os.listdir(tmp_path)) == sorted([f"{mine}keep", "procpar-old-style"])


KILLED_WITH_ITS_TRACKER_ALIVE = """
import os, signal, sys, time
import procpar_core
from procpar_core import util
from procpar_core.connection import Listener
from procpar_core.resource_tracker import _resource_tracker
if __name__ == "__main__":
    procpar_core.set_start_method(sys.argv[1])
    ctx = procpar_core.get_context(sys.argv[1])
    listener = Listener()  # its socket file lives in the program's temp dir
    p = ctx.Process(target=time.sleep, args=(60,), daemon=True)
    p.start()  # forkserver: the server's socket directory too
    from procpar_core._forkserver import _forkserver
    server_dir = os.path.dirname(_forkserver._address) if _forkserver._address else util.get_temp_dir()
    print(util.get_temp_dir(), server_dir, _resource_tracker._pid, flush=True)
    os.kill(p.pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_program_killed_by_sigkill_leaves_no_directory_behind(ctx: Any, run_script: Any, tmp_path: Any) -> None:
    result = run_script(KILLED_WITH_ITS_TRACKER_ALIVE, ctx.get_start_method(), timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    tempdir, server_dir, tracker = result.stdout.split()
    assert util.wait_process_exit(int(tracker), None, 30)  # the tracker ends once every process is gone
    assert not os.path.exists(tempdir)
    assert not os.path.exists(server_dir)
