"""From mpire: a progress bar and worker insights, on the stdlib-shaped Pool."""

import procpar_pool


def slow_square(x):
    return x * x


if __name__ == "__main__":
    with procpar_pool.Pool(2) as pool:
        # mpire's progress_bar=True; "workers" adds a live per-worker count (tqdm is used when installed).
        results = pool.map(slow_square, range(100), chunksize=5, progress=True)
        stats = pool.stats()  # mpire's enable_insights / get_insights()
    print(sum(results), stats.tasks, len(stats.workers))
