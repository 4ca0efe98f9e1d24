"""From asyncio: await results, iterate with async for, await executor futures, cancel what has not started."""

import asyncio

import procpar_pool


def square(x):
    return x * x


async def main(pool, executor):
    print(await pool.apply_async(square, (7,)))
    print(await pool.map_async(square, range(5)))
    print([x async for x in pool.imap(square, range(5))])
    print(await executor.submit(square, 9))
    # Awaiting with a deadline: the call is cancelled if it has not started by then.
    print(await asyncio.wait_for(pool.apply_async(square, (3,)), timeout=60))


if __name__ == "__main__":
    with procpar_pool.Pool(2) as pool, procpar_pool.Executor(2) as executor:
        asyncio.run(main(pool, executor))
