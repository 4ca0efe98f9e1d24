"""procpar-managers' own fixtures (the shared ones, ``ctx`` and ``run_script``, come from the pytest-procpar
plugin): a started SyncManager, and a remote manager's server in a process of its own."""

from __future__ import annotations

import os
from typing import Any

import manager_targets as t
import pytest

import procpar_core
from procpar_managers import SyncManager


@pytest.fixture
def manager(ctx: Any) -> Any:
    with SyncManager(ctx=ctx) as m:
        yield m


@pytest.fixture(params=["pickle", "xmlrpclib"])
def remote(request: pytest.FixtureRequest, ctx: Any) -> Any:
    authkey = os.urandom(16)
    reader, writer = procpar_core.Pipe(duplex=False)
    p = ctx.Process(target=t.serve_remote, args=(("127.0.0.1", 0), authkey, request.param, writer), daemon=True)
    p.start()
    address = reader.recv()
    yield address, authkey, request.param
    p.terminate()
    p.join(30)
