"""Sharing state: a shared counter with its lock, a shared array, and a manager's dict."""

import procpar as multiprocessing


def count(counter, n):
    for _ in range(n):
        with counter.get_lock():
            counter.value += 1


def fill(array, value):
    for i in range(len(array)):
        array[i] = value * i


def record(table, key):
    table[key] = key.upper()


if __name__ == "__main__":
    counter = multiprocessing.Value("i", 0)
    array = multiprocessing.Array("d", 4)
    workers = [multiprocessing.Process(target=count, args=(counter, 1000)) for _ in range(2)]
    workers.append(multiprocessing.Process(target=fill, args=(array, 0.5)))
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    print(counter.value, array[:])
    with multiprocessing.Manager() as manager:
        table = manager.dict()
        jobs = [multiprocessing.Process(target=record, args=(table, key)) for key in ("a", "b")]
        for p in jobs:
            p.start()
        for p in jobs:
            p.join()
        print(sorted(table.items()))
