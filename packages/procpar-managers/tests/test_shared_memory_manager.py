"""SharedMemoryManager: its blocks and lists are unlinked at shutdown, with nothing left for the tracker."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.timeout(90)


def test_shared_memory_manager(ctx: Any) -> None:
    from procpar_managers import SharedMemoryManager
    from procpar_shm.shared_memory import ShareableList, SharedMemory

    smm = SharedMemoryManager(ctx=ctx)
    with pytest.raises(ValueError, match="not started"):
        smm.SharedMemory(size=9)
    smm.start()
    lists = [smm.ShareableList(range(i)) for i in range(3, 6)]
    blocks = [smm.SharedMemory(size=n) for n in (32, 64)]
    assert len(ShareableList(name=lists[0].shm.name)) == 3
    twin = SharedMemory(name=blocks[0].name)
    twin.buf[0] = 7
    assert blocks[0].buf[0] == 7
    twin.close()
    names = [sl.shm.name for sl in lists] + [b.name for b in blocks]
    for sl in lists:
        sl.shm.close()
    for b in blocks:
        b.close()
    smm.shutdown()
    for name in names:
        with pytest.raises(FileNotFoundError):
            SharedMemory(name=name)
    with SharedMemoryManager(ctx=ctx) as smm2:
        held = smm2.ShareableList("howdy").shm.name
    with pytest.raises(FileNotFoundError):
        ShareableList(name=held)


def test_shared_memory_manager_warns_of_nothing(run_script: Any, ctx: Any) -> None:
    out = run_script(f"""
        import procpar_core
        from procpar_managers import SharedMemoryManager
        if __name__ == "__main__":
            smm = SharedMemoryManager(ctx=procpar_core.get_context({ctx.get_start_method()!r}))
            smm.start()
            sl = smm.ShareableList(range(10))
            smm.shutdown()
            print("ok")
    """)
    assert out.returncode == 0 and out.stdout.strip() == "ok"
    assert out.stderr == ""


def test_a_shared_memory_manager_leaves_its_tracker_nothing_to_warn_about(run_script: Any) -> None:
    """bpo-36867: segments the manager's server removed at shutdown are not reported as leaked."""
    result = run_script("""
        from procpar_managers import SharedMemoryManager

        smm = SharedMemoryManager()
        smm.start()
        sl = smm.ShareableList(range(10))
        smm.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
