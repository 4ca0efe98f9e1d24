from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from procpar_core import resource_tracker

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_registered_folder_is_removed_after_sigkill(run_script: Any, tmp_path: Any, method: str) -> None:
    folder = tmp_path / "left-behind"
    kept = tmp_path / "unregistered"
    result = run_script(
        f"""
        import os, signal, procpar_core
        from procpar_core import resource_tracker
        def child(path):
            os.mkdir(path)
            resource_tracker.register(path, "folder")
        if __name__ == "__main__":
            resource_tracker.ensure_running()
            os.mkdir({str(kept)!r})
            resource_tracker.register({str(kept)!r}, "folder")
            resource_tracker.unregister({str(kept)!r}, "folder")
            p = procpar_core.get_context({method!r}).Process(target=child, args=({str(folder)!r},))
            p.start(); p.join(30)
            print("tracker", resource_tracker._resource_tracker._pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    pid = int(result.stdout.split("tracker ")[1].split()[0])
    # The tracker exits once it has cleaned up: wait on a pidfd of it (it is not our child).
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pass  # already gone
    else:
        from procpar_core.connection import wait

        assert wait([pidfd], timeout=30), "the resource tracker did not exit"
        os.close(pidfd)
    assert not folder.exists()
    assert kept.exists()


def test_bad_notices_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot track"):
        resource_tracker.register("x", "no-such-type")
    with pytest.raises(ValueError, match="too long"):
        resource_tracker.register("x" * 600, "noop")
