"""procpar-dask against Dask's own ways of running the same calls, on one 2-worker LocalCluster, in one run.

    python benchmarks/dask_run.py [--quick] [--json FILE]

Rows (ratio = Dask's way / procpar-dask's, so above 1 is procpar-dask faster):
* ``map``: 10,000 trivial calls, ``Pool(client).map`` vs ``client.map`` + ``gather`` vs
  ``client.get_executor().map``;
* ``imap``: the same through ``Pool.imap`` (results in order as they come);
* ``apply``: the round trip of one call, ``Pool.apply`` vs ``client.submit(...).result()``, and where the time of
  the pool's goes: pickling the bundle, ``client.submit`` itself, scheduler + worker until the done callback,
  ``gather``, unpickling the reply (the same steps the engine takes, timed one by one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from typing import Any


def trivial(x: int) -> int:
    return x


def noop() -> None:
    return None


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_map(client: Any, count: int) -> dict[str, float]:
    import procpar_dask

    items = list(range(count))
    with procpar_dask.Pool(client) as pool:
        pool.map(trivial, range(100))  # warm: the function reaches the workers once
        procpar = _timed(lambda: pool.map(trivial, items))
        imap = _timed(lambda: list(pool.imap(trivial, items)))
    raw = _timed(lambda: client.gather(client.map(trivial, items, pure=False)))
    executor = client.get_executor(pure=False)
    via_executor = _timed(lambda: list(executor.map(trivial, items)))
    return {"procpar-map": procpar, "procpar-imap": imap, "client.map": raw, "executor.map": via_executor}


def bench_apply(client: Any, calls: int) -> dict[str, float]:
    import cloudpickle

    import procpar_dask
    from procpar_dask import _remote
    from procpar_dask._encoding import decode_outcome, decode_reply

    with procpar_dask.Pool(client) as pool:
        pool.apply(noop)
        pool_rtt = _median([_timed(lambda: pool.apply(noop)) for _ in range(calls)])
    submit_rtt = _median([_timed(lambda: client.submit(noop, pure=False).result()) for _ in range(calls)])

    # The engine's steps for one apply, one by one.
    phases: dict[str, list[float]] = {k: [] for k in ("pickle", "submit", "scheduler+worker", "gather",
                                                      "unpickle", "on the worker")}
    for i in range(calls):
        done = threading.Event()
        t0 = time.perf_counter()
        blob = cloudpickle.dumps([(0, noop, ((), {}))])
        t1 = time.perf_counter()
        future = client.submit(_remote.run_bundle, None, blob, key=f"bench-apply-{os.getpid()}-{i}", pure=False)
        t2 = time.perf_counter()
        future.add_done_callback(lambda _f, done=done: done.set())
        done.wait(60)
        t3 = time.perf_counter()
        reply = client.gather(future)
        t4 = time.perf_counter()
        _, seconds, outcomes, _, _ = decode_reply(reply)
        decode_outcome(outcomes[0])
        t5 = time.perf_counter()
        for name, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, seconds), strict=True):
            phases[name].append(value)
    return {"procpar": pool_rtt, "client.submit": submit_rtt, **{k: _median(v) for k, v in phases.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 calls instead of 10,000")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    import dask
    import distributed

    import procpar_dask

    count = 2_000 if args.quick else 10_000
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.ERROR)
    client = distributed.Client(cluster)
    try:
        print(f"procpar-dask {procpar_dask.__version__} vs dask.distributed {distributed.__version__}, Python "
              f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, LocalCluster of 2 workers x 1 thread")
        m = bench_map(client, count)
        print(f"{count:,} trivial calls:")
        for name in ("procpar-map", "procpar-imap", "client.map", "executor.map"):
            print(f"  {name:<14}{m[name]:>9.3f} s  {m[name] / count * 1e6:>9.1f} us a call")
        print(f"  client.map / Pool.map    {m['client.map'] / m['procpar-map']:>7.1f}x  (target >= 10x)")
        print(f"  executor.map / Pool.map  {m['executor.map'] / m['procpar-map']:>7.1f}x")
        print(f"  client.map / Pool.imap   {m['client.map'] / m['procpar-imap']:>7.1f}x")
        a = bench_apply(client, 50 if args.quick else 200)
        print("one call, round trip (median):")
        print(f"  Pool.apply            {a['procpar'] * 1e3:>8.2f} ms")
        print(f"  client.submit.result  {a['client.submit'] * 1e3:>8.2f} ms")
        print("  where Pool.apply's time goes (the engine's steps timed one by one):")
        for name in ("pickle", "submit", "scheduler+worker", "gather", "unpickle", "on the worker"):
            print(f"    {name:<18}{a[name] * 1e3:>8.3f} ms")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"count": count, "map": m, "apply": a}, f, indent=2)
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
