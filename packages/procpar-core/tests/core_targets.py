"""Functions and classes that child processes run; importable by spawn and forkserver children."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import procpar_core
from procpar_core.connection import Connection


def noop() -> None:
    pass


def send_back(conn: Connection, *args: Any, **kwargs: Any) -> None:
    conn.send((args, kwargs))
    conn.close()


def report_identity(conn: Connection) -> None:
    me = procpar_core.current_process()
    parent = procpar_core.parent_process()
    conn.send(
        {
            "name": me.name,
            "pid": os.getpid(),
            "daemon": me.daemon,
            "authkey": bytes(me.authkey),
            "parent_pid": parent.pid if parent else None,
            "parent_name": parent.name if parent else None,
            "start_method": procpar_core.get_start_method(),
            "stdin_read": sys.stdin.read(),
            "main_name": sys.modules["__main__"].__name__,
        }
    )
    conn.close()


def exit_with(code: Any) -> None:
    sys.exit(code)


def os_exit(code: int) -> None:
    os._exit(code)


def raise_error() -> None:
    raise ValueError("boom from the child")


def sleep_until_killed(conn: Connection) -> None:
    conn.send("ready")
    while True:
        time.sleep(1)


def wait_for_message(conn: Connection) -> None:
    conn.recv()


def start_grandchild(conn: Connection, daemon_child: bool) -> None:
    """Start a child from inside a child, report its name, or the error that prevented it."""
    try:
        p = procpar_core.Process(target=noop)
        p.start()
        p.join(30)
        conn.send(("ok", p.name, p.exitcode))
    except BaseException as exc:
        conn.send(("error", type(exc).__name__, str(exc)))


def echo(conn: Connection, count: int = 1) -> None:
    # Stops after `count` messages: under fork the child also inherits the parent's end of the pipe, so it
    # would never see EOF.
    for _ in range(count):
        conn.send_bytes(conn.recv_bytes())


def relay(reader: Connection, writer: Connection, count: int) -> None:
    for _ in range(count):
        writer.send_bytes(reader.recv_bytes())


def echo_objects(conn: Connection) -> None:
    """Send every object back until None arrives."""
    while True:
        obj = conn.recv()
        if obj is None:
            return
        conn.send(obj)


def use_passed_connection(parent_conn: Connection) -> None:
    """Receive a connection over a connection, then answer on it."""
    passed = parent_conn.recv()
    passed.send(("through passed connection", os.getpid()))
    passed.close()
    parent_conn.send("done")


def use_socket(sock: Any) -> None:
    sock.sendall(b"hello from child")
    sock.close()


def watch_parent(conn: Connection, ready: Any = None) -> None:
    """Report when our parent exits, via parent_process().sentinel."""
    from procpar_core.connection import wait

    parent = procpar_core.parent_process()
    assert parent is not None
    conn.send(("watching", parent.is_alive()))
    if ready is not None:
        ready.send("watching")
    ready = wait([parent.sentinel], timeout=60)
    conn.send(("parent gone", bool(ready), parent.is_alive()))


def middle(conn: Connection, method: str) -> None:
    """Start a grandchild that watches us, then exit."""
    ctx = procpar_core.get_context(method)
    ready_r, ready_w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=watch_parent, args=(conn, ready_w))
    p.start()
    conn.send(("middle grandchild pid", p.pid))
    ready_r.recv()
    # leave without joining: the grandchild must notice
    os._exit(0)


class Worker(procpar_core.Process):
    def __init__(self, conn: Connection, value: int) -> None:
        super().__init__()
        self.conn = conn
        self.value = value

    def run(self) -> None:
        self.conn.send(("subclass", self.value * 2, self.name))
        self.conn.close()


def signal_name(code: int) -> str:
    return signal.Signals(-code).name
