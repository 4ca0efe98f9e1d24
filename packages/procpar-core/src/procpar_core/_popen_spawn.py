"""The spawn start method: a fresh interpreter started with ``posix_spawn`` that unpickles the process."""

from __future__ import annotations

import os
import sys

from . import _util
from ._popen_base import USE_PIDFD, ChildPopen, PicklingPopenMixin
from ._spawn import build_payload, get_executable, interpreter_args

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from ._process import BaseProcess

# The child finds procpar_core where the parent found it, even if the parent put it on sys.path at run
# time; prepare() then replaces sys.path with the parent's whole list.
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CHILD_CODE = f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); from procpar_core._spawn_child import main; main()"


class PopenSpawn(PicklingPopenMixin, ChildPopen):
    method = "spawn"

    def __init__(self, process_obj: "BaseProcess") -> None:
        super().__init__()
        self._fds: list[int] = []
        _util.flush_std_streams()
        self._launch(process_obj)

    def _launch(self, process_obj: "BaseProcess") -> None:
        payload = build_payload(self, process_obj, self.method)
        # data_r/data_w: the payload; the parent keeps data_w open, so EOF on data_r means it exited.
        # The sentinel is a pidfd, or sent_r/sent_w (the child keeps sent_w) where pidfds don't exist.
        data_r, data_w = os.pipe()
        sent_r, sent_w = (-1, -1) if USE_PIDFD else os.pipe()
        try:
            passed = [data_r, *([sent_w] if sent_w >= 0 else []), *self._fds]
            if getattr(sys, "frozen", False):
                # A frozen executable has no -c; freeze_support() recognises the flag instead.
                argv = [get_executable(), "--procpar-spawn"]
            else:
                argv = [get_executable(), *interpreter_args(), "-c", _CHILD_CODE, "--procpar-spawn"]
            argv += [str(data_r), str(sent_w), *(str(fd) for fd in self._fds)]
            # DUP2 onto the same number clears close-on-exec for the child only.
            actions = [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in passed]
            self.pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        except BaseException:
            _util.close_fds(data_r, data_w, sent_r, sent_w)
            raise
        os.close(data_r)
        if USE_PIDFD:
            sent_r = os.pidfd_open(self.pid)
        else:
            os.close(sent_w)
        self.sentinel = sent_r
        self.finalizer = _util.Finalize(self, _util.close_fds, (sent_r, data_w))
        try:
            _write_all(data_w, payload)
        except BrokenPipeError:
            pass  # the child died before reading it; its exit code tells the rest


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
