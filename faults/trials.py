"""One fault trial, run as its own program: ``python trials.py NAME IMPL METHOD SEED WORKDIR``.

IMPL is ``procpar`` or ``multiprocessing``; the trial uses it under the name ``mp``, and the spec's examples see
it as ``multiprocessing``. The program prints one JSON line: what it observed (items lost or duplicated, whether
survivors stalled). The driver (``run.py``) times it, kills what is left and audits what it left on the machine.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import sys
import threading
import time
from typing import Any

STALL = 8.0  # seconds without progress after which survivors are said to hang


def _impl(name: str) -> Any:
    mp = importlib.import_module(name)
    if name != "multiprocessing":
        sys.modules["multiprocessing"] = mp  # spawn children of the examples resolve it too (see _bootstrap)
    return mp


def _record(path: str, values: list[int]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, "".join(f"{v}\n" for v in values).encode())
    finally:
        os.close(fd)


def _recorded(workdir: str) -> list[int]:
    values: list[int] = []
    for name in os.listdir(workdir):
        if name.startswith("got-"):
            with open(os.path.join(workdir, name)) as f:
                values += [int(x) for x in f.read().split()]
    return values


def _wait_progress(workdir: str, wanted: set[int]) -> bool:
    """Wait until every wanted id is recorded (True) or nothing new comes for STALL seconds (False)."""
    last, since = -1, time.monotonic()
    while True:
        got = set(_recorded(workdir))
        if wanted <= got:
            return True
        if len(got) != last:
            last, since = len(got), time.monotonic()
        elif time.monotonic() - since > STALL:
            return False
        time.sleep(0.02)


def _wait_progress_count(workdir: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_recorded(workdir)) < count and time.monotonic() < deadline:
        time.sleep(0.002)


def consume(q: Any, workdir: str) -> None:
    path = os.path.join(workdir, f"got-{os.getpid()}")
    while True:
        item = q.get()
        if item is None:
            return
        _record(path, [item[0]])


def produce(q: Any, first: int, count: int, big_every: int) -> None:
    for i in range(first, first + count):
        q.put((i, b"x" * ((2 << 20) if big_every and i % big_every == 0 else 64)))


def _kill_later(rng: random.Random, pids: list[int], window: float) -> threading.Thread:
    def kill() -> None:
        time.sleep(rng.uniform(0.01, window))
        try:
            os.kill(rng.choice(pids), signal.SIGKILL)
        except ProcessLookupError:
            pass

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def _finish(procs: list[Any], sentinel_queue: Any | None, timeout: float = 10.0) -> bool:
    """Stop the survivors; False if one of them does not end."""
    alive = [p for p in procs if p.exitcode is None and p.is_alive()]
    if sentinel_queue is not None:
        for _ in alive:
            sentinel_queue.put(None)
    deadline = time.monotonic() + timeout
    for p in alive:
        p.join(max(0.0, deadline - time.monotonic()))
    stuck = [p for p in alive if p.is_alive()]
    for p in stuck:
        p.kill()
    return not stuck


def consumers(mp: Any, ctx: Any, rng: random.Random, workdir: str) -> dict[str, Any]:
    """Three consumers of one queue; one is SIGKILLed at a random moment (maybe holding the read lock, maybe
    in the middle of a 2 MiB item)."""
    n = 1000
    q = ctx.Queue()
    procs = [ctx.Process(daemon=True, target=consume, args=(q, workdir)) for _ in range(3)]
    for p in procs:
        p.start()
    kill_at, victim = rng.randrange(50, n - 50), rng.choice(procs)
    for i in range(n):
        if i == kill_at:
            os.kill(victim.pid, signal.SIGKILL)
        q.put((i, b"x" * ((2 << 20) if i % 50 == 0 else 64)))
    complete = _wait_progress(workdir, set(range(n)))
    killed = sum(1 for p in procs if p.exitcode == -signal.SIGKILL)
    got = _recorded(workdir)
    # What the killed one had taken (at most the item in its hands) is its own loss, not the queue's.
    missing = n - len(set(got))
    ended = _finish(procs, q)
    return {"hang": not ended or (missing > killed and not complete), "lost": missing, "excused": killed,
            "dup": len(got) - len(set(got)), "killed": killed}


def producers(mp: Any, ctx: Any, rng: random.Random, workdir: str) -> dict[str, Any]:
    """Two producers (some items larger than the pipe), one SIGKILLed at a random moment; every item of the
    other must arrive."""
    n = 300
    q = ctx.Queue()
    readers = [ctx.Process(daemon=True, target=consume, args=(q, workdir)) for _ in range(2)]
    for p in readers:
        p.start()
    makers = [ctx.Process(daemon=True, target=produce, args=(q, k * 10_000, n, 10)) for k in range(2)]
    for p in makers:
        p.start()
    victim = rng.randrange(2)
    # At a random moment of its stream (often in the middle of an item larger than the pipe).
    _wait_progress_count(workdir, rng.randrange(5, n // 2))
    try:
        os.kill(makers[victim].pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    survivor = 1 - victim
    wanted = set(range(survivor * 10_000, survivor * 10_000 + n))
    complete = _wait_progress(workdir, wanted)
    makers[survivor].join(10)
    got = _recorded(workdir)
    ended = _finish(readers, q)
    return {"hang": not complete or not ended, "lost": len(wanted - set(got)), "excused": 0,
            "dup": len(got) - len(set(got)), "killed": 1}


def count_under_lock(lock: Any, value: Any, rounds: int, workdir: str) -> None:
    for _ in range(rounds):
        with lock:
            value.value += 1
            time.sleep(0.0005)
    _record(os.path.join(workdir, f"got-{os.getpid()}"), [1])


def lock_holders(mp: Any, ctx: Any, rng: random.Random, workdir: str) -> dict[str, Any]:
    """Three processes take turns holding one lock; one is SIGKILLed at a random moment (likely holding it)."""
    lock, value = ctx.Lock(), ctx.Value("i", 0, lock=False)
    procs = [ctx.Process(daemon=True, target=count_under_lock, args=(lock, value, 300, workdir)) for _ in range(3)]
    for p in procs:
        p.start()
    while value.value < 30:  # all at work
        time.sleep(0.001)
    _kill_later(rng, [p.pid for p in procs], 0.2).join()
    ended = _finish(procs, None, timeout=STALL + 5)
    return {"hang": not ended, "lost": 0, "excused": 0, "dup": 0, "killed": 1}


def manager_get(q: Any, workdir: str) -> None:
    path = os.path.join(workdir, f"got-{os.getpid()}")
    while True:
        item = q.get()
        if item is None:
            return
        _record(path, [item])


def manager_clients(mp: Any, ctx: Any, rng: random.Random, workdir: str) -> dict[str, Any]:
    """Two clients get() from a managed queue; one is SIGKILLed at a random moment (often blocked in get)."""
    n = 200
    with ctx.Manager() as manager:
        q = manager.Queue()
        procs = [ctx.Process(daemon=True, target=manager_get, args=(q, workdir)) for _ in range(2)]
        for p in procs:
            p.start()
        kill_at, victim = rng.randrange(20, n - 20), rng.choice(procs)
        for i in range(n):
            if i == kill_at:
                os.kill(victim.pid, signal.SIGKILL)
                victim.join(10)  # dead before the next item: it may be blocked in get() for it
            q.put(i)
        complete = _wait_progress(workdir, set(range(n)))
        got = _recorded(workdir)
        missing = n - len(set(got))
        ended = _finish(procs, q)
    return {"hang": not ended or (missing > 1 and not complete), "lost": missing, "excused": 1,
            "dup": len(got) - len(set(got)), "killed": 1}


def manager_call(d: Any, workdir: str) -> None:
    path = os.path.join(workdir, f"got-{os.getpid()}")
    i = 0
    try:
        while True:
            d[i % 10] = i
            i += 1
    except Exception as exc:
        _record(path, [i])
        with open(path + ".error", "w") as f:
            f.write(f"{type(exc).__name__}: {exc}")


def manager_server(mp: Any, ctx: Any, rng: random.Random, workdir: str) -> dict[str, Any]:
    """Clients call a managed dict in a loop; the manager's server is SIGKILLed: every call must fail, not hang."""
    manager = ctx.Manager()
    d = manager.dict()
    procs = [ctx.Process(daemon=True, target=manager_call, args=(d, workdir)) for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(rng.uniform(0.05, 0.5))
    os.kill(manager._process.pid, signal.SIGKILL)
    deadline = time.monotonic() + STALL
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hang = any(p.is_alive() for p in procs)
    for p in procs:
        if p.is_alive():
            p.kill()
    errors = []
    for name in os.listdir(workdir):
        if name.endswith(".error"):
            with open(os.path.join(workdir, name)) as f:
                errors.append(f.read())
    return {"hang": hang, "lost": 0, "excused": 0, "dup": 0, "killed": 1, "errors": errors[:1]}


def big_args(a: Any) -> int:
    return len(a)


def sit(_: Any = None) -> None:
    time.sleep(600)


def resources(mp: Any, ctx: Any, rng: random.Random, workdir: str) -> dict[str, Any]:
    """A program holding a pool with large arguments in flight, a manager and a listener, waiting to be killed
    (the driver SIGKILLs its processes, with or without its resource tracker)."""
    connection = importlib.import_module(mp.__name__ + ".connection")
    pool = ctx.Pool(2)
    pool.map_async(big_args, [bytearray(4 << 20) for _ in range(8)], chunksize=1)
    pool.apply_async(sit)
    manager = ctx.Manager()
    manager.list([1, 2, 3])
    listener = connection.Listener()
    p = ctx.Process(daemon=True, target=sit)
    p.start()
    print(json.dumps({"ready": True, "address": str(listener.address)}), flush=True)
    time.sleep(600)
    return {}


TRIALS = {"consumers": consumers, "producers": producers, "lock_holders": lock_holders,
          "manager_clients": manager_clients, "manager_server": manager_server, "resources": resources}


def main() -> None:
    name, impl, method, seed, workdir = sys.argv[1:6]
    mp = _impl(impl)
    ctx = mp.get_context(method)
    rng = random.Random(int(seed))
    result = TRIALS[name](mp, ctx, rng, workdir)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
