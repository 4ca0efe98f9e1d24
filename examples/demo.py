"""A data-parallel program written for ``multiprocessing``, running unchanged on procpar.

It counts the primes below a bound by splitting the range into chunks, one worker process per chunk, each
reporting through a Pipe; the parent waits on all pipes at once with ``connection.wait``. It runs under
every start method and checks the answer against a serial count.
"""

import sys
import time

import procpar as multiprocessing
from procpar.connection import wait


def count_primes(lo, hi):
    count = 0
    for n in range(max(lo, 2), hi):
        if n % 2 == 0 and n != 2:
            continue
        d = 3
        while d * d <= n:
            if n % d == 0:
                break
            d += 2
        else:
            count += 1
    return count


def worker(conn, lo, hi):
    conn.send((lo, hi, count_primes(lo, hi), multiprocessing.current_process().name))
    conn.close()


def parallel_count(ctx, bound, chunks):
    step = -(-bound // chunks)
    readers, procs = [], []
    for lo in range(0, bound, step):
        reader, writer = ctx.Pipe(duplex=False)
        p = ctx.Process(target=worker, args=(writer, lo, min(lo + step, bound)))
        p.start()
        writer.close()
        readers.append(reader)
        procs.append(p)
    total = 0
    while readers:
        for reader in wait(readers):
            lo, hi, count, name = reader.recv()
            total += count
            readers.remove(reader)
    for p in procs:
        p.join()
        assert p.exitcode == 0, p
    return total


if __name__ == "__main__":
    bound = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    workers = multiprocessing.cpu_count()
    start = time.perf_counter()
    expected = count_primes(0, bound)
    serial = time.perf_counter() - start
    print(f"primes below {bound}: {expected} (serial: {serial:.2f} s)")
    for method in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context(method)
        start = time.perf_counter()
        got = parallel_count(ctx, bound, workers * 4)
        elapsed = time.perf_counter() - start
        status = "ok" if got == expected else f"WRONG, expected {expected}"
        print(f"{method:>10}: {got} with {workers * 4} processes in {elapsed:.2f} s ({status})")
        if got != expected:
            sys.exit(1)
