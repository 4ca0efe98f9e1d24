"""procpar-pool's behaviour tests (tools/pytest-procpar), run on a LocalCluster and on a separate scheduler and
workers: the same API, the same semantics, whatever engine runs the pool."""

from pytest_procpar.pool_behaviour import *  # noqa: F403
