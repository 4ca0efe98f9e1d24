"""procpar-sync's low-level API: the compiled message framing and the shared-memory arenas its siblings build
on (procpar-pool's worker protocol, procpar-shm's heap).

Public and versioned like the rest of the package: a name here changes only with a note under "Low-level API"
in the changelog. The framing functions serve the pool's sockets (they are procpar-sync's because they share
the compiled module, its build and its frame layout with the queues; see docs/design.md section 1):

* ``write_messages(fd, messages)``: one gathered write of length-prefixed frames (the connection format).
* ``read_message_stashed``/``read_messages_stashed``/``has_message``/``stashed``: reads of whole frames through
  a per-socket read-ahead buffer; ``unread(fd)``: bytes waiting in the kernel.
* ``spin_readable(fd, seconds)``: a bounded busy wait for data (cheaper than a wake-up for replies that come
  within microseconds).
* ``pack_numbers``/``unpack_numbers``: the little headers of the pool's messages.
* ``Arena``/``allocate``: anonymous shared memory passed by file descriptor, the home of locks and shared
  values.
"""

from __future__ import annotations

from ._arena import Arena, allocate
from ._wire import (
    has_message,
    pack_numbers,
    read_message,
    read_message_stashed,
    read_messages_stashed,
    spin_readable,
    stashed,
    unpack_numbers,
    unread,
    write_messages,
)

__all__ = ["write_messages", "read_message", "read_message_stashed", "read_messages_stashed", "has_message",
           "stashed", "unread", "spin_readable", "pack_numbers", "unpack_numbers", "Arena", "allocate"]
