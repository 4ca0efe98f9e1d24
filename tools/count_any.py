"""Count ``Any`` in procpar's public signatures: each parameter and return annotation of every public function,
class and method reached from the packages' public modules (``_``-prefixed ones are private).

    python tools/count_any.py [--list]

A slot counts as ``Any`` when its annotation names ``Any`` (``Any``, ``list[Any]``, ...). ``*args: Any`` of
a function that forwards its arguments is counted too: the figure is what a user's type checker sees.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Iterator

PACKAGES = ["procpar_core", "procpar_sync", "procpar_shm", "procpar_managers", "procpar_pool", "procpar",
            "procpar_dask"]
ANY = re.compile(r"\bAny\b")


def public_modules() -> Iterator[object]:
    for name in PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue
        yield package
        for info in pkgutil.walk_packages(package.__path__, name + "."):
            if any(part.startswith("_") for part in info.name.split(".")[1:]):
                continue
            try:
                yield importlib.import_module(info.name)
            except ImportError:
                continue


def slots(func: object) -> Iterator[tuple[str, str]]:
    try:
        signature = inspect.signature(func)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    for name, parameter in signature.parameters.items():
        if name in ("self", "cls") or parameter.annotation is inspect.Parameter.empty:
            continue
        yield name, str(parameter.annotation)
    if signature.return_annotation is not inspect.Signature.empty:
        yield "return", str(signature.return_annotation)


def main() -> None:
    seen: set[int] = set()
    total = with_any = 0
    listed: list[str] = []
    for module in public_modules():
        names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
        for name in names:
            try:
                obj = getattr(module, name)
            except AttributeError:
                continue
            owner = getattr(obj, "__module__", "") or ""
            if not owner.startswith("procpar") or id(obj) in seen:
                continue
            seen.add(id(obj))
            members = [(name, obj)]
            if inspect.isclass(obj):
                members = [(name, obj.__init__)] if "__init__" in vars(obj) else []
                members += [(f"{name}.{m}", f) for m, f in vars(obj).items()
                            if (not m.startswith("_") or m in ("__enter__", "__getitem__", "__iter__", "__next__"))
                            and callable(f)]
            for label, func in members:
                for slot, annotation in slots(func):
                    total += 1
                    if ANY.search(annotation):
                        with_any += 1
                        listed.append(f"{owner}.{label}({slot}): {annotation}")
    if "--list" in sys.argv:
        print("\n".join(sorted(set(listed))))
    print(f"{with_any} of {total} annotated slots in the public signatures name Any")


if __name__ == "__main__":
    main()
