"""The forkserver start method, client side: one request to the fork server per child."""

from __future__ import annotations

import os

from . import _forkserver, _util
from ._connection import _poll_one
from ._popen_base import PicklingPopenMixin, PopenBase
from ._spawn import build_payload

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any

    from ._process import BaseProcess


class PopenForkServer(PicklingPopenMixin, PopenBase):
    method = "forkserver"

    def __init__(self, process_obj: "BaseProcess") -> None:
        super().__init__()
        self._fds: list[int] = []
        _util.flush_std_streams()
        payload = build_payload(self, process_obj, self.method)
        self.pid, self._sock = _forkserver.connect_to_new_process(self._fds, payload)
        self.sentinel = self._sock.fileno()
        self.finalizer = _util.Finalize(self, _close_socket, (self._sock,))

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None:
            if flag == os.WNOHANG and not _poll_one(self.sentinel, 0):
                return None
            data = _forkserver._recv_exact(self._sock, _forkserver.STATUS.size)
            if data is None:
                # The server died before it could report: treat the child as gone with an unknown status.
                self.returncode = 255
            else:
                (self.returncode,) = _forkserver.STATUS.unpack(data)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None:
            if not _poll_one(self.sentinel, timeout):
                return None
            return self.poll(0)
        return self.returncode


def _close_socket(sock: Any) -> None:
    sock.close()
