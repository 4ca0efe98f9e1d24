"""The pool's behaviour shared with every engine (pytest_procpar.pool_behaviour), on process pools of each
start method (the ``pools`` and ``pool`` fixtures of conftest.py)."""

from pytest_procpar.pool_behaviour import *  # noqa: F403
