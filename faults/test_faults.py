"""The fault suite as tests (nox -s faults): seeded random deaths and Ctrl-C under every start method; procpar
must never hang, duplicate, lose more than what the dead held, or leave files and processes behind."""

from __future__ import annotations

import os
from typing import Any

import pytest
import run

SEED = int(os.environ.get("PROCPAR_FAULT_SEED", "2026"))
TRIALS = int(os.environ.get("PROCPAR_FAULT_TRIALS", "3"))
METHODS = ["fork", "spawn", "forkserver"]

pytestmark = pytest.mark.timeout(600)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scenario", run.SCENARIOS)
def test_no_hang_no_loss_no_leftovers(scenario: str, method: str) -> None:
    failures: list[dict[str, Any]] = []
    for trial in range(TRIALS):
        result = run.run_trial(scenario, "procpar", method, SEED * 1000 + trial)
        bad = (result["hang"] or result["dup"] or result["lost"] > result["excused"]
               or result["leftover_files"] or result["leftover_processes"]
               or result.get("seconds_to_exit", 0) > 5 or "error" in result)
        if bad:
            failures.append(result)
    assert not failures, failures
