"""A child given a manager proxy, a Lock, a Queue and a Value: nothing printed when it exits."""
import sys

import multiprocessing as mp


def child(d, lock, q, v):
    with lock:
        d["x"] = 1
        v.value += 1
    q.put("done")


if __name__ == "__main__":
    mp.set_start_method(sys.argv[1])
    with mp.Manager() as manager:
        d = manager.dict()
        lock, q, v = mp.Lock(), mp.Queue(), mp.Value("i", 0)
        p = mp.Process(target=child, args=(d, lock, q, v))
        p.start()
        print(q.get(timeout=60), d.copy(), v.value)
        p.join()
        print(p.exitcode)
