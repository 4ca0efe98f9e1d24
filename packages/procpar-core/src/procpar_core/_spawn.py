"""What a spawn or forkserver child needs to become a copy of its parent: preparation data and payload.

The payload (docs/design.md section 4) is ``!QQ`` (length of the preparation pickle, length of the process
pickle) followed by both pickles. The preparation data holds builtins only, so it can be unpickled before
``sys.path`` and ``__main__`` are in place.
"""

from __future__ import annotations

import os
import sys
from struct import Struct

from . import _log, _process, _serializer, _util
from ._reduction import set_spawning_popen

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs a spawn child ~10 ms
if TYPE_CHECKING:
    from typing import Any

    from ._reduction import SpawningPopen

__all__ = ["get_executable", "set_executable", "get_preparation_data", "build_payload", "interpreter_args",
           "add_child_startup"]

# "module:function" names that every spawn and forkserver child calls first, before it imports anything of its
# parent's (its main module included); fork children inherit their effect. procpar's drop-in runner puts its
# ``multiprocessing`` alias here.
_child_startup: list[str] = []


def add_child_startup(ref: str) -> None:
    """Have every spawn and forkserver child started from now on (and their own children) call ``ref``, a
    ``"module:function"`` name, first thing: before its parent's main module is imported."""
    module, sep, function = ref.partition(":")
    if not sep or not module or not function.isidentifier():
        raise ValueError(f"expected 'module:function', not {ref!r}")
    if ref not in _child_startup:
        _child_startup.append(ref)

PAYLOAD_HEADER = Struct("!QQ")

_executable: str | None = None


def get_executable() -> str:
    """The interpreter used to start spawn children and the forkserver."""
    if _executable is not None:
        return _executable
    if sys.executable:
        return sys.executable
    raise RuntimeError(
        "sys.executable is empty, so procpar cannot start spawn children; call procpar.set_executable(path)"
    )


def set_executable(executable: Any) -> None:
    """Use ``executable`` (a path) as the interpreter of spawn children and the forkserver."""
    global _executable
    _executable = os.fsdecode(executable)


def interpreter_args() -> list[str]:
    """The command-line flags that make a new interpreter behave like this one."""
    flags = sys.flags
    args: list[str] = []
    for attr, flag in (
        ("debug", "-d"),
        ("dont_write_bytecode", "-B"),
        ("no_user_site", "-s"),
        ("no_site", "-S"),
        ("ignore_environment", "-E"),
        ("verbose", "-v"),
        ("bytes_warning", "-b"),
        ("quiet", "-q"),
    ):
        value = getattr(flags, attr, 0)
        if value > 0:
            args.append("-" + flag[1] * value)
    if getattr(flags, "isolated", 0):
        args = [a for a in args if a not in ("-s", "-E")] + ["-I"]
    if flags.optimize > 0:
        args.append("-" + "O" * flags.optimize)
    if getattr(flags, "safe_path", False) and "-I" not in args:
        args.append("-P")
    for opt in sys.warnoptions:
        args.append("-W" + opt)
    xoptions = getattr(sys, "_xoptions", {})
    for key, value in xoptions.items():
        args.extend(["-X", key if value is True else f"{key}={value}"])
    if getattr(flags, "dev_mode", False) and "dev" not in xoptions:
        args.extend(["-X", "dev"])
    if getattr(flags, "utf8_mode", 0) == 1 and "utf8" not in xoptions:
        args.extend(["-X", "utf8"])
    return args


def _main_module_spec() -> dict[str, str]:
    main = sys.modules.get("__main__")
    if main is None or getattr(sys, "frozen", False):
        return {}
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        name = spec.name
        if name == "__main__" or name.endswith(".__main__"):
            # A package run with -m, a directory or a zip file: their __main__.py runs its main-only code
            # unconditionally, so children never re-run it (as the stdlib does).
            return {}
        if name != "__mp_main__":
            return {"init_main_from_name": name}  # ``python -m package.module``: re-import by name
    path = getattr(main, "__file__", None)
    if path is None:
        return {}  # interactive session or -c: nothing to re-run
    if not os.path.isabs(path) and _process.ORIGINAL_DIR is not None:
        path = os.path.join(_process.ORIGINAL_DIR, path)
    return {"init_main_from_path": os.path.normpath(path)}


def get_preparation_data(name: str, start_method: str) -> dict[str, Any]:
    """Everything a fresh interpreter needs before it can unpickle the process object."""
    from ._context import _default_state

    current = _process.current_process()
    data: dict[str, Any] = {
        "name": name,
        "authkey": bytes(current.authkey),
        "sys_path": list(sys.path),
        "sys_argv": list(sys.argv),
        "dir": os.getcwd(),
        "orig_dir": _process.ORIGINAL_DIR,
        "start_method": _default_state.method or start_method,
        "serializer": _serializer.get_serializer(),
        "log": _log.current_config(),
        "tempdir": current._config.get("tempdir"),
        "program": _util.program_identity(),
    }
    if _child_startup:
        data["startup"] = list(_child_startup)
    data.update(_main_module_spec())
    return data


def _check_not_bootstrapping() -> None:
    child = sys.modules.get("procpar_core._spawn_child")
    if child is not None and child.inheriting:
        raise RuntimeError(
            "A new process was started while this process was still importing its parent's main module.\n"
            "The main module probably starts processes when it is imported. Guard that code:\n\n"
            "    if __name__ == '__main__':\n"
            "        freeze_support()  # only needed if the program is frozen into an executable\n"
            "        ...\n\n"
            "so that spawn and forkserver children can import the module without running it."
        )


def build_payload(popen: SpawningPopen, process_obj: Any, start_method: str) -> bytes:
    """Pickle the preparation data and the process object, with ``popen`` collecting the fds to pass."""
    from ._reduction import dumps as pickle_dumps

    _check_not_bootstrapping()
    data = get_preparation_data(process_obj.name, start_method)
    tracker = sys.modules.get("procpar_core._resource_tracker")
    if tracker is not None and tracker._resource_tracker._fd is not None:
        # The child reports to the same tracker: its write end travels like any inherited fd.
        data["tracker_fd"] = popen.duplicate_for_child(tracker._resource_tracker._fd)
    prep = pickle_dumps(data)
    # Objects of the stdlib built on a procpar context (concurrent.futures' queues given
    # mp_context=procpar.get_context(...), say) pickle through the stdlib's reducers, which ask the stdlib's
    # context for the spawning popen: when that module is loaded, it is told too. Nothing is imported.
    stdlib_context = _util.stdlib_module("context")
    set_spawning_popen(popen)
    if stdlib_context is not None:
        stdlib_context.set_spawning_popen(popen)
    try:
        obj = _serializer.serialize(process_obj)
    finally:
        set_spawning_popen(None)
        if stdlib_context is not None:
            stdlib_context.set_spawning_popen(None)
    return b"".join((PAYLOAD_HEADER.pack(len(prep), len(obj)), prep, obj))
