"""Sessions of the procpar monorepo.

* ``tests-<pkg>``: one per package and Python; installs only the package's dependency closure from the local
  tree as wheels (non-editable, so the built wheel is what is tested), proves that no other procpar package is
  importable, and runs the package's tests. Tagged ``tests`` with ``lint`` and ``typecheck``: ``nox -t tests``.
* ``lint`` (ruff, private cross-package imports), ``typecheck`` (mypy --strict over every package's src, mypy
  over every package's tests).
* ``faults``: the fault suite (``faults/``), on the first Python; tagged ``tests`` too.
* ``bench`` and ``conformance``: not run by default.

Interpreters are never downloaded: the Pythons 3.10-3.13 installed (on PATH or under pyenv) are used and
missing ones are skipped, except under CI where ``.ci/run`` names the versions it wants.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES_DIR = ROOT / "packages"
# .ci/run names the versions it tests in PROCPAR_PYTHONS; otherwise every supported one that is installed.
PYTHONS = os.environ.get("PROCPAR_PYTHONS", "3.10 3.11 3.12 3.13").split()

# short name -> (distribution, import name, procpar distributions it depends on)
PACKAGES: dict[str, tuple[str, str, list[str]]] = {
    "core": ("procpar-core", "procpar_core", []),
    "sync": ("procpar-sync", "procpar_sync", ["procpar-core"]),
    "shm": ("procpar-shm", "procpar_shm", ["procpar-core", "procpar-sync"]),
    "managers": ("procpar-managers", "procpar_managers", ["procpar-core", "procpar-sync", "procpar-shm"]),
    "pool": ("procpar-pool", "procpar_pool", ["procpar-core", "procpar-sync"]),
    "meta": ("procpar", "procpar", ["procpar-core", "procpar-sync", "procpar-shm", "procpar-managers",
                                    "procpar-pool"]),
    # distributed and cloudpickle come from the package index, the procpar packages from the tree.
    "dask": ("procpar-dask", "procpar_dask", ["procpar-core", "procpar-sync", "procpar-pool"]),
}
ALL_IMPORT_NAMES = ["procpar_core", "procpar_sync", "procpar_shm", "procpar_managers", "procpar_pool", "procpar",
                    "procpar_dask"]
# The shared fixtures (ctx over the start methods, run_script): one pytest plugin from tools/, not a conftest
# copied into each package's tests.
TEST_PLUGIN = str(ROOT / "tools" / "pytest-procpar")
TEST_DEPS = ["pytest>=7", "pytest-timeout>=2.1", "hypothesis>=6", "cloudpickle>=2.0", TEST_PLUGIN]
# Per package: what its tests use beyond TEST_DEPS (numpy: zero-copy views of shared memory, large buffers).
# bokeh: the Dask scheduler's dashboard, whose link the pool prints.
EXTRA_TEST_DEPS: dict[str, list[str]] = {"shm": ["numpy"], "pool": ["numpy"], "dask": ["bokeh"]}

nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = False
if hasattr(nox.options, "download_python"):
    nox.options.download_python = "never"
nox.options.sessions = [f"tests-{short}" for short in PACKAGES] + ["faults", "lint", "typecheck", "typing", "docs"]


def _add_pyenv_interpreters_to_path() -> None:
    # pyenv's shims only expose the global version; its other interpreters live in versions/X.Y.Z/bin.
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    dirs = sorted(glob.glob(os.path.join(root, "versions", "3.1[0-3].*", "bin")))
    path = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([*path, *[d for d in dirs if d not in path]])


_add_pyenv_interpreters_to_path()


def _closure(dist: str) -> list[str]:
    for d, _, deps in PACKAGES.values():
        if d == dist:
            result: list[str] = []
            for dep in deps:
                for item in _closure(dep):
                    if item not in result:
                        result.append(item)
            return [*result, dist]
    raise KeyError(dist)


def _install_closure(session: nox.Session, dist: str, *extra: str) -> list[str]:
    closure = _closure(dist)
    # All local paths in one pip call, so the bounded ranges resolve to the local tree, never to PyPI.
    session.install(*(str(PACKAGES_DIR / d) for d in closure), *extra)
    return closure


_CHECK_SPLIT = """
import importlib.util, sys, sysconfig
expected, others = sys.argv[1].split(","), [n for n in sys.argv[2].split(",") if n]
site = sysconfig.get_paths()["purelib"]
for name in expected:
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    assert origin is not None and origin.startswith(site), f"{name} must come from the installed wheel, not {origin}"
present = [n for n in others if importlib.util.find_spec(n) is not None]
assert not present, f"packages outside the dependency closure are importable: {present}"
print("dependency closure ok:", expected)
"""


def _make_test_session(short: str, dist: str, import_name: str) -> None:
    @nox.session(name=f"tests-{short}", python=PYTHONS, tags=["tests"])
    def tests(session: nox.Session) -> None:
        closure = _install_closure(session, dist, *TEST_DEPS, *EXTRA_TEST_DEPS.get(short, []))
        imports = [PACKAGES[s][1] for s in PACKAGES if PACKAGES[s][0] in closure]
        others = [n for n in ALL_IMPORT_NAMES if n not in imports]
        # Run from outside the tree so nothing resolves to src/ by accident.
        session.chdir(session.create_tmp())
        session.run("python", "-c", _CHECK_SPLIT, ",".join(imports), ",".join(others))
        session.run(
            "pytest",
            "-c", str(PACKAGES_DIR / dist / "pyproject.toml"),
            "--rootdir", str(PACKAGES_DIR / dist),
            str(PACKAGES_DIR / dist / "tests"),
            *session.posargs,
        )

    tests.__doc__ = f"Test {dist} installed alone with its dependencies."


for _short, (_dist, _import, _) in PACKAGES.items():
    _make_test_session(_short, _dist, _import)


@nox.session(python=PYTHONS[0], tags=["tests"])
def faults(session: nox.Session) -> None:
    """The fault suite (faults/): seeded random SIGKILLs and Ctrl-C under every start method, leak audits,
    hypothesis against connection frames, the handshake and the manager envelope."""
    _install_closure(session, "procpar", *TEST_DEPS, "numpy")
    session.chdir(session.create_tmp())
    session.run("pytest", "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT / "faults"), str(ROOT / "faults"),
                *session.posargs)


@nox.session(tags=["tests"])
def lint(session: nox.Session) -> None:
    """ruff over the packages, benchmarks, the fault suite, the tools and this file; no package importing
    another package's private code (tools/check_private_imports.py)."""
    session.install("ruff>=0.4")
    session.run("ruff", "check", "packages", "benchmarks", "faults", "tools", "typecheck", "noxfile.py")
    session.run("python", "tools/check_private_imports.py")


@nox.session(tags=["tests"])
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package's src (no explicit Any in the pool and the managers: see pyproject.toml),
    then mypy over every package's tests (tools/typecheck_tests.py)."""
    # The tests' own imports (pytest, hypothesis, numpy, ...) must resolve for their types to be checked.
    session.install("mypy>=1.8", *TEST_DEPS, "numpy", "distributed>=2024.8")
    src_dirs = [str(PACKAGES_DIR / dist / "src") for dist, _, _ in PACKAGES.values()]
    session.env["MYPYPATH"] = os.pathsep.join(src_dirs)
    session.run("mypy", "--strict", *(f"-p={imp}" for _, imp, _ in PACKAGES.values()))
    session.run("python", str(ROOT / "tools" / "typecheck_tests.py"))


@nox.session(name="typing", tags=["tests"])
def typing_(session: nox.Session) -> None:
    """A user's view of the types: the packages installed as wheels, then mypy --strict and pyright (strict)
    over typecheck/api_usage.py, whose assert_type lines must hold and whose marked lines must be rejected;
    then pyright (standard) over the packages' own sources, which the typecheck session checks with mypy."""
    dists = [*_closure("procpar"), "procpar-dask"]
    session.install(*(str(PACKAGES_DIR / d) for d in dists), "mypy>=1.8", "pyright>=1.1.380", "typing_extensions")
    usage = str(ROOT / "typecheck" / "api_usage.py")
    python = str(Path(session.virtualenv.location) / "bin" / "python")
    session.run("mypy", "--strict", "--python-version", "3.10", usage)
    session.run("pyright", "--pythonpath", python, "-p", str(ROOT / "typecheck"), usage)
    sources = [str(PACKAGES_DIR / d / "src") for d in dists]
    session.run("pyright", "--pythonpath", python, "-p", str(ROOT / "typecheck" / "sources"), *sources)
    session.run("python", str(ROOT / "tools" / "count_any.py"))


DOCS_DEPS = ["sphinx>=7", "furo>=2024.1", "myst-parser>=3"]


@nox.session(tags=["tests"])
def docs(session: nox.Session) -> None:
    """The documentation site (docs/site: Sphinx, furo, MyST), built from the installed packages with warnings
    as errors into docs/site/_build/html. Its examples run in the tests of procpar (test_doc_examples.py) and
    procpar-dask."""
    dists = [*_closure("procpar"), "procpar-dask"]
    session.install(*(str(PACKAGES_DIR / d) for d in dists), *DOCS_DEPS)
    session.run("sphinx-build", "-E", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs" / "site"),
                str(ROOT / "docs" / "site" / "_build" / "html"))


BENCH_PEERS = ["loky", "mpire", "multiprocess"]


@nox.session
def bench(session: nox.Session) -> None:
    """procpar against the stdlib on the same workloads, in one run; prints ratios. Then procpar-dask against
    Dask's client.map and executor on a LocalCluster (benchmarks/dask_run.py)."""
    session.env.pop("PYTHONDONTWRITEBYTECODE", None)  # the stdlib's bytecode is precompiled: ours too
    # numpy: the pool-arrays workload; procpar-dask: its rows against Dask's own client.map and executor;
    # the peers every row compares with (here only: no package depends on them); matplotlib: the pictures.
    dists = [*_closure("procpar"), *(d for d in _closure("procpar-dask") if d not in _closure("procpar"))]
    session.install(*(str(PACKAGES_DIR / d) for d in dists), "numpy", *BENCH_PEERS, "matplotlib")
    session.run("python", "-m", "compileall", "-q", session.virtualenv.location, silent=True)
    quick = [a for a in session.posargs if a == "--quick"]
    session.run("python", str(ROOT / "benchmarks" / "run.py"), *session.posargs)
    session.run("python", str(ROOT / "benchmarks" / "scaling.py"), *quick)
    session.run("python", str(ROOT / "benchmarks" / "dask_run.py"), *quick)


@nox.session
def conformance(session: nox.Session) -> None:
    """CPython's own multiprocessing tests run against procpar (../shared/conformance)."""
    _install_closure(session, "procpar")
    harness = ROOT.parent / "shared" / "conformance" / "run.py"
    python = os.path.join(session.virtualenv.location, "bin", "python")
    args = session.posargs or ["--start-method", "all"]
    session.run("python", str(harness), "--module", "procpar", "--python", python, *args)
