"""procpar against the stdlib's multiprocessing and its peers on the same workloads, in one run. See README.md.

    python benchmarks/run.py [--quick] [--only ROW ...] [--json FILE]

Every row runs in rounds; in each round every implementation runs the workload in turn, so that they share the
machine's noise. A row's ratio is the median over rounds of procpar's figure divided by the stdlib's (and by the
best peer's): below 1 is better for times, above 1 for throughput. Each row also measures what the operating
system allows for the same work (``_limits.py``) and says how close procpar gets to it.
"""

from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _work  # noqa: E402

# Nothing heavier at module level: spawn children re-import this file as __mp_main__, and what it imports would
# be paid by every implementation's children alike, hiding their difference. The harness's own modules
# (_peers, _limits) and json/subprocess are imported where they are used.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

if TYPE_CHECKING:
    Rounds = dict[str, list[float]]  # implementation -> its figure in each round


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _rounds(count: int, names: list[str], measure: Callable[[str], float]) -> Rounds:
    results: Rounds = {name: [] for name in names}
    for _ in range(count):
        for name in names:
            results[name].append(measure(name))
    return results


# -- rows measured in a fresh interpreter (what a program pays the first time, imports included) ----------------

def _in_child(row: str, impl: str, *args: str) -> dict[str, float]:
    import json
    import subprocess

    from _peers import default_method

    env = dict(os.environ, PROCPAR_BENCH_METHOD=default_method())
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", row, impl, *args],
                         capture_output=True, text=True, timeout=600, env=env, cwd=HERE)
    if out.returncode != 0:
        raise RuntimeError(f"{row} / {impl} failed in its child:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def child_start(impl: str, method: str, count: str, heavy: str) -> dict[str, float]:
    """``count`` times ``Process(target=noop).start(); join()``: their mean, the first included."""
    from _peers import module_named

    if heavy == "1":  # a parent that imported numpy and holds a million objects
        import numpy  # noqa: F401

        ballast = [str(i) for i in range(1_000_000)]
    ctx = module_named(impl).get_context(method)
    t0 = time.perf_counter()
    for _ in range(int(count)):
        p = ctx.Process(target=_work.noop)
        p.start()
        p.join()
    mean = (time.perf_counter() - t0) / int(count) * 1e3
    if heavy == "1":
        del ballast
    return {"mean": mean}


def _new_pool_then(impl: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """How a program of ``impl`` makes a pool, maps ``square`` over ``[3]`` and closes it; and its join."""
    from _peers import default_method, module_named

    method = default_method()
    if impl in ("procpar", "stdlib", "multiprocess"):
        ctx = module_named(impl).get_context(method)

        def make() -> Any:
            pool = ctx.Pool(2)
            assert pool.map(_work.square, [3]) == [9]
            pool.close()
            return pool

        return make, lambda pool: pool.join()
    if impl in ("loky", "futures"):
        if impl == "loky":
            from loky import ProcessPoolExecutor
            kwargs: dict[str, Any] = {}
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            kwargs = {"mp_context": multiprocessing.get_context(method)}

        def make_executor() -> Any:
            executor = ProcessPoolExecutor(2, **kwargs)
            assert list(executor.map(_work.square, [3])) == [9]
            executor.shutdown(wait=False)
            return executor

        return make_executor, lambda executor: executor.shutdown(wait=True)
    if impl == "mpire":
        import mpire

        def make_mpire() -> Any:
            pool = mpire.WorkerPool(2, start_method=method)
            assert pool.map(_work.square, [3]) == [9]
            pool.stop_and_join()  # mpire has no close() that leaves the workers to exit
            return pool

        return make_mpire, lambda pool: None
    raise ValueError(impl)


def child_pools(impl: str, later: str) -> dict[str, float]:
    """The first pool of a fresh process, the import of its package included (some load their pool eagerly on
    import, others on first use: a program pays both), then ``later`` more: each timed."""
    t0 = time.perf_counter()
    make, join = _new_pool_then(impl)
    join(make())
    first = (time.perf_counter() - t0) * 1e3
    samples = []
    for _ in range(int(later)):
        t0 = time.perf_counter()
        pool = make()
        samples.append((time.perf_counter() - t0) * 1e3)
        join(pool)
    return {"first": first, "later": _median(samples)}


def child_reusable(impl: str, calls: str) -> dict[str, float]:
    """A library function that wants a pool for one small map, called again and again."""
    if impl == "procpar":
        import procpar

        def call() -> None:
            assert procpar.get_reusable_pool(2).map(_work.square, [3]) == [9]
    elif impl == "loky":
        import loky

        def call() -> None:
            assert list(loky.get_reusable_executor(2).map(_work.square, [3])) == [9]
    else:  # nothing reusable: a new pool per call
        make, join = _new_pool_then(impl)
        pools = []

        def call() -> None:
            pools.append(make())

    call()
    samples = []
    for _ in range(int(calls)):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1e3)
    if impl not in ("procpar", "loky"):
        for pool in pools:
            join(pool)
    return {"later": _median(samples)}


CHILD_ROWS: dict[str, Callable[..., dict[str, float]]] = {
    "start": child_start, "pools": child_pools, "reusable": child_reusable,
}


def bench_start(method: str, count: int, rounds: int, heavy: bool = False) -> Rounds:
    from _peers import PROCESS_PEERS, process_modules

    names = [n for n in PROCESS_PEERS if n in process_modules()]
    return _rounds(rounds, names,
                   lambda impl: _in_child("start", impl, method, str(count), "1" if heavy else "0")["mean"])


_pool_runs: dict[tuple[str, bool], Rounds] = {}


def _pool_lifetimes(quick: bool) -> dict[str, Rounds]:
    """One fresh process per implementation and round: its first pool, then each later pool."""
    from _peers import pool_peers

    if (("first", quick)) not in _pool_runs:
        first: Rounds = {}
        later: Rounds = {}
        for _ in range(3):
            for impl in pool_peers():
                figures = _in_child("pools", impl, "5" if quick else "10")
                first.setdefault(impl, []).append(figures["first"])
                later.setdefault(impl, []).append(figures["later"])
        _pool_runs["first", quick] = first
        _pool_runs["later", quick] = later
    return {"first": _pool_runs["first", quick], "later": _pool_runs["later", quick]}


def bench_reusable(quick: bool) -> Rounds:
    from _peers import pool_peers

    names = [n for n in ("procpar", "stdlib", "loky") if n in pool_peers()]
    return _rounds(3, names, lambda impl: _in_child("reusable", impl, "20" if quick else "100")["later"])


# -- process-level rows -----------------------------------------------------------------------------------------

def _process_rounds(rounds: int, measure: Callable[[Any], float]) -> Rounds:
    from _peers import PROCESS_PEERS, process_modules

    modules = process_modules()
    return _rounds(rounds, [n for n in PROCESS_PEERS if n in modules], lambda name: measure(modules[name]))


def _with_child(impl: Any, target: Callable[..., None], *args: Any) -> Any:
    p = impl.get_context("fork").Process(target=target, args=args)
    p.start()
    return p


def bench_pipe_latency(rounds: int) -> Rounds:
    msg = b"x" * 64

    def measure(impl: Any) -> float:
        a, b = impl.get_context("fork").Pipe()
        p = _with_child(impl, _work.echo_bytes, b)
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
        return elapsed / rounds * 1e6

    return _process_rounds(3, measure)


def bench_pipe_bandwidth(duplex: bool, size: int, count: int) -> Rounds:
    data = os.urandom(size)

    def measure(impl: Any) -> float:
        ctx = impl.get_context("fork")
        if duplex:
            a, b = ctx.Pipe()
            p = _with_child(impl, _work.sink, b, count)
            b.close()
            writer, ack = a, a
        else:
            reader, writer = ctx.Pipe(duplex=False)
            ack_r, ack_w = ctx.Pipe(duplex=False)
            p = _with_child(impl, _work.sink_simplex, reader, ack_w, count)
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
        return size * count / elapsed / 1e6

    return _process_rounds(3, measure)


def bench_lock_pair(rounds: int) -> Rounds:
    def measure(impl: Any) -> float:
        lock = impl.Lock()
        acquire, release = lock.acquire, lock.release
        t0 = time.perf_counter()
        for _ in range(rounds):
            acquire()
            release()
        return (time.perf_counter() - t0) / rounds * 1e9

    return _process_rounds(5, measure)


def bench_queue_throughput(count: int) -> Rounds:
    def measure(impl: Any) -> float:
        ctx = impl.get_context("fork")
        q, done = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=_work.queue_consumer, args=(q, count, done))
        p.start()
        put = q.put
        t0 = time.perf_counter()
        for i in range(count):
            put(i)
        done.get()
        elapsed = time.perf_counter() - t0
        p.join()
        return count / elapsed

    return _process_rounds(3, measure)


def bench_queue_latency(rounds: int) -> Rounds:
    def measure(impl: Any) -> float:
        ctx = impl.get_context("fork")
        inq, outq = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=_work.queue_echo, args=(inq, outq))
        p.start()
        for _ in range(50):
            inq.put(1)
            outq.get()
        t0 = time.perf_counter()
        for _ in range(rounds):
            inq.put(1)
            outq.get()
        elapsed = time.perf_counter() - t0
        inq.put(None)
        p.join()
        return elapsed / rounds / 2 * 1e6  # one put-to-get hop is half a round trip

    return _process_rounds(3, measure)


_spread: dict[str, list[list[int]]] = {}


def bench_queue_consumers(items: int, consumers: int = 3, work: float = 0.001) -> Rounds:
    """Wall time of ``consumers`` processes taking ``items`` from one Queue, ``work`` s of CPU each."""
    from _peers import default_method

    def measure(impl: Any) -> float:
        elapsed, taken = _work.timed_consumers(impl.get_context(default_method()), consumers, items, work)
        _spread.setdefault(impl.__name__, []).append(taken)
        return elapsed * 1e3

    return _process_rounds(3, measure)


def bench_raw_array(length: int) -> Rounds:
    # Creation only: the stdlib zeroes the array (touching every page); fresh shared memory already is zero.
    def measure(impl: Any) -> float:
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            arr = impl.RawArray("d", length)
            samples.append((time.perf_counter() - t0) * 1e3)
            del arr
        return _median(samples)

    return _process_rounds(3, measure)


def bench_value_increments(count: int) -> Rounds:
    def measure(impl: Any) -> float:
        ctx = impl.get_context("fork")
        v = ctx.Value("i", 0)
        procs = [ctx.Process(target=_work.locked_increments, args=(v, count)) for _ in range(2)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - t0
        if v.value != 2 * count:
            raise AssertionError(f"lost increments, {v.value} != {2 * count}")
        return 2 * count / elapsed

    return _process_rounds(3, measure)


def bench_manager_calls(rounds: int) -> Rounds:
    """Median round trip of a proxy method call (``d[k] = v`` then ``d[k]``) to a started SyncManager."""
    def measure(impl: Any) -> float:
        with impl.Manager() as manager:
            d = manager.dict()
            samples = []
            for i in range(rounds):
                t0 = time.perf_counter()
                d["k"] = i
                d["k"]
                samples.append((time.perf_counter() - t0) * 1e6 / 2)
            return _median(samples)

    return _process_rounds(3, measure)


def bench_manager_objects(count: int) -> Rounds:
    """Shared objects created and released per second (``manager.list()`` then dropping the proxy)."""
    import gc

    def measure(impl: Any) -> float:
        with impl.Manager() as manager:
            manager.list()
            t0 = time.perf_counter()
            for _ in range(count):
                lst = manager.list()
                del lst
            gc.collect()
            return count / (time.perf_counter() - t0)

    return _process_rounds(3, measure)


# -- pool rows: every peer ----------------------------------------------------------------------------------------

def _on_pools(rounds: int, measure: Callable[[Any], float], names: list[str] | None = None,
              warm_up: Callable[[Any], Any] | None = None) -> Rounds:
    """``measure(pool)`` in each round on one long-lived pool per implementation, taking turns."""
    from _peers import make_pool, pool_peers

    names = names or pool_peers()
    pools = {name: make_pool(name) for name in names}
    try:
        for pool in pools.values():
            (warm_up or (lambda p: p.map(_work.trivial, list(range(100)))))(pool)
        return _rounds(rounds, names, lambda name: measure(pools[name]))
    finally:
        for pool in pools.values():
            pool.close()


def bench_pool_map(count: int) -> Rounds:
    items = range(count)  # the common idiom: each implementation turns it into chunks its own way

    def measure(pool: Any) -> float:
        t0 = time.perf_counter()
        pool.map(_work.trivial, items)
        return count / (time.perf_counter() - t0)

    return _on_pools(5, measure)


def bench_pool_imap(count: int) -> Rounds:
    def measure(pool: Any) -> float:
        t0 = time.perf_counter()
        for _ in pool.imap(_work.trivial, range(count)):
            pass
        return count / (time.perf_counter() - t0)

    return _on_pools(3, measure)


def bench_pool_apply(calls: int, pause: float = 0.0, names: list[str] | None = None) -> Rounds:
    """Each ``apply`` timed on its own; a round's figure is the median of its ``calls`` calls."""
    def measure(pool: Any) -> float:
        samples = []
        for _ in range(calls):
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            pool.apply(_work.trivial, 1)
            samples.append((time.perf_counter() - t0) * 1e6)
        return _median(samples)

    return _on_pools(3, measure, names)


def bench_pool_arrays(count: int) -> Rounds:
    import numpy as np

    arrays = [np.full(4 << 20, float(i)) for i in range(count)]  # 32 MB each
    megabytes = sum(a.nbytes for a in arrays) * 2 / 1e6  # there and back

    def measure(pool: Any) -> float:
        t0 = time.perf_counter()
        pool.map_one_each(_work.doubled, arrays)
        return megabytes / (time.perf_counter() - t0)

    return _on_pools(3, measure)


# -- the table ---------------------------------------------------------------------------------------------------

class Row:
    """One line of the table: its unit, which way is better, the target ratio (0: for information), how to
    measure it, and what the OS allows for the same work (``limit``, described by ``what``)."""

    def __init__(self, unit: str, lower_is_better: bool, target: float, measure: Callable[[bool], Rounds],
                 limit: Callable[[bool], float] | None = None, what: str = "") -> None:
        self.unit, self.lower_is_better, self.target = unit, lower_is_better, target
        self.measure, self.limit, self.what = measure, limit, what


def _first_pool(quick: bool) -> Rounds:
    return _pool_lifetimes(quick)["first"]


def _later_pool(quick: bool) -> Rounds:
    return _pool_lifetimes(quick)["later"]


CPUS = os.cpu_count() or 1


class _LazyLimits:
    def __getattr__(self, name: str) -> Any:
        import _limits

        return getattr(_limits, name)


_limits = _LazyLimits()

ROWS: dict[str, Row] = {
    "start-fork": Row("ms", True, 0.8, lambda q: bench_start("fork", 50, 3 if q else 5),
                      lambda q: _limits.fork_exit_wait(), "fork+exit+wait"),
    "start-fork-big-parent": Row("ms", True, 0.8, lambda q: bench_start("fork", 50, 3, heavy=True),
                                 None, "numpy imported, 1M objects"),
    "start-forkserver": Row("ms", True, 0.25, lambda q: bench_start("forkserver", 50, 3),
                            lambda q: _limits.forked_by_a_server(), "a server's fork"),
    "start-spawn": Row("ms", True, 0.6, lambda q: bench_start("spawn", 10 if q else 50, 3),
                       lambda q: _limits.interpreter_start(), "python -c pass"),
    "pool-first": Row("ms", True, 0.5, _first_pool, lambda q: _limits.two_forks_to_a_first_byte(),
                      "two forks to a byte"),
    "pool-later": Row("ms", True, 0.5, _later_pool, lambda q: _limits.two_forks_to_a_first_byte(),
                      "two forks to a byte"),
    "pool-reusable": Row("ms", True, 0.1, bench_reusable, lambda q: _limits.pipe_round_trip(2000) / 1e3,
                         "a pipe round trip"),
    "pipe-latency": Row("us", True, 0.6, lambda q: bench_pipe_latency(3000 if q else 20000),
                        lambda q: _limits.pipe_round_trip(), "os.read/os.write"),
    "pipe-bandwidth": Row("MB/s", False, 1.1, lambda q: bench_pipe_bandwidth(True, 16 << 20, 8 if q else 32),
                          lambda q: _limits.bulk_pipe_bandwidth(), "os.write into a pipe"),
    "pipe-bandwidth-simplex": Row("MB/s", False, 0.0,
                                  lambda q: bench_pipe_bandwidth(False, 16 << 20, 8 if q else 32),
                                  lambda q: _limits.bulk_pipe_bandwidth(), "os.write into a pipe"),
    "lock-pair": Row("ns", True, 1.1, lambda q: bench_lock_pair(200_000 if q else 1_000_000),
                     lambda q: _limits.lock_pair(), "a thread lock"),
    "queue-throughput": Row("it/s", False, 4.0, lambda q: bench_queue_throughput(20_000 if q else 100_000),
                            lambda q: _limits.small_messages_per_second(), "8-byte writes"),
    "queue-latency": Row("us", True, 0.6, lambda q: bench_queue_latency(1000 if q else 5000),
                         lambda q: _limits.pipe_round_trip() / 2, "half a pipe round trip"),
    "queue-consumers": Row("ms", True, 1.0, lambda q: bench_queue_consumers(300 if q else 1200),
                           lambda q: (300 if q else 1200) * 1.0 / min(CPUS, 3), "the work on every CPU"),
    "rawarray-create": Row("ms", True, 0.8, lambda q: bench_raw_array(10_000_000),
                           lambda q: _limits.fresh_mapping(80_000_000), "mmap"),
    "value-lock-increments": Row("op/s", False, 1.0, lambda q: bench_value_increments(20_000 if q else 100_000)),
    "pool-map": Row("it/s", False, 2.5, lambda q: bench_pool_map(200_000),
                    lambda q: _limits.ideal_map(_work.trivial, 200_000, CPUS), "the calls on every CPU"),
    "pool-imap": Row("it/s", False, 5.0, lambda q: bench_pool_imap(5_000 if q else 20_000),
                     lambda q: _limits.pipelined_echo_per_second(), "pipelined 8-byte echo"),
    "pool-apply-latency": Row("us", True, 0.3, lambda q: bench_pool_apply(300 if q else 2000),
                              lambda q: _limits.pipe_round_trip(), "a pipe round trip"),
    "pool-apply-after-idle": Row("us", True, 0.0, lambda q: bench_pool_apply(100 if q else 300, 0.002,
                                                                             ["procpar", "stdlib"]),
                                 lambda q: _limits.pipe_round_trip(), "a pipe round trip"),
    "pool-arrays": Row("MB/s", False, 6.0, lambda q: bench_pool_arrays(4 if q else 16),
                       lambda q: _limits.copy_bandwidth(), "one copy each way"),
    "manager-call-latency": Row("us", True, 0.5, lambda q: bench_manager_calls(1000 if q else 5000),
                                lambda q: _limits.unix_socket_round_trip(), "a Unix socket round trip"),
    "manager-objects": Row("op/s", False, 0.0, lambda q: bench_manager_objects(300 if q else 2000)),
}


def _ratio(rounds: Rounds, a: str, b: str) -> float:
    return _median([x / y for x, y in zip(rounds[a], rounds[b], strict=True)])


def summarise(name: str, row: Row, rounds: Rounds, limit: float | None) -> dict[str, Any]:
    medians = {impl: _median(values) for impl, values in rounds.items()}
    peers = [impl for impl in rounds if impl != "procpar"]
    best = (min if row.lower_is_better else max)(peers, key=lambda impl: medians[impl])
    ratio = _ratio(rounds, "procpar", "stdlib") if "stdlib" in rounds else float("nan")
    entry: dict[str, Any] = {
        "unit": row.unit, "lower_is_better": row.lower_is_better, "target": row.target, "medians": medians,
        "rounds": rounds, "ratio": ratio, "best_peer": best, "ratio_to_best_peer": _ratio(rounds, "procpar", best),
    }
    if limit is not None:
        entry["limit"] = limit
        entry["limit_what"] = row.what
        procpar = medians["procpar"]
        entry["percent_of_limit"] = 100 * (limit / procpar if row.lower_is_better else procpar / limit)
    if row.target:
        entry["met"] = ratio <= row.target if row.lower_is_better else ratio >= row.target
    return entry


def _cell(value: float) -> str:
    if value >= 100_000:
        return f"{value / 1e6:.2f}M"
    if value >= 1000:
        return f"{value / 1e3:.1f}k"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def print_header(impls: list[str]) -> None:
    cols = "".join(f"{impl:>13}" for impl in impls)
    print(f"{'workload':<23}{'unit':<5}{cols}  {'ratio':>6} {'target':>10}  {'vs best peer':>16}  limit (procpar %)")


def print_row(name: str, entry: dict[str, Any], impls: list[str]) -> None:
    medians = entry["medians"]
    cols = "".join(f"{_cell(medians[impl]) if impl in medians else '-':>13}" for impl in impls)
    sign = "<=" if entry["lower_is_better"] else ">="
    target = f"{sign}{entry['target']}x {'ok' if entry.get('met') else 'MISS'}" if entry["target"] else "-"
    peer = f"{entry['ratio_to_best_peer']:.2f}x {entry['best_peer']}"
    limit = f"{_cell(entry['limit'])} ({entry['percent_of_limit']:.0f}%)" if "limit" in entry else "-"
    print(f"{name:<23}{entry['unit']:<5}{cols}  {entry['ratio']:>5.2f}x {target:>10}  {peer:>16}  {limit}",
          flush=True)


def main() -> None:
    import argparse
    import json

    from _peers import default_method, pool_peers

    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(CHILD_ROWS[sys.argv[2]](*sys.argv[3:])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", action="append", choices=sorted(ROWS), help="run only these rows")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    import procpar

    impls = pool_peers()
    print(f"procpar {procpar.__version__} against {', '.join(impls[1:])}; Python {sys.version.split()[0]}, "
          f"{CPUS} CPUs, start method {default_method()}")
    print("ratio = procpar / stdlib (median of per-round ratios); limit: what the OS allows for the same work")
    print_header(impls)
    report: dict[str, Any] = {}
    for name, row in ROWS.items():
        if args.only and name not in args.only:
            continue
        rounds = row.measure(args.quick)
        limit = row.limit(args.quick) if row.limit is not None else None
        report[name] = summarise(name, row, rounds, limit)
        print_row(name, report[name], impls)
    if _spread:
        print("queue-consumers, items each of the 3 consumers took (per round):")
        for impl, taken in _spread.items():
            print(f"  {impl:<16}{taken}")
        report.setdefault("queue-consumers", {})["spread"] = _spread
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
