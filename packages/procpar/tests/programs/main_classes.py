"""Objects of classes defined in the main script, sent back by children through every channel."""
import dataclasses
import sys

import multiprocessing as mp


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Oops(Exception):
    pass


def make(i):
    return Point(i, 2 * i)


def fail(i):
    raise Oops(i)


def child(q, conn):
    q.put(Point(1, 2))
    conn.send(Point(3, 4))


if __name__ == "__main__":
    mp.set_start_method(sys.argv[1])
    with mp.Pool(2) as pool:
        print("pool", pool.map(make, range(3)))
        try:
            pool.apply(fail, (5,))
        except Oops as exc:
            print("exception", type(exc).__name__, exc.args)
    q = mp.Queue()
    a, b = mp.Pipe()
    p = mp.Process(target=child, args=(q, b))
    p.start()
    print("queue", q.get(timeout=60))
    print("pipe", a.recv())
    p.join()
    with mp.Manager() as manager:
        d = manager.dict()
        d["k"] = Point(5, 6)
        print("manager", d["k"])
