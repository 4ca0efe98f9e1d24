"""A concurrent.futures program: futures, map, as_completed, an exception, a start method."""
import concurrent.futures
import sys
from concurrent.futures import ProcessPoolExecutor

import multiprocessing


def square(x):
    return x * x


def fail(x):
    raise ValueError(f"bad {x}")


def nested(_):
    import multiprocessing as m  # what a worker sees
    return m.__name__


if __name__ == "__main__":
    ctx = multiprocessing.get_context(sys.argv[1])
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as executor:
        print(list(executor.map(square, range(10))))
        print(sorted(f.result() for f in concurrent.futures.as_completed(
            [executor.submit(square, i) for i in range(5)])))
        try:
            executor.submit(fail, 3).result()
        except ValueError as exc:
            print("error", exc)
        print(len(executor.submit(nested, 0).result()) > 0)
    sys.exit(7)
