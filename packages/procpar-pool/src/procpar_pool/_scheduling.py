"""The process engine's scheduling policy, as pure functions: how deep each worker's queue is, how a batch of
tasks is shared out, and how far an imap may read ahead. No state, no I/O: the engine (``_process_engine``)
applies them, and the tests check them alone.

Depth: each worker holds at most ``prefetch`` tasks when the pool was given one. By default the depth adapts to
the worker's measured time per task so that it holds about ``QUEUED_SECONDS`` of work, between ``MIN_DEPTH`` and
``MAX_DEPTH`` tasks: tiny tasks then cost one read and one write per batch instead of a wake-up each, and a slow
task never leaves many others stuck behind it.
"""

from __future__ import annotations

__all__ = ["QUEUED_SECONDS", "MIN_DEPTH", "MAX_DEPTH", "BIG_TASK", "queue_depth", "share", "window_bonus",
           "updated_service"]

QUEUED_SECONDS = 0.002
MIN_DEPTH, MAX_DEPTH = 4, 64
# A pickled task larger than this only goes to a worker holding nothing, and a worker holding tasks is sent at
# most this many bytes more at a time: queued behind a running task, more could fill its socket and block the
# engine's thread.
BIG_TASK = 1 << 16
# How much of a worker's previous estimate each new reply keeps (an exponential moving average per reply).
_KEEP_PER_REPLY = 0.8


def queue_depth(prefetch: int | None, service: float | None) -> int:
    """How many tasks a worker may hold, given the pool's ``prefetch`` and the worker's seconds per task."""
    if prefetch is not None:
        return prefetch
    if service is None or service <= 0:
        return MIN_DEPTH
    return max(MIN_DEPTH, min(MAX_DEPTH, int(QUEUED_SECONDS / service)))


def window_bonus(depths: list[int]) -> int:
    """How many chunks an adaptive imap may read ahead beyond its window, to keep deep worker queues fed."""
    return 2 * sum(max(0, depth - MIN_DEPTH) for depth in depths)


def updated_service(service: float | None, elapsed: float, replies: int) -> float:
    """A worker's seconds per task after ``replies`` replies that came together ``elapsed`` seconds after its
    previous one (or after it became busy)."""
    took = elapsed / replies
    if service is None:
        return took
    keep = _KEEP_PER_REPLY ** replies
    return keep * service + (1 - keep) * took


def share(slots: list[tuple[int, int]], count: int) -> list[int]:
    """How many of ``count`` tasks each ``(room, held)`` slot takes, as if each task in turn went to the slot
    holding fewest (ties: the first) among those with room left: the level ``held + taken`` is evened out."""
    def taken_below(level: int) -> int:
        return sum(min(room, max(0, level - held)) for room, held in slots)

    low = min(held for _, held in slots)
    high = max(held + room for room, held in slots)
    # The least level reaching ``count`` (or the top, when there is less room than tasks).
    while low < high:
        middle = (low + high) // 2
        if taken_below(middle) >= count:
            high = middle
        else:
            low = middle + 1
    shares = [min(room, max(0, low - 1 - held)) for room, held in slots]
    left = count - sum(shares)
    for index, (room, held) in enumerate(slots):
        if left <= 0:
            break
        if shares[index] < room and held + shares[index] == low - 1:
            shares[index] += 1
            left -= 1
    return shares
