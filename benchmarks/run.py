"""procpar against the stdlib's multiprocessing on the same workloads, in one run. See README.md."""

from __future__ import annotations

import os
import sys
import time

# Nothing more at module level: spawn children re-import this file as __mp_main__, and what it imports would
# be paid by both implementations' children alike, hiding their difference.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def noop() -> None:
    pass


def echo_bytes(conn: Any) -> None:
    while True:
        msg = conn.recv_bytes()
        if not msg:
            return
        conn.send_bytes(msg)


def sink(conn: Any, count: int) -> None:
    total = 0
    for _ in range(count):
        total += len(conn.recv_bytes())
    conn.send(total)


def sink_simplex(reader: Any, ack: Any, count: int) -> None:
    total = 0
    for _ in range(count):
        total += len(reader.recv_bytes())
    ack.send(total)


def _impls() -> dict[str, Any]:
    import multiprocessing

    import procpar

    return {"procpar": procpar, "stdlib": multiprocessing}


def bench_start(method: str, repeats: int) -> dict[str, float]:
    impls = _impls()
    contexts = {name: mod.get_context(method) for name, mod in impls.items()}
    for ctx in contexts.values():  # warm up: starts the forkserver, fills caches
        for _ in range(2):
            p = ctx.Process(target=noop)
            p.start()
            p.join()
    samples: dict[str, list[float]] = {name: [] for name in contexts}
    for _ in range(repeats):
        for name, ctx in contexts.items():
            t0 = time.perf_counter()
            p = ctx.Process(target=noop)
            p.start()
            p.join()
            samples[name].append(time.perf_counter() - t0)
    return {name: _median(s) * 1e3 for name, s in samples.items()}


def _with_child(impl: Any, target: Callable[..., None], *args: Any) -> Any:
    ctx = impl.get_context("fork")
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def bench_pipe_latency(rounds: int) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    msg = b"x" * 64
    for _ in range(3):
        for name, impl in _impls().items():
            a, b = impl.get_context("fork").Pipe()
            p = _with_child(impl, echo_bytes, b)
            b.close()
            for _ in range(200):
                a.send_bytes(msg)
                a.recv_bytes()
            send, recv = a.send_bytes, a.recv_bytes
            t0 = time.perf_counter()
            for _ in range(rounds):
                send(msg)
                recv()
            elapsed = time.perf_counter() - t0
            a.send_bytes(b"")
            p.join()
            results.setdefault(name, []).append(elapsed / rounds * 1e6)
    return {name: _median(v) for name, v in results.items()}


def bench_pipe_bandwidth(duplex: bool, size: int, count: int) -> dict[str, float]:
    data = os.urandom(size)
    results: dict[str, list[float]] = {}
    for _ in range(3):
        for name, impl in _impls().items():
            ctx = impl.get_context("fork")
            if duplex:
                a, b = ctx.Pipe()
                p = _with_child(impl, sink, b, count)
                b.close()
                writer, ack = a, a
            else:
                reader, writer = ctx.Pipe(duplex=False)
                ack_r, ack_w = ctx.Pipe(duplex=False)
                p = _with_child(impl, sink_simplex, reader, ack_w, count)
                reader.close()
                ack_w.close()
                ack = ack_r
            t0 = time.perf_counter()
            for _ in range(count):
                writer.send_bytes(data)
            total = ack.recv()
            elapsed = time.perf_counter() - t0
            p.join()
            assert total == size * count
            results.setdefault(name, []).append(size * count / elapsed / 1e6)
    return {name: _median(v) for name, v in results.items()}


def bench_lock_pair(rounds: int) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    for _ in range(5):
        for name, impl in _impls().items():
            lock = impl.Lock()
            acquire, release = lock.acquire, lock.release
            t0 = time.perf_counter()
            for _ in range(rounds):
                acquire()
                release()
            results.setdefault(name, []).append((time.perf_counter() - t0) / rounds * 1e9)
    return {name: _median(v) for name, v in results.items()}


def queue_consumer(q: Any, count: int, done: Any) -> None:
    get = q.get
    for _ in range(count):
        get()
    done.put(count)


def bench_queue_throughput(count: int) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    for _ in range(3):
        for name, impl in _impls().items():
            ctx = impl.get_context("fork")
            q, done = ctx.Queue(), ctx.Queue()
            p = ctx.Process(target=queue_consumer, args=(q, count, done))
            p.start()
            put = q.put
            t0 = time.perf_counter()
            for i in range(count):
                put(i)
            done.get()
            elapsed = time.perf_counter() - t0
            p.join()
            results.setdefault(name, []).append(count / elapsed)
    return {name: _median(v) for name, v in results.items()}


def queue_echo(inq: Any, outq: Any) -> None:
    while True:
        item = inq.get()
        if item is None:
            return
        outq.put(item)


def bench_queue_latency(rounds: int) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    for _ in range(3):
        for name, impl in _impls().items():
            ctx = impl.get_context("fork")
            inq, outq = ctx.Queue(), ctx.Queue()
            p = ctx.Process(target=queue_echo, args=(inq, outq))
            p.start()
            for _ in range(50):
                inq.put(1)
                outq.get()
            t0 = time.perf_counter()
            for _ in range(rounds):
                inq.put(1)
                outq.get()
            # one put-to-get hop is half a round trip
            results.setdefault(name, []).append((time.perf_counter() - t0) / rounds / 2 * 1e6)
            inq.put(None)
            p.join()
    return {name: _median(v) for name, v in results.items()}


def bench_raw_array(length: int) -> dict[str, float]:
    # Creation only: the stdlib zeroes the array (touching every page); fresh shared memory already is zero.
    results: dict[str, list[float]] = {}
    for _ in range(5):
        for name, impl in _impls().items():
            t0 = time.perf_counter()
            arr = impl.RawArray("d", length)
            results.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
            del arr
    return {name: _median(v) for name, v in results.items()}


def locked_increments(v: Any, count: int) -> None:
    for _ in range(count):
        with v.get_lock():
            v.value += 1


def bench_value_increments(count: int) -> dict[str, float]:
    results: dict[str, list[float]] = {}
    for _ in range(3):
        for name, impl in _impls().items():
            ctx = impl.get_context("fork")
            v = ctx.Value("i", 0)
            procs = [ctx.Process(target=locked_increments, args=(v, count)) for _ in range(2)]
            t0 = time.perf_counter()
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            elapsed = time.perf_counter() - t0
            if v.value != 2 * count:
                raise AssertionError(f"{name}: lost increments, {v.value} != {2 * count}")
            results.setdefault(name, []).append(2 * count / elapsed)
    return {name: _median(v) for name, v in results.items()}


def trivial(x: Any) -> Any:
    return x


def array_sum(a: Any) -> Any:
    return a * 2  # a new array of the same size travels back


def _pools(processes: int = 2) -> dict[str, Any]:
    import multiprocessing

    import procpar

    # The stdlib's default start method for both, as the issue asks.
    method = multiprocessing.get_start_method()
    return {"procpar": procpar.get_context(method).Pool(processes),
            "stdlib": multiprocessing.get_context(method).Pool(processes)}


def _on_pools(repeats: int, measure: Callable[[Any], float], warm_up: Callable[[Any], Any] | None = None
              ) -> dict[str, float]:
    """Median of ``measure(pool)`` over ``repeats`` rounds, procpar's and the stdlib's pool taking turns."""
    results: dict[str, list[float]] = {}
    pools = _pools()
    try:
        if warm_up is not None:
            for pool in pools.values():
                warm_up(pool)
        for _ in range(repeats):
            for name, pool in pools.items():
                results.setdefault(name, []).append(measure(pool))
    finally:
        for pool in pools.values():
            pool.terminate()
    return {name: _median(v) for name, v in results.items()}


def bench_pool_map(count: int) -> dict[str, float]:
    def measure(pool: Any) -> float:
        t0 = time.perf_counter()
        pool.map(trivial, range(count))
        return count / (time.perf_counter() - t0)

    return _on_pools(5, measure)


def bench_pool_imap(count: int) -> dict[str, float]:
    def measure(pool: Any) -> float:
        t0 = time.perf_counter()
        for _ in pool.imap(trivial, range(count), chunksize=1):
            pass
        return count / (time.perf_counter() - t0)

    return _on_pools(3, measure)


def _apply_latencies(pool: Any, calls: int, pause: float = 0.0) -> list[float]:
    samples = []
    for _ in range(calls):
        if pause:
            time.sleep(pause)
        t0 = time.perf_counter()
        pool.apply(trivial, (1,))
        samples.append((time.perf_counter() - t0) * 1e6)
    return samples


def bench_pool_apply(rounds: int, pause: float = 0.0) -> dict[str, float]:
    """Median latency of ``apply`` called again and again (``pause`` seconds idle before each call); the two
    pools take turns by blocks of 100 calls, so that each one sees its own calls back to back."""
    results: dict[str, list[float]] = {}
    pools = _pools()
    try:
        for pool in pools.values():
            _apply_latencies(pool, 50)
        for _ in range(max(1, rounds // 100)):
            for name, pool in pools.items():
                results.setdefault(name, []).extend(_apply_latencies(pool, 100, pause))
    finally:
        for pool in pools.values():
            pool.terminate()
    return {name: _median(v) for name, v in results.items()}


def bench_pool_arrays(count: int) -> dict[str, float]:
    import numpy as np

    arrays = [np.full(4 << 20, float(i)) for i in range(count)]  # 32 MB each
    megabytes = sum(a.nbytes for a in arrays) * 2 / 1e6  # there and back

    def measure(pool: Any) -> float:
        t0 = time.perf_counter()
        pool.map(array_sum, arrays, chunksize=1)
        return megabytes / (time.perf_counter() - t0)

    return _on_pools(3, measure)


def bench_pool_first_result(repeats: int) -> dict[str, float]:
    import multiprocessing

    import procpar

    method = multiprocessing.get_start_method()
    impls = {"procpar": procpar.get_context(method), "stdlib": multiprocessing.get_context(method)}
    results: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, ctx in impls.items():
            t0 = time.perf_counter()
            pool = ctx.Pool(2)
            pool.apply(trivial, (1,))
            results.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
            pool.terminate()
            pool.join()
    return {name: _median(v) for name, v in results.items()}


def bench_manager_calls(rounds: int) -> dict[str, float]:
    """Median round trip of a proxy method call (``d[k] = v`` then ``d[k]``) to a started SyncManager."""
    results: dict[str, float] = {}
    for name, impl in _impls().items():
        with impl.Manager() as manager:
            d = manager.dict()
            samples = []
            for i in range(rounds):
                t0 = time.perf_counter()
                d["k"] = i
                d["k"]
                samples.append((time.perf_counter() - t0) * 1e6 / 2)
            results[name] = _median(samples)
    return results


def bench_manager_objects(count: int) -> dict[str, float]:
    """Shared objects created and released per second (``manager.list()`` then dropping the proxy)."""
    import gc

    results: dict[str, float] = {}
    for name, impl in _impls().items():
        with impl.Manager() as manager:
            manager.list()
            t0 = time.perf_counter()
            for _ in range(count):
                lst = manager.list()
                del lst
            gc.collect()
            results[name] = count / (time.perf_counter() - t0)
    return results


WORKLOADS: dict[str, tuple[str, str, float, Callable[[bool], dict[str, float]]]] = {
    # name: (unit, direction, target ratio, runner)
    "start-fork": ("ms", "lower", 0.8, lambda q: bench_start("fork", 60 if q else 300)),
    "start-spawn": ("ms", "lower", 0.7, lambda q: bench_start("spawn", 8 if q else 30)),
    "start-forkserver": ("ms", "lower", 0.3, lambda q: bench_start("forkserver", 30 if q else 150)),
    "pipe-latency": ("us", "lower", 0.7, lambda q: bench_pipe_latency(3000 if q else 20000)),
    "pipe-bandwidth": ("MB/s", "higher", 1.1, lambda q: bench_pipe_bandwidth(True, 16 << 20, 8 if q else 32)),
    "pipe-bandwidth-simplex": ("MB/s", "higher", 0.0, lambda q: bench_pipe_bandwidth(False, 16 << 20, 8 if q else 32)),
    "lock-pair": ("ns", "lower", 1.1, lambda q: bench_lock_pair(200_000 if q else 1_000_000)),
    "queue-throughput": ("it/s", "higher", 3.0, lambda q: bench_queue_throughput(20_000 if q else 100_000)),
    "queue-latency": ("us", "lower", 0.7, lambda q: bench_queue_latency(1000 if q else 5000)),
    "rawarray-create": ("ms", "lower", 0.8, lambda q: bench_raw_array(10_000_000)),
    "value-lock-increments": ("op/s", "higher", 1.0, lambda q: bench_value_increments(20_000 if q else 100_000)),
    "pool-map": ("it/s", "higher", 2.0, lambda q: bench_pool_map(200_000)),
    "pool-imap": ("it/s", "higher", 3.0, lambda q: bench_pool_imap(5_000 if q else 20_000)),
    "pool-apply-latency": ("us", "lower", 0.3, lambda q: bench_pool_apply(300 if q else 2000)),
    "pool-apply-after-idle": ("us", "lower", 0.0, lambda q: bench_pool_apply(200 if q else 600, pause=0.002)),
    "pool-arrays": ("MB/s", "higher", 5.0, lambda q: bench_pool_arrays(4 if q else 16)),
    "pool-first-result": ("ms", "lower", 0.5, lambda q: bench_pool_first_result(5 if q else 20)),
    "manager-call-latency": ("us", "lower", 0.0, lambda q: bench_manager_calls(1000 if q else 5000)),
    "manager-objects": ("op/s", "higher", 0.0, lambda q: bench_manager_objects(300 if q else 2000)),
}


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS), help="run only these")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    import procpar

    print(f"procpar {procpar.__version__} vs multiprocessing, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'workload':<24}{'procpar':>12}{'stdlib':>12}  {'ratio':>7}  target")
    report: dict[str, Any] = {}
    for name, (unit, direction, target, runner) in WORKLOADS.items():
        if args.only and name not in args.only:
            continue
        res = runner(args.quick)
        ratio = res["procpar"] / res["stdlib"]
        if target:
            ok = ratio <= target if direction == "lower" else ratio >= target
            goal = f"{'<=' if direction == 'lower' else '>='} {target}x {'met' if ok else 'MISSED'}"
        else:
            goal = "-"
        print(f"{name:<24}{res['procpar']:>9.3f} {unit:<3}{res['stdlib']:>8.3f} {unit:<3} {ratio:>6.2f}x  {goal}",
              flush=True)
        report[name] = {"unit": unit, **res, "ratio": ratio, "target": target, "direction": direction}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
