"""What the operating system itself allows for each row, measured in the same run: the floor (or ceiling) no
Python library built on processes can beat, so that each row says how far procpar is from it.

Each measure does the least the row's work needs, with bare ``os`` calls: a fork, a pipe round trip, 8-byte
messages, a copy of the bytes, the work itself spread ideally over the CPUs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def fork_exit_wait(repeats: int = 50) -> float:
    """ms: ``os.fork()``, ``os._exit(0)`` in the child, ``waitpid`` in the parent."""
    t0 = time.perf_counter()
    for _ in range(repeats):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return (time.perf_counter() - t0) / repeats * 1e3


def interpreter_start(repeats: int = 10) -> float:
    """ms: a fresh interpreter started and ended (``python -c pass``): what spawn cannot avoid."""
    t0 = time.perf_counter()
    for _ in range(repeats):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - t0) / repeats * 1e3


def forked_by_a_server(repeats: int = 50) -> float:
    """ms: a server process asked over a Unix socket forks a child that exits; the server reports its exit."""
    ours, theirs = socket.socketpair()
    server = os.fork()
    if server == 0:
        ours.close()
        while theirs.recv(1):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            theirs.send(b"k")
        os._exit(0)
    theirs.close()
    t0 = time.perf_counter()
    for _ in range(repeats):
        ours.send(b"f")
        ours.recv(1)
    elapsed = time.perf_counter() - t0
    ours.close()
    os.waitpid(server, 0)
    return elapsed / repeats * 1e3


def two_forks_to_a_first_byte(repeats: int = 20) -> float:
    """ms: two children forked, each writes a byte, the parent reads both and reaps them (a pool's floor)."""
    samples = []
    for _ in range(repeats):
        r, w = os.pipe()
        t0 = time.perf_counter()
        pids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                os.write(w, b"x")
                os._exit(0)
            pids.append(pid)
        got = 0
        while got < 2:
            got += len(os.read(r, 2))
        samples.append((time.perf_counter() - t0) * 1e3)
        for pid in pids:
            os.waitpid(pid, 0)
        os.close(r)
        os.close(w)
    return _median(samples)


def _with_echo_child(size: int, body: Callable[[int, int], float]) -> float:
    """``body(read_fd, write_fd)`` against a forked child echoing every read of up to ``size`` bytes."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(to_child_w)
        os.close(from_child_r)
        from _work import raw_echo

        raw_echo(to_child_r, from_child_w, size)
        os._exit(0)
    os.close(to_child_r)
    os.close(from_child_w)
    try:
        return body(from_child_r, to_child_w)
    finally:
        os.close(to_child_w)
        os.waitpid(pid, 0)
        os.close(from_child_r)


def _busy_echo(r: int, w: int, size: int) -> None:
    import select

    poller = select.poll()
    poller.register(r, select.POLLIN)
    while True:
        while not poller.poll(0):
            pass
        msg = os.read(r, size)
        if not msg:
            return
        os.write(w, msg)


def pipe_round_trip(rounds: int = 20000) -> float:
    """us: 64 bytes written to a child that writes them back, bare ``os.read``/``os.write``, both sides
    polling without sleeping (the fastest the OS allows; a side that sleeps pays a wake-up each way)."""
    import select

    msg = b"x" * 64
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(to_child_w)
        os.close(from_child_r)
        _busy_echo(to_child_r, from_child_w, 64)
        os._exit(0)
    os.close(to_child_r)
    os.close(from_child_w)
    poller = select.poll()
    poller.register(from_child_r, select.POLLIN)
    look = poller.poll

    def round_trip() -> None:
        os.write(to_child_w, msg)
        while not look(0):
            pass
        os.read(from_child_r, 64)

    for _ in range(200):
        round_trip()
    t0 = time.perf_counter()
    for _ in range(rounds):
        round_trip()
    elapsed = time.perf_counter() - t0
    os.close(to_child_w)
    os.waitpid(pid, 0)
    os.close(from_child_r)
    return elapsed / rounds * 1e6


def unix_socket_round_trip(rounds: int = 20000) -> float:
    """us: 64 bytes over a Unix socket to a child that sends them back (a manager's transport)."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        while True:
            msg = theirs.recv(64)
            if not msg:
                os._exit(0)
            theirs.send(msg)
    theirs.close()
    msg = b"x" * 64
    for _ in range(200):
        ours.send(msg)
        ours.recv(64)
    t0 = time.perf_counter()
    for _ in range(rounds):
        ours.send(msg)
        ours.recv(64)
    elapsed = time.perf_counter() - t0
    ours.close()
    os.waitpid(pid, 0)
    return elapsed / rounds * 1e6


def small_messages_per_second(count: int = 200_000) -> float:
    """messages/s: 8-byte messages written one by one into a pipe, a child reading them one by one."""
    r, w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        got = 0
        while got < count * 8:
            got += len(os.read(r, 8))
        os.write(done_w, b"k")
        os._exit(0)
    os.close(r)
    msg = b"12345678"
    write = os.write
    t0 = time.perf_counter()
    for _ in range(count):
        write(w, msg)
    os.read(done_r, 1)
    elapsed = time.perf_counter() - t0
    os.close(w)
    os.waitpid(pid, 0)
    os.close(done_r)
    os.close(done_w)
    return count / elapsed


def pipelined_echo_per_second(count: int = 50_000, window: int = 64) -> float:
    """items/s: 8-byte messages to a child that echoes each, ``window`` in flight (an imap of chunks of 1)."""
    msg = b"12345678"

    def body(r: int, w: int) -> float:
        t0 = time.perf_counter()
        sent = received = 0
        while received < count:
            while sent < count and sent - received < window:
                os.write(w, msg)
                sent += 1
            received += len(os.read(r, 8 * window)) // 8
        return count / (time.perf_counter() - t0)

    return _with_echo_child(8, body)


def bulk_pipe_bandwidth(size: int = 16 << 20, count: int = 8) -> float:
    """MB/s: 16 MiB buffers written into a 1 MiB pipe with ``os.write``, read by a child into one buffer each."""
    import fcntl

    data = os.urandom(size)
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except OSError:
        pass  # a lower limit for unprivileged pipes: the default size
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        buf = bytearray(size)
        view = memoryview(buf)
        for _ in range(count):
            got = 0
            while got < size:
                got += os.readv(r, [view[got:]])
        os.write(done_w, b"k")
        os._exit(0)
    os.close(r)
    t0 = time.perf_counter()
    for _ in range(count):
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]
    os.read(done_r, 1)
    elapsed = time.perf_counter() - t0
    os.close(w)
    os.waitpid(pid, 0)
    os.close(done_r)
    os.close(done_w)
    return size * count / elapsed / 1e6


def ideal_map(fn: Callable[[Any], Any], count: int, cpus: int) -> float:
    """items/s: ``fn`` over ``count`` ints in this process, as if spread over ``cpus`` CPUs for free."""
    items = range(count)
    t0 = time.perf_counter()
    list(map(fn, items))
    return count / ((time.perf_counter() - t0) / cpus)


def copy_bandwidth(size: int = 32 << 20, count: int = 8) -> float:
    """MB/s: a buffer copied into fresh memory, once per direction (the least a result that travels costs)."""
    data = bytearray(os.urandom(1 << 20)) * (size >> 20)
    t0 = time.perf_counter()
    for _ in range(count):
        bytes(data)
    return size * count / (time.perf_counter() - t0) / 1e6


def fresh_mapping(size: int) -> float:
    """ms: an anonymous shared mapping of ``size`` bytes made and dropped, its pages never touched."""
    import mmap

    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        m = mmap.mmap(-1, size)
        samples.append((time.perf_counter() - t0) * 1e3)
        m.close()
    return _median(samples)


def lock_pair(rounds: int = 1_000_000) -> float:
    """ns: ``acquire(); release()`` of the interpreter's own lock, nothing shared between processes."""
    import _thread

    lock = _thread.allocate_lock()
    acquire, release = lock.acquire, lock.release
    t0 = time.perf_counter()
    for _ in range(rounds):
        acquire()
        release()
    return (time.perf_counter() - t0) / rounds * 1e9
