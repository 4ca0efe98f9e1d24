"""The first code a spawn or forkserver child runs.

Imports nothing beyond ``os``, ``sys`` and ``_pickle`` until the process object is unpickled: every module
imported here is paid for by every spawned child (docs/design.md section 2).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any

# True while the child re-runs the parent's main module and unpickles the process object: a program that
# starts processes at import time (no ``if __name__ == '__main__':`` guard) must fail, not recurse.
inheriting = False

_PAYLOAD_HEADER_SIZE = 16


def read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("the parent closed the pipe before sending the whole process object")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def prepare(data: dict[str, Any]) -> None:
    """Make this fresh interpreter look like the parent: paths, argv, cwd, authkey, logging, ``__main__``."""
    from . import _process

    if "sys_path" in data:
        sys.path[:] = data["sys_path"]
    if "sys_argv" in data:
        sys.argv[:] = data["sys_argv"]
    if data.get("dir"):
        try:
            os.chdir(data["dir"])
        except OSError:
            pass
    if "orig_dir" in data:
        _process.ORIGINAL_DIR = data["orig_dir"]
    current = _process.current_process()
    if "name" in data:
        current.name = data["name"]
    if "authkey" in data:
        current.authkey = data["authkey"]
    if data.get("tempdir"):
        current._config["tempdir"] = data["tempdir"]
    if data.get("program"):
        from . import _util

        _util._adopt_program_identity(data["program"])
    if data.get("log") is not None:
        from . import _log

        _log.apply_config(data["log"])
    if data.get("serializer", "pickle") != "pickle":
        from . import _serializer

        _serializer.set_serializer(data["serializer"])
    if "tracker_fd" in data:
        from . import _reduction, _resource_tracker

        _resource_tracker._resource_tracker._adopt(_reduction._inherited_fds[data["tracker_fd"]])
    for ref in data.get("startup", ()):
        import importlib

        from . import _spawn

        module, _, function = ref.partition(":")
        getattr(importlib.import_module(module), function)()
        _spawn.add_child_startup(ref)  # this child's own children call it too
    if "start_method" in data:
        from ._context import _force_start_method

        _force_start_method(data["start_method"])
    if "init_main_from_name" in data:
        _fixup_main_from_name(data["init_main_from_name"])
    elif "init_main_from_path" in data:
        _fixup_main_from_path(data["init_main_from_path"])


def _install_main(module: Any) -> None:
    sys.modules["__main__"] = sys.modules["__mp_main__"] = module


def _fixup_main_from_name(name: str) -> None:
    current = sys.modules.get("__main__")
    spec = getattr(current, "__spec__", None)
    if name == "__main__" or (spec is not None and spec.name == name):
        return
    import runpy
    import types

    main = types.ModuleType("__mp_main__")
    main.__dict__.update(runpy.run_module(name, run_name="__mp_main__", alter_sys=True))
    _install_main(main)


def _fixup_main_from_path(path: str) -> None:
    current = sys.modules.get("__main__")
    if current is not None and getattr(current, "__file__", None) == path:
        return
    if os.path.splitext(os.path.basename(path))[0] == "ipython":
        return  # IPython's launcher script: nothing of the user's to re-run
    import types

    main = types.ModuleType("__mp_main__")
    main.__file__ = path
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    if path.endswith(".py") and os.path.isfile(path):
        # Executed in place, registered first: classes defined in the script pickle by reference while
        # it runs, and functions keep the module's real globals.
        with open(path, "rb") as f:
            source = f.read()
        _install_main(main)
        try:
            exec(compile(source, path, "exec"), main.__dict__)
        except BaseException:
            # Leave no half-run module behind as __main__: a later attempt must run it again.
            sys.modules.pop("__mp_main__", None)
            if current is not None:
                sys.modules["__main__"] = current
            raise
    else:
        import runpy  # a zip application or a directory with __main__.py

        main.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
        _install_main(main)


def _load_payload(fd: int) -> Any:
    """Read and apply the preparation data, then unpickle the process object."""
    global inheriting
    from _pickle import loads

    header = read_exact(fd, _PAYLOAD_HEADER_SIZE)
    prep_len = int.from_bytes(header[:8], "big")
    obj_len = int.from_bytes(header[8:], "big")
    inheriting = True
    try:
        prepare(loads(read_exact(fd, prep_len)))
        return loads(read_exact(fd, obj_len))
    finally:
        inheriting = False


def main() -> None:
    """Entry point of a spawn child: ``--procpar-spawn DATA_FD LIVENESS_FD [FD ...]`` (LIVENESS_FD -1: none)."""
    argv = sys.argv
    try:
        start = argv.index("--procpar-spawn")
    except ValueError:
        raise SystemExit("procpar spawn child started without --procpar-spawn arguments") from None
    numbers = [int(x) for x in argv[start + 1 :]]
    data_fd, liveness_fd, passed = numbers[0], numbers[1], numbers[2:]
    exitcode = run_child(data_fd, passed, parent_sentinel=data_fd,
                         liveness_fd=liveness_fd if liveness_fd >= 0 else None)
    sys.exit(exitcode)


def run_child(data_fd: int, passed_fds: list[int], parent_sentinel: int | None,
              liveness_fd: int | None = None) -> int:
    from . import _reduction

    _reduction._inherited_fds[:] = passed_fds
    if liveness_fd is not None:
        from . import _popen_fork

        _popen_fork._liveness_fds[:] = [liveness_fd]
    process_obj = _load_payload(data_fd)
    return int(process_obj._bootstrap(parent_sentinel=parent_sentinel))
