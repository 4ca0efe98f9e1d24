"""procpar's manager client against a server of the stdlib's, and the stdlib's server semantics procpar keeps."""

from __future__ import annotations

import multiprocessing.managers as stdlib_managers
import queue
from typing import TYPE_CHECKING, Any, Iterator

import manager_targets as t
import pytest

from procpar_core import AuthenticationError
from procpar_managers import BaseManager, RemoteError
from procpar_managers.managers import DictProxy, ListProxy

pytestmark = pytest.mark.timeout(120)

_QUEUE: queue.Queue[Any] = queue.Queue()


def _get_queue() -> queue.Queue[Any]:
    return _QUEUE


class StdlibServer(stdlib_managers.BaseManager):
    pass


StdlibServer.register("get_queue", callable=_get_queue)
StdlibServer.register("dict", dict, stdlib_managers.DictProxy)
StdlibServer.register("list", list, stdlib_managers.ListProxy)


class Client(BaseManager):
    if TYPE_CHECKING:  # made by register() below
        def get_queue(self) -> Any: ...
        def dict(self) -> Any: ...
        def list(self, *args: Any) -> Any: ...


Client.register("get_queue")
Client.register("dict", proxytype=DictProxy)
Client.register("list", proxytype=ListProxy)


@pytest.fixture
def stdlib_server() -> Iterator[Any]:
    server = StdlibServer(address=("127.0.0.1", 0), authkey=b"interop")
    server.start()
    try:
        yield server
    finally:
        server.shutdown()


def test_a_procpar_client_talks_to_a_stdlib_server(stdlib_server: Any) -> None:
    client = Client(address=stdlib_server.address, authkey=b"interop")
    client.connect()
    q = client.get_queue()
    q.put(5)
    assert q.get(timeout=30) == 5
    d = client.dict()
    d["a"] = 1
    assert d["a"] == 1 and d.copy() == {"a": 1}
    lists = [client.list([i]) for i in range(5)]
    assert [x[0] for x in lists] == list(range(5))
    before = stdlib_server._number_of_objects()
    del lists  # decrefs reach the stdlib server, one connection each, as its own client sends them
    assert stdlib_server._number_of_objects() == before - 5


def test_a_procpar_client_with_a_wrong_authkey_is_refused_by_a_stdlib_server(stdlib_server: Any) -> None:
    client = Client(address=stdlib_server.address, authkey=b"wrong")
    with pytest.raises(AuthenticationError):
        client.connect()


class ThingManager(BaseManager):
    pass


ThingManager.register("Thing", t.Thing, exposed=("a", "child"), method_to_typeid={"child": "Wrapped"})
ThingManager.register("Wrapped", t.wrap_list, create_method=False)


def test_method_to_typeid_calls_the_registered_callable_on_the_result(ctx: Any) -> None:
    with ThingManager(ctx=ctx) as manager:
        thing = manager.Thing()  # type: ignore[attr-defined]
        assert thing.a() == 1
        wrapped = thing.child()
        assert wrapped._getvalue() == [1, 2, "wrapped"]  # as the stdlib's server: wrap_list(result)


def test_an_unexposed_method_is_a_remote_error_naming_it(ctx: Any) -> None:
    with ThingManager(ctx=ctx) as manager:
        thing = manager.Thing()  # type: ignore[attr-defined]
        with pytest.raises(RemoteError, match="hidden"):
            thing._callmethod("hidden")
