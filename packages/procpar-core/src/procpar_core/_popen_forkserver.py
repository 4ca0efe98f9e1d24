"""The forkserver start method, client side: one request to the fork server per child."""

from __future__ import annotations

import os

from . import _forkserver, _util
from ._connection import _poll_one
from ._popen_base import SIGKILL, SIGTERM
from ._reduction import _InheritedFd
from ._spawn import build_payload

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any

    from ._process import BaseProcess


class PopenForkServer:
    method = "forkserver"

    def __init__(self, process_obj: "BaseProcess") -> None:
        self.returncode: int | None = None
        self._fds: list[int] = []
        _util.flush_std_streams()
        payload = build_payload(self, process_obj, self.method)
        self.pid, self._sock = _forkserver.connect_to_new_process(self._fds, payload)
        self.sentinel = self._sock.fileno()
        self.finalizer: _util.Finalize | None = _util.Finalize(self, _close_socket, (self._sock,))

    @staticmethod
    def DupFd(index: int) -> _InheritedFd:
        return _InheritedFd(index)

    def duplicate_for_child(self, fd: int) -> int:
        try:
            return self._fds.index(fd)
        except ValueError:
            self._fds.append(fd)
            return len(self._fds) - 1

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

    def _send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self._send_signal(SIGTERM)

    def kill(self) -> None:
        self._send_signal(SIGKILL)

    def close(self) -> None:
        if self.finalizer is not None:
            self.finalizer()


def _close_socket(sock: Any) -> None:
    sock.close()
