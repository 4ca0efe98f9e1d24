"""From loky: get_reusable_executor() keeps one warm pool for every caller."""

import procpar


def double(x):
    return 2 * x


def library_function(values):
    # A library cannot own a pool for its caller: it asks for the shared one (a later call takes ~0.1 ms).
    return list(procpar.get_reusable_executor(max_workers=2).map(double, values))


if __name__ == "__main__":
    print(library_function([1, 2, 3]))
    print(library_function([4, 5]))
    print(procpar.get_reusable_pool(2) is procpar.get_reusable_pool(2))
