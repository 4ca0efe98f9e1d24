"""From concurrent.futures: ProcessPoolExecutor's code on procpar's Executor; a dead worker breaks nothing."""

import os
from concurrent.futures import as_completed

from procpar_pool import Executor, WorkerLostError


def cube(x):
    return x ** 3


def die(_):
    os._exit(1)


if __name__ == "__main__":
    with Executor(max_workers=2) as executor:
        futures = [executor.submit(cube, i) for i in range(5)]
        print(sorted(f.result() for f in as_completed(futures)))
        try:
            executor.submit(die, None).result()
        except WorkerLostError:
            print("one call failed; the executor goes on")  # ProcessPoolExecutor: BrokenProcessPool, for good
        print(list(executor.map(cube, [2, 3])))
