"""Quick start: the stdlib's first Pool example, on procpar."""

import procpar as multiprocessing


def square(x):
    return x * x


if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        print(pool.map(square, range(10)))
        print(pool.apply(square, (12,)))
        print(sorted(pool.imap_unordered(square, range(5))))
