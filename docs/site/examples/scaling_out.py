"""Scaling out: the same Pool on a Dask cluster (here a LocalCluster on this machine)."""

import distributed

import procpar_dask


def square(x):
    return x * x


if __name__ == "__main__":
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) \
            as cluster, distributed.Client(cluster) as client:
        with procpar_dask.Pool(cluster=client) as pool:
            print(pool.map(square, range(10)))
            print(pool.apply(square, (11,)))
