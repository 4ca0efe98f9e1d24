"""The fork server: a preloaded interpreter that forks children on request.

Data flow of one start (docs/design.md section 2)::

    client                                server                         child
    connect(unix socket) -----------> accept
    sendmsg(!QI payload length, nfds
            + SCM_RIGHTS fds) ------> recvmsg, fork() ------------------> (inherits conn and fds)
    sendall(payload) ----------------------------------------------------> reads payload from conn, runs
    recv(!q pid) <------------------- sends pid
    ... child runs ...
    recv(!i exit code) <------------- SIGCHLD: waitpid, sends exit code, closes its copy of conn

The client's socket is the process sentinel; the child's copy is ``parent_process().sentinel``.
"""

from __future__ import annotations

import os
import sys
import threading
from struct import Struct

from . import _util

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any, Sequence

__all__ = ["ForkServer", "ensure_running", "connect_to_new_process", "set_forkserver_preload"]

# A request: payload length, fd count, then a fresh nonce and HMAC-SHA256(key, nonce + the two numbers). The
# server's key is made when it starts and known only to the processes of its program (3.14's forkserver
# authenticates its clients too): a process of the same user that found the socket cannot have children forked
# from a server holding the program's state. One message, no extra round trip.
HEADER = Struct("!QI")
NONCE_SIZE = 16
REQUEST = Struct(f"!QI{NONCE_SIZE}s32s")


def _request_tag(key: bytes, nonce: bytes, payload_len: int, nfds: int) -> bytes:
    import hmac

    return hmac.new(key, nonce + HEADER.pack(payload_len, nfds), "sha256").digest()
PID = Struct("!q")
STATUS = Struct("!i")
MAX_FDS = 253  # SCM_MAX_FD on Linux
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SERVER_CODE = f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); from procpar_core._forkserver import main; main()"


class ForkServer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._address: str | None = None
        self._alive_w: int | None = None
        self._pid: int | None = None
        self._preload: list[str] = ["__main__"]
        self._on_error = "ignore"
        self._authkey: bytes | None = None  # the running server's (inherited by forked children)

    def set_forkserver_preload(self, modules_names: Sequence[str], *, on_error: str = "ignore") -> None:
        """Modules the server imports once, before it forks any child. ``on_error`` (3.15's) says what an
        import that fails does: ``"ignore"`` it, ``"warn"`` (a warning in the server's error output), or
        ``"fail"`` (the server does not start, and the ``start()`` that needed it raises)."""
        if isinstance(modules_names, str) or not all(type(m) is str for m in modules_names):
            raise TypeError("module_names must be a list of strings")
        if on_error not in ("ignore", "warn", "fail"):
            raise ValueError(f"on_error must be 'ignore', 'warn' or 'fail', not {on_error!r}")
        self._preload = list(modules_names)
        self._on_error = on_error

    # The stdlib's names for the server's pid and address (tests and tools read them).
    @property
    def _forkserver_pid(self) -> int | None:
        return self._pid

    @property
    def _forkserver_address(self) -> str | None:
        return self._address

    def _stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        if self._alive_w is not None:
            _util.close_fds(self._alive_w)
            self._alive_w = None
        if self._pid is not None:
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:
                pass
            self._pid = None
        if self._address is not None:
            try:
                os.unlink(self._address)
            except OSError:
                pass
            self._address = None
            self._authkey = None

    def _running(self) -> bool:
        if self._pid is None:
            return self._address is not None  # inherited from the server we were forked from
        try:
            pid, _ = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def _exit_status(self) -> str | None:
        """How the server this process started ended, if it has (it is then reaped and forgotten)."""
        import time

        with self._lock:
            if self._pid is None:
                return None
            deadline = time.monotonic() + 1.0  # it closed our connection: it may be exiting right now
            while True:
                try:
                    pid, status = os.waitpid(self._pid, os.WNOHANG)
                except ChildProcessError:
                    return "already reaped"
                if pid != 0:
                    break
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.01)
            self._pid = None
            return f"exit code {os.waitstatus_to_exitcode(status)}"

    def ensure_running(self) -> str:
        """Start the server unless it runs; return its address."""
        with self._lock:
            if self._address is not None and self._running():
                return self._address
            self._stop_locked()
            self._launch()
            assert self._address is not None
            return self._address

    def _launch(self) -> None:
        import socket
        import tempfile

        from . import _reduction, _spawn

        directory = tempfile.mkdtemp(prefix=_util.owned_name_prefix("fs"))  # 0700: only we can connect
        _util.track_folder(directory)
        address = os.path.join(directory, "sock")
        listener = socket.socket(socket.AF_UNIX)
        try:
            listener.settimeout(None)
            listener.bind(address)
            os.chmod(address, 0o600)
            listener.listen(128)
            alive_r, alive_w = os.pipe()
            try:
                prep = _spawn.get_preparation_data("ForkServer", "forkserver")
                authkey = os.urandom(32)
                config = _reduction.dumps((prep, self._preload, address, self._on_error, authkey))
                config_r, config_w = os.pipe()
                passed = [listener.fileno(), alive_r, config_r]
                argv = [_spawn.get_executable(), *_spawn.interpreter_args(), "-c", _SERVER_CODE,
                        "--procpar-forkserver", *(str(fd) for fd in passed)]
                actions = [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in passed]
                try:
                    import signal

                    # Born with SIGINT blocked: a Ctrl-C before the server ignores it must not kill it.
                    self._pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions,
                                               setsigmask=(signal.SIGINT,))
                finally:
                    os.close(config_r)
                with open(config_w, "wb") as f:
                    f.write(config)
            finally:
                os.close(alive_r)
        finally:
            listener.close()
        self._address = address
        self._authkey = authkey
        self._alive_w = alive_w
        _util.Finalize(None, _rmdir_quiet, args=(directory,), exitpriority=-50)

    def connect_to_new_process(self, fds: Sequence[int], payload: bytes) -> tuple[int, Any]:
        """Ask the server for a child that runs ``payload``; return (pid, socket to the server)."""
        import socket

        if len(fds) > MAX_FDS:
            raise ValueError(f"too many file descriptors to pass to a forkserver child ({len(fds)} > {MAX_FDS})")
        address = self.ensure_running()
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.settimeout(None)
            try:
                return self._request(sock, address, fds, payload)
            except OSError as exc:
                status = self._exit_status()
                if status is None:
                    raise
                raise RuntimeError(f"the forkserver exited ({status}) before it could start the child; see its "
                                   f"error output above") from exc
        except BaseException:
            sock.close()
            raise

    def _request(self, sock: Any, address: str, fds: Sequence[int], payload: bytes) -> tuple[int, Any]:
        import socket

        sock.connect(address)
        if self._authkey is None:
            raise RuntimeError(f"no key for the forkserver at {address!r}: it was not started by this program")
        nonce = os.urandom(NONCE_SIZE)
        tag = _request_tag(self._authkey, nonce, len(payload), len(fds))
        sock.sendmsg([REQUEST.pack(len(payload), len(fds), nonce, tag)],
                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview(_as_int_array(fds))))]
                     if fds else [])
        sock.sendall(payload)
        reply = _recv_exact(sock, PID.size)
        if reply is None:
            raise ConnectionResetError("the forkserver closed the connection without starting the child")
        (pid,) = PID.unpack(reply)
        return pid, sock


def _as_int_array(fds: Sequence[int]) -> Any:
    import array

    return array.array("i", fds)


def _rmdir_quiet(directory: str) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
    _util._untrack_folder(directory)


def _recv_exact(sock: Any, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


_forkserver = ForkServer()
ensure_running = _forkserver.ensure_running
connect_to_new_process = _forkserver.connect_to_new_process
set_forkserver_preload = _forkserver.set_forkserver_preload


# -- the server process ---------------------------------------------------------------------------------

def main() -> None:
    """Entry point of the server: ``--procpar-forkserver LISTENER_FD ALIVE_FD CONFIG_FD``."""
    argv = sys.argv
    start = argv.index("--procpar-forkserver")
    listener_fd, alive_fd, config_fd = (int(x) for x in argv[start + 1 : start + 4])
    from _pickle import loads

    from . import _spawn_child

    with open(config_fd, "rb") as f:
        prep, preload, address, on_error, authkey = loads(f.read())
    _spawn_child.inheriting = True
    try:
        try:
            _spawn_child.prepare(prep)
        except Exception as exc:
            # Children will import the main module themselves and report the error where it matters.
            sys.stderr.write(f"procpar forkserver: could not preload the main module: {exc!r}\n")
        for name in preload:
            if name == "__main__":
                continue  # prepare() already ran the parent's main module as __mp_main__
            try:
                __import__(name)
            except Exception as exc:
                if on_error == "fail":
                    sys.stderr.write(f"procpar forkserver: preloading {name!r} failed ({exc!r}); the server "
                                     f"stops (set_forkserver_preload(on_error='fail'))\n")
                    _util.flush_std_streams()
                    os._exit(1)
                if on_error == "warn":
                    import warnings

                    warnings.warn(f"procpar forkserver: could not preload {name!r}: {exc!r}", RuntimeWarning,
                                  stacklevel=1)
    finally:
        _spawn_child.inheriting = False
    # What nearly every child needs to unpickle its process object (connections, the tracker's fd): imported
    # here once, not in each child (a millisecond or more per start).
    from . import _connection, _resource_tracker  # noqa: F401
    _util.flush_std_streams()
    _forkserver._address = address
    _forkserver._authkey = authkey
    _serve(listener_fd, alive_fd)


def _serve(listener_fd: int, alive_fd: int) -> None:
    import selectors
    import signal
    import socket

    listener = socket.socket(socket.AF_UNIX, fileno=listener_fd)
    sig_r, sig_w = os.pipe()
    os.set_blocking(sig_r, False)
    os.set_blocking(sig_w, False)
    # SIGINT goes to the whole terminal process group; the server must outlive a Ctrl-C of its user.
    handlers: dict[int, Any] = {signal.SIGCHLD: _ignore_signal, signal.SIGINT: signal.SIG_IGN}
    old: dict[int, Any] = {sig: signal.signal(sig, h) for sig, h in handlers.items()}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT,))  # ignored now (see ForkServer._launch)
    signal.set_wakeup_fd(sig_w)
    children: dict[int, Any] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(alive_fd, selectors.EVENT_READ)
    selector.register(sig_r, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj == alive_fd:
                # The process that started us is gone: stop serving. Running children are not touched.
                os._exit(0)
            if key.fileobj == sig_r:
                try:
                    while os.read(sig_r, 512):
                        pass
                except BlockingIOError:
                    pass
                _reap(children)
                continue
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                pid = _fork_child(conn, children, (listener, selector, sig_r, sig_w, alive_fd), old)
            except Exception as exc:
                sys.stderr.write(f"procpar forkserver: could not start a child: {exc!r}\n")
                conn.close()
                continue
            try:
                conn.sendall(PID.pack(pid))
            except OSError:
                pass  # the client went away; the child sees EOF on its parent sentinel
            children[pid] = conn
        _reap(children)


def _ignore_signal(signum: int, frame: Any) -> None:
    # A Python-level handler (not SIG_IGN) so that SIGCHLD is delivered and wakes the selector.
    pass


def _reap(children: dict[int, Any]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        try:
            conn.sendall(STATUS.pack(os.waitstatus_to_exitcode(status)))
        except OSError:
            pass
        conn.close()


_seen_nonces: set[bytes] = set()


def _fork_child(conn: Any, children: dict[int, Any], server_objects: tuple[Any, ...],
                old_handlers: dict[int, Any]) -> int:
    import socket

    msg, fds, _flags, _addr = socket.recv_fds(conn, REQUEST.size, MAX_FDS)
    if len(msg) < REQUEST.size:
        rest = _recv_exact(conn, REQUEST.size - len(msg))
        if rest is None:
            for fd in fds:
                os.close(fd)
            raise EOFError("client closed the connection mid-request")
        msg += rest
    payload_len, nfds, nonce, tag = REQUEST.unpack(msg)
    import hmac

    key = _forkserver._authkey
    if key is None or not hmac.compare_digest(tag, _request_tag(key, nonce, payload_len, nfds)) \
            or nonce in _seen_nonces:
        for fd in fds:
            os.close(fd)
        raise PermissionError("refused a client that did not authenticate with the program's key")
    _seen_nonces.add(nonce)
    if len(_seen_nonces) > 1 << 16:
        _seen_nonces.clear()  # a replay needs a captured request: the set only has to outlive a few
    if nfds != len(fds):
        for fd in fds:
            os.close(fd)
        raise RuntimeError(f"expected {nfds} file descriptors from the client, received {len(fds)}")
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    code = 1
    try:
        import signal

        listener, selector, sig_r, sig_w, alive_fd = server_objects
        signal.set_wakeup_fd(-1)
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        selector.close()
        listener.close()
        _util.close_fds(sig_r, sig_w, alive_fd)
        for other in children.values():
            other.close()  # other children's sentinels must not be held open by this one
        from . import _spawn_child

        fd = conn.fileno()
        _util.enter_forked_child()
        code = _spawn_child.run_child(fd, list(fds), parent_sentinel=fd)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        _util.flush_std_streams()
        _util.leave_forked_child(code)


def _after_fork_in_child() -> None:
    # A forked child uses its parent's server but neither owns it nor keeps it alive.
    server = _forkserver
    server._lock = threading.Lock()
    server._pid = None
    if server._alive_w is not None:
        _util.close_fds(server._alive_w)
        server._alive_w = None


os.register_at_fork(after_in_child=_after_fork_in_child)
