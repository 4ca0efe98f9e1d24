"""procpar-pool's own fixture (the shared ones, ``ctx`` and ``run_script``, come from the pytest-procpar
plugin): a started Pool(2) of each start method."""

from __future__ import annotations

from typing import Any

import pytest

from procpar_pool import Pool


@pytest.fixture
def pool(ctx: Any) -> Any:
    with Pool(2, context=ctx) as p:
        yield p
