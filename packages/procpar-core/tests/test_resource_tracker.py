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


def test_the_tracker_finishes_its_sweep_before_it_exits(run_script: Any, tmp_path: Any) -> None:
    # All its writers gone at once (a program SIGKILLed soon after it started), the tracker used to exit in the
    # middle of its sweep of dead programs' leftovers: what the sweep was removing stayed, and so did the probe
    # file tempfile.gettempdir() makes in $TMPDIR. Here the sweep is made slow and the pipe is closed at once.
    marker = tmp_path / "sweep-finished"
    result = run_script(
        f"""
        import os, threading
        from procpar_core import _resource_tracker
        def slow_sweep():
            threading.Event().wait(0.5)  # stands for a sweep of a crowded /dev/shm
            open({str(marker)!r}, "w").close()
            return []
        _resource_tracker.sweep_dead_programs = slow_sweep
        r, w = os.pipe()
        os.close(w)
        _resource_tracker.main(r)
        print("finished" if os.path.exists({str(marker)!r}) else "cut short", flush=True)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "finished"


def test_bad_notices_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot track"):
        resource_tracker.register("x", "no-such-type")
    with pytest.raises(ValueError, match="too long"):
        resource_tracker.register("x" * 600, "noop")


def _gone_within(path: Any, timeout: float) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class TestDeferredTracker:
    """``ensure_running(defer=True)``: the pipe now, the tracker process later (a pool's first workers start
    without a new interpreter on their CPUs)."""

    def test_it_starts_at_the_first_notice_of_its_own_process(self, run_script: Any, tmp_path: Any) -> None:
        folder = tmp_path / "mine"
        result = run_script(f"""
            import os
            from procpar_core import resource_tracker
            tracker = resource_tracker._resource_tracker
            resource_tracker.ensure_running(defer=True)
            print("before", tracker._pid, tracker._fd is not None)
            os.mkdir({str(folder)!r})
            resource_tracker.register({str(folder)!r}, "folder")
            print("after", tracker._pid is not None)
            resource_tracker.unregister({str(folder)!r}, "folder")
        """)
        assert result.returncode == 0, result.stderr
        assert "before None True" in result.stdout
        assert "after True" in result.stdout
        assert folder.exists()  # unregistered: the tracker leaves it

    def test_one_never_needed_is_never_started(self, run_script: Any) -> None:
        result = run_script("""
            from procpar_core import resource_tracker
            tracker = resource_tracker._resource_tracker
            resource_tracker.ensure_running(defer=True)
            resource_tracker.start_deferred(only_if_written=True)
            print("pid", tracker._pid)
            tracker._stop()
            print("stopped", tracker._fd, tracker._deferred_r)
        """)
        assert result.returncode == 0, result.stderr
        assert "pid None" in result.stdout
        assert "stopped None None" in result.stdout

    @pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
    def test_what_a_child_left_is_cleaned_when_the_program_exits_first(self, run_script: Any, tmp_path: Any,
                                                                       method: str) -> None:
        folder = tmp_path / "left-by-child"
        result = run_script(f"""
            import os, procpar_core
            from procpar_core import resource_tracker
            def child(path):
                os.mkdir(path)
                resource_tracker.register(path, "folder")
            if __name__ == "__main__":
                resource_tracker.ensure_running(defer=True)
                p = procpar_core.get_context({method!r}).Process(target=child, args=({str(folder)!r},))
                p.start(); p.join(30)
                print("exit code", p.exitcode)
        """)
        assert result.returncode == 0, result.stderr
        assert "exit code 0" in result.stdout
        # Started at exit (or by its timer) whichever came first, the tracker removes it, then exits.
        assert _gone_within(folder, 30), "the deferred tracker did not clean up what the child left"
