from __future__ import annotations

import os
import pickle
import sys
from typing import Any

import pytest
import shm_targets as t

from procpar_shm import shared_memory
from procpar_shm.shared_memory import ShareableList, SharedMemory

pytestmark = pytest.mark.timeout(60)


def _exists(name: str) -> bool:
    return os.path.exists(os.path.join("/dev/shm", name.lstrip("/")))


@pytest.fixture
def segment() -> Any:
    shm = SharedMemory(create=True, size=512)
    yield shm
    shm.close()
    if _exists(shm.name):
        shm.unlink()


def test_create_attach_close_unlink() -> None:
    name = f"procpar_test_{os.getpid()}"
    shm = SharedMemory(name, create=True, size=512)
    try:
        assert shm.name == name and shm.size >= 512 and len(shm.buf) >= shm.size
        assert repr(shm) == f"SharedMemory({name!r}, size={shm.size})"
        shm.buf[0] = 42
        other = SharedMemory(name)
        assert other.buf[0] == 42
        other.close()
        resized = SharedMemory(name, size=20 * shm.size)
        assert resized.size == shm.size  # the size is ignored when attaching
        resized.close()
        with pytest.raises(FileExistsError):
            SharedMemory(name, create=True, size=8)
    finally:
        shm.close()
        shm.unlink()
    assert not _exists(name)
    with pytest.raises(ValueError, match="closed"):
        shm.buf
    with pytest.raises(FileNotFoundError):
        SharedMemory(name)
    with pytest.raises(FileNotFoundError):
        shm.unlink()


def test_generated_names_use_the_stdlib_prefix(segment: SharedMemory) -> None:
    assert segment.name.startswith("psm_")
    assert len(segment._name or "") <= shared_memory._SHM_SAFE_NAME_LENGTH


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="'size' must be a positive integer"):
        SharedMemory(create=True, size=-2)
    with pytest.raises(ValueError, match="different from zero"):
        SharedMemory(create=True, size=0)
    with pytest.raises(ValueError, match="'name' can only be None if create=True"):
        SharedMemory()
    with pytest.raises(OSError, match="invalid shared memory name"):
        SharedMemory("a/b")


def test_pickles_by_name(segment: SharedMemory) -> None:
    segment.buf[:5] = b"hello"
    again = pickle.loads(pickle.dumps(segment))
    assert isinstance(again, SharedMemory) and again.name == segment.name
    assert bytes(again.buf[:5]) == b"hello"
    again.close()
    data = pickle.dumps(segment)
    segment.unlink()
    with pytest.raises(FileNotFoundError):
        pickle.loads(data)


@pytest.mark.parametrize("by_name", [True, False])
def test_children_write_into_a_segment(ctx: Any, segment: SharedMemory, by_name: bool) -> None:
    p = ctx.Process(target=t.write_shared_memory, args=(segment.name if by_name else segment, b"from child"))
    p.start()
    p.join(30)
    assert p.exitcode == 0
    assert bytes(segment.buf[:10]) == b"from child"


def test_the_stdlib_and_procpar_open_each_other_segments() -> None:
    from multiprocessing import shared_memory as stdlib

    ours = SharedMemory(create=True, size=64)
    ours.buf[:3] = b"abc"
    theirs = stdlib.SharedMemory(ours.name)
    assert bytes(theirs.buf[:3]) == b"abc"  # type: ignore[index]  # typeshed: the stdlib's buf may be None
    theirs.close()
    if sys.version_info < (3, 13):  # the stdlib < 3.13 registers attachments with its own tracker: undo it
        from multiprocessing import resource_tracker

        resource_tracker.unregister(theirs._name, "shared_memory")  # type: ignore[attr-defined]
    ours.close()
    ours.unlink()

    made = stdlib.SharedMemory(create=True, size=64)
    made.buf[:3] = b"xyz"  # type: ignore[index]  # typeshed: the stdlib's buf may be None
    attached = SharedMemory(made.name)
    assert bytes(attached.buf[:3]) == b"xyz"
    attached.close()
    made.close()
    made.unlink()


KILLED_CREATOR = """
import os, signal, sys
from procpar_shm.shared_memory import SharedMemory
tracked = SharedMemory(create=True, size=64)
kept = SharedMemory(create=True, size=64, track=False)
print(tracked.name, kept.name, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkilled_creator_leaves_only_untracked_segments(run_script: Any) -> None:
    import time

    result = run_script(KILLED_CREATOR)
    assert result.returncode == -9
    tracked, kept = result.stdout.split()
    try:
        deadline = time.monotonic() + 30
        # The tracker notices its program is gone when the pipe closes; it then unlinks what is registered.
        while _exists(tracked):
            assert time.monotonic() < deadline, "the resource tracker did not remove the segment"
            time.sleep(0.01)
        assert _exists(kept)
    finally:
        if _exists(kept):
            SharedMemory(kept).unlink()


ATTACH_ONLY = """
import sys
from procpar_shm.shared_memory import SharedMemory, ShareableList
shm = SharedMemory(sys.argv[1])
shm.buf[0] = 7
shm.close()
sl = ShareableList(name=sys.argv[2])
sl[0] = 99
sl.shm.close()
"""


def test_attaching_programs_neither_remove_nor_warn(run_script: Any, segment: SharedMemory) -> None:
    sl = ShareableList([1, 2])
    try:
        result = run_script(ATTACH_ONLY, segment.name, sl.shm.name)
        assert result.returncode == 0, result.stderr
        assert "leaked" not in result.stderr and result.stderr == ""
        assert _exists(segment.name) and segment.buf[0] == 7 and sl[0] == 99
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_shareable_list_basics() -> None:
    sl = ShareableList(["howdy", b"HoWdY", -273.154, 100, None, True, 42])
    try:
        assert sl.format == "8s8sdqxxxxxx?xxxxxxxx?q"
        assert list(sl) == ["howdy", b"HoWdY", -273.154, 100, None, True, 42]
        assert len(sl) == 7 and sl[-1] == 42
        assert sl.count(100) == 1 and sl.index(None) == 4
        with pytest.raises(ValueError, match="not in this container"):
            sl.index("absent")
        sl[2] = "str into a float slot"[:7]
        assert sl[2] == "str int"
        sl[0] = "hi"
        assert sl[0] == "hi"
        with pytest.raises(ValueError, match="exceeds available storage"):
            sl[0] = "much too long for its slot"
        with pytest.raises(IndexError):
            sl[7]
        with pytest.raises(IndexError):
            sl[-8] = 1
        with pytest.raises(TypeError, match="not list"):
            ShareableList([[1]])
        attached = ShareableList(name=sl.shm.name)
        assert list(attached) == list(sl)
        attached.shm.close()
        assert repr(sl).startswith("ShareableList(['hi', b'HoWdY'")
        clone = pickle.loads(pickle.dumps(sl))
        assert clone.shm.name == sl.shm.name
        clone.shm.close()
    finally:
        sl.shm.close()
        sl.shm.unlink()
    empty = ShareableList()
    assert len(empty) == 0
    empty.shm.close()
    empty.shm.unlink()


def test_shareable_list_layout_is_the_stdlibs(ctx: Any) -> None:
    from multiprocessing import shared_memory as stdlib

    items = ["a", b"bytes", 1.5, -7, None, False]
    ours = ShareableList(items)
    theirs = stdlib.ShareableList(name=ours.shm.name)
    try:
        assert list(theirs) == items and theirs.format == ours.format  # type: ignore[call-overload]
        theirs[3] = 8  # type: ignore[assignment]  # typeshed infers the stdlib list's items from the first
        assert ours[3] == 8
        p = ctx.Process(target=t.touch_list, args=(ours,))
        p.start()
        p.join(30)
        assert p.exitcode == 0
        assert ours[0] == "changed" and ours[1] == b"byby"
    finally:
        theirs.shm.close()
        if sys.version_info < (3, 13):
            from multiprocessing import resource_tracker

            resource_tracker.unregister(theirs.shm._name, "shared_memory")  # type: ignore[attr-defined]
        ours.shm.close()
        ours.shm.unlink()


def test_shareable_list_slots_fit_multibyte_strings() -> None:
    sl = ShareableList(["encodés", "ééééééé"])
    try:
        # The first fits the stdlib's slot (7 characters, 8 bytes); the second needs more than its 7 characters.
        assert sl.format == "8s16s"
        assert list(sl) == ["encodés", "ééééééé"]
    finally:
        sl.shm.close()
        sl.shm.unlink()


def test_attaching_registers_only_when_asked_with_track_true(tmp_path: Any) -> None:
    """Default: an attaching process never removes the segment at exit. ``track=True`` (3.13's): its tracker
    removes it, with the leak warning, when that process ends."""
    import subprocess
    import textwrap

    segment = SharedMemory(create=True, size=16)
    try:
        code = textwrap.dedent("""
            import sys
            from procpar_shm.shared_memory import SharedMemory
            track = {"default": None, "true": True, "false": False}[sys.argv[2]]
            mem = SharedMemory(name=sys.argv[1], track=track) if track is not None else SharedMemory(name=sys.argv[1])
            mem.close()
        """)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        for mode in ("default", "false"):
            out = subprocess.run([sys.executable, "-c", code, segment.name, mode], capture_output=True, text=True,
                                 timeout=60, env=env)
            assert out.returncode == 0, out.stderr
            assert "resource_tracker" not in out.stderr
            assert _exists(segment.name)
        out = subprocess.run([sys.executable, "-c", code, segment.name, "true"], capture_output=True, text=True,
                             timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert "resource_tracker: There appear to be 1 leaked shared_memory objects" in out.stderr
        assert not _exists(segment.name)
    finally:
        try:
            segment.unlink()
        except FileNotFoundError:
            pass
        segment.close()
