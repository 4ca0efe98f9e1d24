"""The fork start method: the child is a copy of the parent at the moment of ``start()``."""

from __future__ import annotations

import os

from . import _util
from ._popen_base import USE_PIDFD, ChildPopen

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from ._process import BaseProcess

# fds a forked child holds only so that its parent can see it exit. A grandchild forked later must not
# inherit them, or the parent's sentinel would wait for the grandchild too.
_liveness_fds: list[int] = []


class PopenFork(ChildPopen):
    method = "fork"

    def __init__(self, process_obj: "BaseProcess") -> None:
        super().__init__()
        _util.flush_std_streams()
        self._launch(process_obj)

    def _launch(self, process_obj: "BaseProcess") -> None:
        # child_r/parent_w: EOF on child_r when the parent exits (the child's parent sentinel).
        # The child's own sentinel is a pidfd, or parent_r/child_w where pidfds don't exist.
        # Everything the parent can prepare happens before fork(): until the child exits, each page the parent
        # writes is copied, so the parent does as little as possible between fork() and its return.
        child_r, parent_w = os.pipe()
        parent_r = child_w = -1
        if not USE_PIDFD:
            parent_r, child_w = os.pipe()
        owned = [parent_w]
        self.finalizer = _util.Finalize(self, _close_owned, (owned,))
        if _util._beforefork_registry:
            _util._run_before_forkers()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _util.close_fds(parent_r, parent_w)
                for fd in _liveness_fds:
                    _util.close_fds(fd)
                _liveness_fds[:] = [child_w] if child_w >= 0 else []
                _util.enter_forked_child()
                code = process_obj._bootstrap(parent_sentinel=child_r)
            finally:
                _util.leave_forked_child(code)
        self.pid = pid
        os.close(child_r)
        if USE_PIDFD:
            parent_r = os.pidfd_open(pid)
        else:
            os.close(child_w)
        owned.append(parent_r)
        self.sentinel = parent_r


def _close_owned(fds: list[int]) -> None:
    _util.close_fds(*fds)
