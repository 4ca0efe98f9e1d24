"""``python -m procpar run script.py [args...]`` / ``python -m procpar run -m module [args...]``.

Runs an unmodified program with ``multiprocessing`` and ``ProcessPoolExecutor`` resolved to procpar (see
``procpar.install``), with the ``sys.argv``, ``sys.path[0]``, ``__main__`` and exit status it would have if
started as ``python script.py`` or ``python -m module``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["main"]

USAGE = """\
usage: python -m procpar run script.py [args...]
       python -m procpar run -m module [args...]

Run a program written for multiprocessing on procpar, unchanged: multiprocessing (every submodule) and
concurrent.futures.ProcessPoolExecutor resolve to procpar in the program and in every process it starts.
"""


def _fail(message: str) -> int:
    sys.stderr.write(f"python -m procpar: {message}\n\n{USAGE}")
    return 2


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    if args[0] != "run":
        return _fail(f"unknown command {args[0]!r} (the only command is 'run')")
    args = args[1:]
    if not args:
        return _fail("'run' needs a script or -m module")
    from ._install import install

    if args[0] == "-m":
        if len(args) < 2:
            return _fail("-m needs a module name")
        install()
        # python -m puts the working directory first on sys.path; so did python -m procpar: kept.
        spec, code = _module_code(args[1])
        sys.argv[:] = [spec.origin or args[1], *args[2:]]
        _run_as_main(code, spec.origin, spec)
        return 0
    script, rest = args[0], args[1:]
    if not os.path.exists(script):
        return _fail(f"can't open file {script!r}: no such file or directory")
    install()
    sys.argv[:] = [script, *rest]
    import zipfile

    if not os.path.isfile(script) or zipfile.is_zipfile(script):
        import runpy  # a directory or zip file with a __main__.py: children never re-run it

        sys.path[0] = os.path.abspath(script)
        runpy.run_path(script, run_name="__main__")
        return 0
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as python script.py does
    with open(script, "rb") as f:
        source = f.read()
    _run_as_main(compile(source, script, "exec"), script, None)
    return 0


def _module_code(name: str) -> tuple[Any, Any]:
    """The spec and code object ``python -m name`` would run (a package runs its ``__main__``)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        raise SystemExit(f"python -m procpar: error while finding module specification for {name!r} "
                         f"({type(exc).__name__}: {exc})") from None
    if spec is None or spec.loader is None:
        raise SystemExit(f"python -m procpar: no module named {name}")
    if spec.submodule_search_locations is not None:
        return _module_code(name + ".__main__")
    code = spec.loader.get_code(spec.name)  # type: ignore[attr-defined]
    if code is None:
        raise SystemExit(f"python -m procpar: no code object available for {name}")
    return spec, code


def _run_as_main(code: Any, path: str | None, spec: Any) -> None:
    """Run ``code`` as the program's ``__main__`` module, registered before it runs (and as
    ``__mp_main__``, the name children give their copy of it), so that objects of classes it defines pickle
    and unpickle by reference in every process, as with ``python script.py``."""
    import types

    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__spec__ = spec
    main.__loader__ = spec.loader if spec is not None else None
    main.__package__ = spec.parent if spec is not None else None
    main.__builtins__ = __builtins__  # type: ignore[attr-defined]
    main.__cached__ = None  # type: ignore[attr-defined]
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main
    exec(code, main.__dict__)


if __name__ == "__main__":
    sys.exit(main())
