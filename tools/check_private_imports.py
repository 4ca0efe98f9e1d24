"""Fail when a package's shipped code imports another procpar package's private module or name.

    python tools/check_private_imports.py

Packages meet only through each other's public modules (docs/design.md section 1): ``procpar_sync._wire`` or
``from procpar_core import _serializer`` in another package is refused; the public faces (``lowlevel``
modules included) are fine. A package's own private modules are its business. Run by ``nox -s lint``.
"""

from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = {"procpar_core", "procpar_sync", "procpar_shm", "procpar_managers", "procpar_pool", "procpar",
            "procpar_dask"}


def _private(module: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in module.split(".")[1:])


def problems() -> list[str]:
    found = []
    for source in sorted(ROOT.glob("packages/*/src/*/**/*.py")):
        owner = source.relative_to(ROOT).parts[3]
        tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for module, name in targets:
                package = module.split(".")[0]
                if package not in PACKAGES or package == owner:
                    continue
                private_name = name is not None and name.startswith("_") and not name.startswith("__")
                if _private(module) or private_name:
                    what = module + (f" import {name}" if name else "")
                    found.append(f"{source.relative_to(ROOT)}:{node.lineno}: {owner} uses {package}'s private "
                                 f"{what}: use (or add to) {package}'s public modules, e.g. {package}.lowlevel")
    return found


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} import(s) of another package's private code", file=sys.stderr)
        return 1
    print("no package imports another package's private code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
