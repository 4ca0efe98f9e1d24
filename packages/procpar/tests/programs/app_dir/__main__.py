import sys

import multiprocessing as mp

if __name__ != "__main__":
    raise RuntimeError("Should only be called as __main__!")

from work import add_one

mp.set_start_method(sys.argv[1])
with mp.Pool(2) as pool:
    print(pool.map(add_one, [1, 2, 3]))
