"""New processes, queues, pipes and a manager after a pool that was closed, joined or left as it is."""
import sys

import multiprocessing as mp


def ident(x):
    return x


def child(q, conn):
    q.put(1)
    conn.send(2)


if __name__ == "__main__":
    mp.set_start_method(sys.argv[1])
    pool = mp.Pool(2)
    pool.map(ident, range(10))
    if sys.argv[2] == "close":
        pool.close()
    elif sys.argv[2] == "join":
        pool.close()
        pool.join()
    elif sys.argv[2] == "terminate":
        pool.terminate()
    for _ in range(3):
        q = mp.Queue()
        a, b = mp.Pipe()
        p = mp.Process(target=child, args=(q, b))
        p.start()
        print(q.get(timeout=60), a.recv(), end=" ")
        p.join()
        print(p.exitcode)
    with mp.Manager() as manager:
        print(manager.list([1]))
