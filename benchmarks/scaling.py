"""How procpar's costs grow with the work, against the stdlib's, drawn as benchmarks/scaling.png.

    python benchmarks/scaling.py [--quick] [--json FILE]

* Throughput of ``Pool.map``, ``Pool.imap`` (chunks of 1) and a ``Queue`` between two processes against the
  size of each item, 100 B to 100 MB (each item is a ``bytes`` that travels to a worker, which returns its
  length; through the queue it travels to a consumer).
* Throughput of ``map`` and ``imap`` of trivial calls, and of a ``Queue`` drained by N consumers, against the
  number of workers, 1 to 8 on this machine's CPUs.
* The parent's peak memory while ``imap`` consumes a long generator of 1 KB items, against its length, the
  consumer slower than the pool: what a pool holds ahead of its consumer grows with the length unless bounded.

For each curve it also checks that no step costs more than its work: from one item size to the next (10x
larger) the time per item may grow at most ~10x (printed as the worst step's factor).
"""

from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _work  # noqa: E402

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SIZES = [100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000]
WORKERS = [1, 2, 3, 4, 6, 8]
GENERATOR_LENGTHS = [10_000, 20_000, 40_000, 80_000]


def _modules() -> dict[str, Any]:
    import multiprocessing

    import procpar

    return {"procpar": procpar, "stdlib": multiprocessing}


def _count_for(size: int, budget: int) -> int:
    """Items of ``size`` bytes for one point: about ``budget`` bytes in all, between 3 and 20,000 items."""
    return max(3, min(20_000, budget // size))


def by_item_size(sizes: list[int], budget: int) -> dict[str, dict[str, list[float]]]:
    """MB/s of map, imap and Queue for items of each size."""
    results: dict[str, dict[str, list[float]]] = {}
    for name, module in _modules().items():
        ctx = module.get_context("fork")
        for kind in ("map", "imap", "Queue"):
            results.setdefault(kind, {})[name] = []
        pool = ctx.Pool(2)
        pool.map(_work.trivial, range(100))  # the workers started and warm
        try:
            for size in sizes:
                count = _count_for(size, budget)
                base = (os.urandom(min(size, 1 << 20)) * (size // (1 << 20) + 1))[:size]
                # Distinct objects: a pickle of one object repeated would be written once per chunk.
                items = [base[:-4] + i.to_bytes(4, "little") for i in range(count)]
                del base
                for kind, figure in _at_size(pool, ctx, items).items():
                    results[kind][name].append(figure)
                del items
        finally:
            pool.terminate()
            pool.join()
    return results


def _at_size(pool: Any, ctx: Any, items: list[bytes]) -> dict[str, float]:
    """MB/s of map, imap and Queue for these items (the median of three runs each)."""
    size = len(items[0])
    megabytes = size * len(items) / 1e6
    chunksize = 1 if size >= 100_000 else None

    def run_map() -> float:
        t0 = time.perf_counter()
        assert pool.map(_work.sized, items, chunksize=chunksize)[0] == size
        return megabytes / (time.perf_counter() - t0)

    def run_imap() -> float:
        t0 = time.perf_counter()
        for _ in pool.imap(_work.sized, items, chunksize=1):
            pass
        return megabytes / (time.perf_counter() - t0)

    return {"map": _median_of(3, run_map), "imap": _median_of(3, run_imap),
            "Queue": _median_of(3, lambda: _queue_megabytes_per_second(ctx, items))}


def _median_of(repeats: int, measure: Any) -> float:
    values = sorted(measure() for _ in range(repeats))
    return float(values[len(values) // 2])


def _queue_megabytes_per_second(ctx: Any, items: list[bytes]) -> float:
    q, done = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=_work.queue_consumer, args=(q, len(items), done))
    p.start()
    t0 = time.perf_counter()
    for item in items:
        q.put(item)
    done.get()
    elapsed = time.perf_counter() - t0
    p.join()
    return sum(map(len, items)) / 1e6 / elapsed


def by_workers(workers: list[int], calls: int, queue_items: int) -> dict[str, dict[str, list[float]]]:
    """items/s of map and imap of trivial calls, and of a Queue drained by that many consumers."""
    results: dict[str, dict[str, list[float]]] = {"map": {}, "imap": {}, "Queue": {}}
    for name, module in _modules().items():
        ctx = module.get_context("fork")
        for kind in results:
            results[kind][name] = []
        for n in workers:
            pool = ctx.Pool(n)
            try:
                pool.map(_work.trivial, range(100))
                t0 = time.perf_counter()
                pool.map(_work.trivial, range(calls))
                results["map"][name].append(calls / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                for _ in pool.imap(_work.trivial, range(calls // 10), chunksize=1):
                    pass
                results["imap"][name].append(calls // 10 / (time.perf_counter() - t0))
            finally:
                pool.terminate()
                pool.join()
            results["Queue"][name].append(_queue_consumers(ctx, n, queue_items))
    return results


def _queue_consumers(ctx: Any, consumers: int, items: int) -> float:
    elapsed, _ = _work.timed_consumers(ctx, consumers, items, 0.0)
    return items / elapsed


def imap_peak_memory(lengths: list[int]) -> dict[str, list[float]]:
    """MB the parent's peak resident memory grew by while imap consumed a generator of that many 1 KB items
    returned by the workers, the consumer slower than the pool (each point in a fresh interpreter:
    the peak never goes down). What the pool reads ahead of its consumer, and holds, is what grows."""
    import json
    import subprocess

    results: dict[str, list[float]] = {}
    for name in _modules():
        results[name] = []
        for length in lengths:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--peak", name, str(length)],
                                 capture_output=True, text=True, timeout=600, cwd=HERE, check=True)
            results[name].append(float(json.loads(out.stdout.strip().splitlines()[-1])))
    return results


def _peak_rss_kib() -> int:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec(), so a child started by a big parent
    # would begin with the parent's peak.
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _peak_child(name: str, length: int) -> float:
    module = _modules()[name]
    pool = module.get_context("fork").Pool(2)
    pool.map(_work.trivial, range(10))
    before = _peak_rss_kib()
    items = (b"x" * 1000 + i.to_bytes(8, "little") for i in range(length))
    taken = 0
    for _ in pool.imap(_work.trivial, items, chunksize=1):
        taken += 1
        time.sleep(0.0001)  # the consumer's own wait per item (letting go of the GIL, as I/O would)
    assert taken == length
    after = _peak_rss_kib()
    pool.terminate()
    pool.join()
    return (after - before) / 1024


def worst_growth(sizes: list[int], megabytes_per_second: list[float]) -> float:
    """The largest factor by which the time per item grew from one size to the next, per 10x of work."""
    worst = 0.0
    for i in range(1, len(sizes)):
        per_item_before = sizes[i - 1] / megabytes_per_second[i - 1]
        per_item_after = sizes[i] / megabytes_per_second[i]
        worst = max(worst, (per_item_after / per_item_before) / (sizes[i] / sizes[i - 1]) * 10)
    return worst


def draw(path: str, sizes: list[int], size_results: dict[str, dict[str, list[float]]], workers: list[int],
         worker_results: dict[str, dict[str, list[float]]], lengths: list[int],
         memory: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    styles = {"procpar": "-", "stdlib": "--"}
    colours = {"map": "tab:blue", "imap": "tab:orange", "Queue": "tab:green"}
    ax = axes[0]
    for kind, by_impl in size_results.items():
        for impl, values in by_impl.items():
            ax.plot(sizes, values, styles[impl], color=colours[kind], marker="o", label=f"{kind} ({impl})")
    ax.set(xscale="log", yscale="log", xlabel="item size (bytes)", ylabel="MB/s",
           title="Throughput against item size")
    ax.legend(fontsize=7)
    ax = axes[1]
    for kind, by_impl in worker_results.items():
        for impl, values in by_impl.items():
            ax.plot(workers, values, styles[impl], color=colours[kind], marker="o", label=f"{kind} ({impl})")
    ax.set(yscale="log", xlabel=f"workers / consumers ({os.cpu_count()} CPUs)", ylabel="items/s",
           title="Throughput against workers (trivial items)")
    ax.legend(fontsize=7)
    ax = axes[2]
    for impl, values in memory.items():
        ax.plot(lengths, values, styles[impl], color="tab:red", marker="o", label=f"imap ({impl})")
    ax.set(xlabel="generator length (1 KB items)", ylabel="peak RSS growth (MB)",
           title="Parent's memory during imap of a generator")
    ax.legend(fontsize=7)
    fig.suptitle("procpar (solid) against the stdlib (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(sizes: list[int], size_results: dict[str, dict[str, list[float]]], workers: list[int],
          worker_results: dict[str, dict[str, list[float]]], lengths: list[int],
          memory: dict[str, list[float]]) -> str:
    def human(size: int) -> str:
        for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
            if size >= scale:
                return f"{size // scale} {unit}"
        return f"{size} B"

    lines = ["| item size | " + " | ".join(f"{k} procpar / stdlib (MB/s)" for k in size_results) + " |",
             "|---|" + "---|" * len(size_results)]
    for i, size in enumerate(sizes):
        cells = [f"{r['procpar'][i]:.1f} / {r['stdlib'][i]:.1f}" for r in size_results.values()]
        lines.append(f"| {human(size)} | " + " | ".join(cells) + " |")
    growth = [f"{k} {worst_growth(sizes, r['procpar']):.1f}x" for k, r in size_results.items()]
    lines += ["", "Worst step of procpar's time per item per 10x of item size (10x = as fast as the work grows): "
              + ", ".join(growth) + ".", ""]
    lines += ["| workers | " + " | ".join(f"{k} procpar / stdlib (items/s)" for k in worker_results) + " |",
              "|---|" + "---|" * len(worker_results)]
    for i, n in enumerate(workers):
        cells = [f"{r['procpar'][i]:,.0f} / {r['stdlib'][i]:,.0f}" for r in worker_results.values()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "| generator length | imap peak memory growth, procpar / stdlib (MB) |", "|---|---|"]
    for i, length in enumerate(lengths):
        lines.append(f"| {length:,} | {memory['procpar'][i]:.1f} / {memory['stdlib'][i]:.1f} |")
    return "\n".join(lines)


def main() -> None:
    import argparse
    import json

    if len(sys.argv) == 4 and sys.argv[1] == "--peak":
        print(json.dumps(_peak_child(sys.argv[2], int(sys.argv[3]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer points")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--png", default=os.path.join(HERE, "scaling.png"), help="where to draw the picture")
    args = parser.parse_args()
    sizes = SIZES[:-1] if args.quick else SIZES
    workers = WORKERS[:4] if args.quick else WORKERS
    lengths = GENERATOR_LENGTHS[:3] if args.quick else GENERATOR_LENGTHS
    size_results = by_item_size(sizes, 20_000_000 if args.quick else 200_000_000)
    worker_results = by_workers(workers, 100_000 if args.quick else 200_000, 20_000 if args.quick else 50_000)
    memory = imap_peak_memory(lengths)
    print(table(sizes, size_results, workers, worker_results, lengths, memory))
    try:
        draw(args.png, sizes, size_results, workers, worker_results, lengths, memory)
        print(f"\ndrawn: {args.png}")
    except ImportError:
        print("\nmatplotlib is not installed: no picture (the bench session installs it)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sizes": sizes, "by_size": size_results, "workers": workers, "by_workers": worker_results,
                       "generator_lengths": lengths, "imap_peak_mb": memory}, f, indent=2)


if __name__ == "__main__":
    main()
