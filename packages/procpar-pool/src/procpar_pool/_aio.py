"""The pool's asyncio face: ``await result``, ``async for x in pool.imap(...)``, ``await executor.submit(...)``.

Nothing here blocks the event loop or takes a thread: a waiting coroutine parks on a loop future, and the
thread that records an outcome (the engine's) wakes it with ``call_soon_threadsafe``. A job that nobody awaits
pays one attribute read per outcome (``Job._wakers`` stays None). asyncio is imported only by code that
awaits, which already runs an event loop.

Cancelling the awaiting task cancels what has not started: an ``apply_async`` task still waiting for a worker,
the chunks of a ``map_async`` not yet handed out, the rest of an ``imap``'s iterable. What runs finishes (a
worker is not killed for it) and its outcome is dropped.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from typing import TypeVar

    from ._results import ApplyResult, IMapIterator, Job

    R = TypeVar("R")

__all__ = ["await_result", "next_item"]


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


def _waker(loop: asyncio.AbstractEventLoop, done: asyncio.Future[None]) -> Callable[[], None]:
    def wake() -> None:
        try:
            loop.call_soon_threadsafe(_resolve, done)
        except RuntimeError:
            pass  # the loop was closed meanwhile: nobody is left to wake

    return wake


async def _until_woken(job: Job, ready: Callable[[], bool]) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    wake = _waker(loop, done)
    job._add_waker(wake)
    try:
        # Checked after the waker is in place: an outcome recorded in between either sees the waker or was
        # recorded before this check.
        if not ready():
            await done
    finally:
        job._remove_waker(wake)


async def await_result(result: ApplyResult[R]) -> R:
    """The outcome of an ``apply_async``/``map_async`` result, awaited."""
    try:
        while not result.ready():
            await _until_woken(result, result.ready)
    except BaseException:  # CancelledError (a BaseException), or a KeyboardInterrupt delivered here
        result._cancel_pending()
        raise
    return result.get(0)


async def next_item(iterator: IMapIterator[R]) -> R:
    """The next result of an ``imap``/``imap_unordered`` iterator, awaited; ``StopAsyncIteration`` at the end."""
    from ._errors import TimeoutError

    try:
        while True:
            try:
                return iterator.next(0)
            except StopIteration:
                raise StopAsyncIteration from None
            except TimeoutError:
                pass
            await _until_woken(iterator, iterator._has_next)
    except (StopAsyncIteration, GeneratorExit):
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception):  # cancelled: stop reading the iterable; a task's error is not that
            iterator._cancel_pending()
        raise
