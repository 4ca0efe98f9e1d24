"""``BaseManager``: starts (or connects to) a server and makes proxies to the objects it creates there."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, ClassVar, NoReturn

from procpar_core import ProcessError, current_process, get_context, parent_process, util
from procpar_core.connection import Pipe

from . import _connections
from ._protocol import ManagerNotStartedError, Token, as_authkey, check_serializer, connect, dispatch
from ._proxy import AutoProxy, register_proxytype
from ._server import Server

if TYPE_CHECKING:
    from collections.abc import Iterable

    from procpar_core.connection import Connection
    from procpar_core.context import BaseContext
    from procpar_core.process import BaseProcess

    from ._proxy import BaseProxy
    from ._server import ServerRegistry
    from ._typing import Address, Function, ProxyFactory

__all__ = ["BaseManager", "State"]

if TYPE_CHECKING:
    from typing import TypeVar

    _Manager = TypeVar("_Manager", bound="BaseManager")


class State:
    """Where a manager is in its life: ``INITIAL``, ``STARTED`` or ``SHUTDOWN`` (in ``.value``)."""

    __slots__ = ("value",)
    INITIAL = 0
    STARTED = 1
    SHUTDOWN = 2

    def __init__(self) -> None:
        self.value = State.INITIAL


# typeid -> (callable, exposed, method_to_typeid, proxytype)
Registry = dict[str, tuple["Function | None", "tuple[str, ...] | None", "dict[str, str] | None", "ProxyFactory"]]


class BaseManager:
    """Runs a server process holding shared objects, and makes proxies to them.

    ``address``: where the server listens (None: a fresh private address). ``authkey``: the key every
    connection must prove (None: this process's ``authkey``). ``serializer``: ``'pickle'`` or ``'xmlrpclib'``.
    ``ctx``: the context whose ``Process`` runs the server. ``shutdown_timeout``: how long ``shutdown()``
    waits for the server to exit before terminating it.
    """

    _registry: ClassVar[Registry] = {}
    _Server: ClassVar[type[Server]] = Server

    def __init__(self, address: Address | None = None, authkey: bytes | None = None, serializer: str = "pickle",
                 ctx: BaseContext | None = None, *, shutdown_timeout: float = 1.0) -> None:
        check_serializer(serializer)
        if authkey is None:
            authkey = current_process().authkey
        self._address = address
        self._authkey: bytes = as_authkey(authkey) or b""
        self._state = State()
        self._serializer = serializer
        self._ctx = ctx if ctx is not None else get_context()
        self._shutdown_timeout = shutdown_timeout
        self._process: BaseProcess | None = None
        self._shutdown_finalizer: util.Finalize | None = None

    # -- life -----------------------------------------------------------------------------------------------

    def _server_registry(self) -> ServerRegistry:
        return {typeid: entry[:3] for typeid, entry in self._registry.items()}

    def get_server(self) -> Server:
        """A ``Server`` for this manager's registry, to run in this process with ``serve_forever()``."""
        self._check_initial()
        return self._Server(self._server_registry(), self._address, self._authkey, self._serializer)

    def connect(self) -> None:
        """Use the server already running at ``address`` (started elsewhere, with the same authkey)."""
        if self._address is None:
            raise ValueError("connect() needs the address of a running manager: BaseManager(address=...)")
        conn = connect(self._address, self._authkey, self._serializer)
        try:
            dispatch(conn, None, "dummy")
        finally:
            conn.close()
        _connections.remember_authkey(self._address, self._authkey)
        self._state.value = State.STARTED

    def start(self, initializer: Function | None = None, initargs: tuple[object, ...] = ()) -> None:
        """Start the server in a new process; it runs ``initializer(*initargs)`` first."""
        self._check_initial()
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        reader, writer = Pipe(duplex=False)
        self._process = process = self._ctx.Process(
            target=type(self)._run_server,
            args=(self._server_registry(), self._address, self._authkey, self._serializer, writer, initializer,
                  initargs),
        )
        ident = ":".join(str(i) for i in process._identity)
        process.name = f"{type(self).__name__}-{ident}"
        self._prepare_start()
        process.start()
        writer.close()
        try:
            address = reader.recv()
        except EOFError:
            process.join(self._shutdown_timeout)
            raise ProcessError(f"the manager's server process failed to start (exit code "
                               f"{process.exitcode}); see its error output above") from None
        finally:
            reader.close()
        self._address = address
        _connections.remember_authkey(self._address, self._authkey)
        self._state.value = State.STARTED
        self._shutdown_finalizer = util.Finalize(
            self, type(self)._finalize_manager,
            args=(process, address, self._authkey, self._state, self._serializer,
                  self._shutdown_timeout),
            exitpriority=0,
        )

    def _prepare_start(self) -> None:
        """Runs in this process just before the server process starts."""

    @classmethod
    def _run_server(cls, registry: ServerRegistry, address: Address | None, authkey: bytes, serializer: str,
                    writer: Connection, initializer: Function | None = None, initargs: tuple[object, ...] = ()
                    ) -> None:
        # Ctrl-C reaches every process of the terminal's group; the program decides when its manager stops.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if initializer is not None:
            initializer(*initargs)
        server = cls._Server(registry, address, authkey, serializer)
        writer.send(server.address)
        writer.close()
        util.info("manager serving at %r", server.address)
        parent = parent_process()
        sentinel = getattr(parent, "_sentinel", None) if parent is not None else None
        server.serve_forever(parent_sentinel=sentinel)

    def _check_initial(self) -> None:
        if self._state.value == State.STARTED:
            raise ProcessError("Already started server")
        if self._state.value == State.SHUTDOWN:
            raise ProcessError("Manager has shut down")

    def _check_started(self) -> None:
        if self._state.value != State.STARTED:
            what = "has shut down" if self._state.value == State.SHUTDOWN else "is not started"
            raise ManagerNotStartedError(f"the manager {what}: call start() or connect() first, or use it in a "
                                         f"'with' block")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the server process to exit."""
        if self._process is not None:
            self._process.join(timeout)

    def shutdown(self) -> None:
        """Stop the server process started by ``start()`` (calling it again does nothing)."""
        if self._shutdown_finalizer is not None:
            self._shutdown_finalizer()

    @staticmethod
    def _finalize_manager(process: BaseProcess, address: Address, authkey: bytes, state: State, serializer: str,
                          shutdown_timeout: float) -> None:
        if process.is_alive():
            util.info("sending shutdown message to manager")
            try:
                conn = connect(address, authkey, serializer)
                try:
                    dispatch(conn, None, "shutdown")
                finally:
                    conn.close()
            except Exception as exc:
                util.debug("shutdown message not delivered: %s", exc)
            process.join(timeout=shutdown_timeout)
            if process.is_alive():
                util.info("manager still alive: terminating it")
                process.terminate()
                process.join(timeout=shutdown_timeout)
                if process.is_alive():
                    util.info("manager still alive after terminate: killing it")
                    process.kill()
                    process.join()
        state.value = State.SHUTDOWN
        _connections.forget_address(address)

    @property
    def address(self) -> Address | None:
        """The address the server listens on."""
        return self._address

    def __enter__(self: _Manager) -> _Manager:
        if self._state.value == State.INITIAL:
            self.start()
        if self._state.value != State.STARTED:
            raise ProcessError("Unable to start server" if self._state.value == State.INITIAL
                               else "Manager has shut down")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} cannot be pickled: pass the proxies it made, or its address "
                        f"and authkey to connect() to it")

    # -- shared objects ---------------------------------------------------------------------------------

    def _create(self, typeid: str, /, *args: object, **kwds: object) -> tuple[Token, tuple[str, ...]]:
        """Create a ``typeid`` object in the server; the returned token carries one reference."""
        address = self._started_address()
        reply = _connections.control_call(address, self._serializer, self._authkey, "create", (typeid, *args), kwds)
        if not isinstance(reply, (tuple, list)) or len(reply) != 2:
            raise TypeError(f"the manager answered create({typeid!r}) with {reply!r:.200}, not (ident, exposed)")
        ident, exposed = reply
        return Token(typeid, address, str(ident)), tuple(str(name) for name in exposed)

    def _started_address(self) -> Address:
        self._check_started()
        assert self._address is not None  # known once started or connected
        return self._address

    def _debug_info(self) -> str:
        return str(_connections.control_call(self._started_address(), self._serializer, self._authkey, "debug_info"))

    def _number_of_objects(self) -> int:
        address = self._started_address()
        _connections.flush_decrefs()
        count = _connections.control_call(address, self._serializer, self._authkey, "number_of_objects")
        assert isinstance(count, int)
        return count

    @classmethod
    def register(cls, typeid: str, callable: Function | None = None,
                 proxytype: ProxyFactory | None = None, exposed: Iterable[str] | None = None,
                 method_to_typeid: dict[str, str] | None = None, create_method: bool = True) -> None:
        """Make ``typeid`` a type of shared object this manager class serves (and, by default, a method)."""
        if not isinstance(typeid, str):
            raise TypeError(f"typeid must be a str, not {type(typeid).__name__}")
        if "_registry" not in cls.__dict__:
            cls._registry = dict(cls._registry)
        if proxytype is None:
            proxytype = AutoProxy
        exposed = exposed or getattr(proxytype, "_exposed_", None)
        method_to_typeid = method_to_typeid or getattr(proxytype, "_method_to_typeid_", None)
        if method_to_typeid:
            for key, value in method_to_typeid.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise TypeError(f"method_to_typeid must map method names to type ids (str), "
                                    f"got {key!r}: {value!r}")
        cls._registry[typeid] = (callable, tuple(exposed) if exposed is not None else None,
                                 dict(method_to_typeid) if method_to_typeid else None, proxytype)
        register_proxytype(typeid, proxytype)
        if create_method:
            factory_proxytype = proxytype

            def create(self: BaseManager, /, *args: object, **kwds: object) -> BaseProxy:
                util.debug("requesting creation of a shared %r object", typeid)
                token, exp = self._create(typeid, *args, **kwds)
                proxy = factory_proxytype(token, self._serializer, manager=self, authkey=self._authkey,
                                          exposed=exp, incref=False)
                proxy._own()
                return proxy

            create.__name__ = typeid
            create.__qualname__ = f"{cls.__qualname__}.{typeid}"
            setattr(cls, typeid, create)

