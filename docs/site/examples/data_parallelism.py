"""Data parallelism: map over a large input lazily, survive a dying worker, see what the pool did."""

import os

import procpar as multiprocessing
from procpar_pool import WorkerLostError


def words(line):
    return len(line.split())


def crash(_):
    os._exit(3)  # a worker that dies mid-task: only this task fails


if __name__ == "__main__":
    lines = (f"line {i} has some words" for i in range(10_000))  # a generator: read as the pool needs it
    with multiprocessing.Pool(2, maxtasksperchild=2_000) as pool:
        print(sum(pool.imap(words, lines, chunksize=64)))
        try:
            pool.apply(crash, (None,))
        except WorkerLostError as exc:
            print("lost:", exc.exitcode)
        print(pool.map(words, ["still", "working fine"]))
        stats = pool.stats()
        print(stats.tasks, sorted(stats.restarts))  # tasks: 157 chunks of 64 lines, 2 of the map
