"""Children of children see the same multiprocessing as the program."""
import sys

import multiprocessing as mp


def grandchild(q):
    q.put(("grandchild", mp.__name__, mp.current_process().name))


def child(q):
    q.put(("child", mp.__name__, mp.current_process().name))
    p = mp.Process(target=grandchild, args=(q,), name="G")
    p.start()
    p.join()


if __name__ == "__main__":
    mp.set_start_method(sys.argv[1])
    print(sys.argv[1:], __name__)
    q = mp.Queue()
    p = mp.Process(target=child, args=(q,), name="C")
    p.start()
    got = sorted([q.get(timeout=60), q.get(timeout=60)])
    p.join()
    print(got[0][0], got[0][2], got[1][0], got[1][2], p.exitcode, got[0][1] == got[1][1] == mp.__name__)
    sys.exit(5)
