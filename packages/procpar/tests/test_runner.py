"""Programs written for the stdlib, run unchanged with ``python -m procpar run`` and compared with the
stdlib's own run of them (``tests/programs``; the spec's examples among them, verbatim)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import pytest

import procpar

pytestmark = pytest.mark.timeout(300)

PROGRAMS = Path(__file__).parent / "programs"
METHODS = procpar.get_all_start_methods()


def run(args: list[str], cwd: Path | str = PROGRAMS, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(cwd))


def on_procpar(*args: str, cwd: Path | str = PROGRAMS) -> subprocess.CompletedProcess[str]:
    return run(["-m", "procpar", "run", *args], cwd=cwd)


def on_stdlib(*args: str, cwd: Path | str = PROGRAMS) -> subprocess.CompletedProcess[str]:
    return run(list(args), cwd=cwd)


def _pool_example(lines: list[str]) -> list[str]:
    # The pool example prints the map's list, ten results of imap_unordered in the order they finish, 400, a
    # worker's pid, a list of four pids, then fixed sentences. Pids can have any number of digits.
    if len(lines) < 14:
        return lines
    pid = "<pid>" if lines[12].isdigit() else lines[12]
    pids = "<pids>" if re.fullmatch(r"\[\d+(, \d+){3}\]", lines[13]) else lines[13]
    return [lines[0], *sorted(lines[1:11]), lines[11], pid, pids, *lines[14:]]


def _any_order(lines: list[str]) -> list[str]:
    # Lines printed in the order processes finish, naming whichever worker took the task.
    return sorted(re.sub(r"Process-\d+", "Process-N", line) for line in lines)


def same_run(*args: str, normalize: Callable[[list[str]], list[str]] | None = None,
             cwd: Path | str = PROGRAMS) -> subprocess.CompletedProcess[str]:
    """Run the program both ways; the output and exit status must be the same. Returns procpar's run."""
    ours, theirs = on_procpar(*args, cwd=cwd), on_stdlib(*args, cwd=cwd)
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    lines, expected = ours.stdout.splitlines(), theirs.stdout.splitlines()
    if normalize is not None:
        lines, expected = normalize(lines), normalize(expected)
    assert lines == expected, ours.stderr
    return ours


@pytest.mark.parametrize("name", ["queue", "pipe", "lock", "pool", "manager", "workers"])
def test_the_specs_examples_run_unchanged(name: str) -> None:
    # Some print from several processes, results as they finish, or pids.
    normalize = {"pool": _pool_example, "lock": _any_order, "workers": _any_order}.get(name)
    ours = same_run(f"spec_{name}.py", normalize=normalize)
    assert ours.stdout
    assert "Traceback" not in ours.stderr


@pytest.mark.parametrize("method", METHODS)
def test_a_process_pool_executor_program(method: str) -> None:
    ours = same_run("executor_program.py", method)
    assert ours.returncode == 7
    assert "error bad 3" in ours.stdout


def test_the_executor_is_procpar_s_in_the_program(tmp_path: Path) -> None:
    code = ("import concurrent.futures as f, multiprocessing, multiprocessing.dummy, multiprocessing.util;"
            "print(f.ProcessPoolExecutor.__module__, multiprocessing.__name__, multiprocessing.dummy.__name__,"
            " multiprocessing.util.__name__, multiprocessing.get_logger().name)")
    (tmp_path / "probe.py").write_text(code)
    out = on_procpar(str(tmp_path / "probe.py"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["procpar._futures_process", "procpar", "procpar.dummy", "procpar.util",
                                  "multiprocessing"]


@pytest.mark.parametrize("method", METHODS)
def test_children_of_children_see_procpar(method: str) -> None:
    ours = same_run("nested_children.py", method)
    assert ours.returncode == 5
    assert ours.stdout.splitlines()[-1] == "child C grandchild G 0 True"


def test_compileall_with_two_workers(tmp_path: Path) -> None:
    for tree in ("ours", "theirs"):
        for i in range(20):
            package = tmp_path / tree / f"p{i % 3}"
            package.mkdir(parents=True, exist_ok=True)
            (package / f"m{i}.py").write_text(f"def f():\n    return {i}\n")
    ours = on_procpar("-m", "compileall", "-q", "-j", "2", "ours", cwd=tmp_path)
    theirs = on_stdlib("-m", "compileall", "-q", "-j", "2", "theirs", cwd=tmp_path)
    assert ours.returncode == theirs.returncode == 0, ours.stderr

    def compiled(tree: str) -> list[str]:
        return sorted(str(p.relative_to(tmp_path / tree)) for p in (tmp_path / tree).rglob("*.pyc"))

    assert compiled("ours") == compiled("theirs")
    assert len(compiled("ours")) == 20


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
@pytest.mark.parametrize("kind", ["directory", "zip", "-m package"])
def test_a_main_that_must_not_be_rerun_in_children(tmp_path: Path, method: str, kind: str) -> None:
    """``__main__.py`` of a directory, a zip file or a package runs its main-only code unguarded: children
    must not run it again (the stdlib's SpawnCmdLineTest / ForkServerCmdLineTest)."""
    if kind == "directory":
        args, cwd = [str(PROGRAMS / "app_dir"), method], tmp_path
    elif kind == "zip":
        archive = tmp_path / "app.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for name in ("__main__.py", "work.py"):
                zf.write(PROGRAMS / "app_dir" / name, name)
        args, cwd = [str(archive), method], tmp_path
    else:
        shutil.copytree(PROGRAMS / "pkg_main", tmp_path / "pkg_main")
        args, cwd = ["-m", "guarded", method], tmp_path / "pkg_main"
    ours = same_run(*args, cwd=cwd)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == "[2, 3, 4]"
    assert "Should only be called" not in ours.stderr


def test_argv_exit_status_and_errors(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text("import sys\nprint(sys.argv, __name__)\nraise SystemExit(int(sys.argv[1]))\n")
    out = on_procpar(str(script), "4", "x", cwd=tmp_path)
    assert out.returncode == 4
    assert out.stdout.strip() == f"[{str(script)!r}, '4', 'x'] __main__"
    missing = on_procpar("no_such_program.py", cwd=tmp_path)
    assert missing.returncode == 2
    assert "can't open file 'no_such_program.py'" in missing.stderr
    for bad in (["go", "prog.py"], ["run"], ["run", "-m"]):
        out = run(["-m", "procpar", *bad], cwd=tmp_path)
        assert out.returncode == 2 and "usage: python -m procpar run" in out.stderr, bad
    failing = tmp_path / "fails.py"
    failing.write_text("raise ValueError('from the program')\n")
    out = on_procpar(str(failing), cwd=tmp_path)
    assert out.returncode == 1 and "ValueError: from the program" in out.stderr


def test_install_from_the_program_itself(tmp_path: Path) -> None:
    script = tmp_path / "opt_in.py"
    script.write_text(
        "import procpar\nprocpar.install()\nimport multiprocessing, sys\n"
        "def f(x):\n    import multiprocessing as m\n    return m.__name__\n"
        "if __name__ == '__main__':\n"
        "    multiprocessing.set_start_method('spawn')\n"
        "    with multiprocessing.Pool(1) as p:\n        print(multiprocessing.__name__, p.apply(f, (1,)))\n")
    out = on_stdlib(str(script), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["procpar", "procpar"]


# -- programs that broke on procpar before (each compared with the stdlib's run) ---------------------------


@pytest.mark.parametrize("method", METHODS)
def test_classes_of_the_main_script_come_back_from_children(method: str) -> None:
    ours = same_run("main_classes.py", method)
    assert ours.stdout.splitlines() == [
        "pool [Point(x=0, y=0), Point(x=1, y=2), Point(x=2, y=4)]",
        "exception Oops (5,)",
        "queue Point(x=1, y=2)",
        "pipe Point(x=3, y=4)",
        "manager Point(x=5, y=6)",
    ]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("pool_state", ["close", "join", "terminate", "running"])
def test_new_processes_after_a_pool(method: str, pool_state: str) -> None:
    ours = same_run("after_closed_pool.py", method, pool_state)
    assert ours.stdout.splitlines() == ["1 2 0"] * 3 + ["[1]"]


@pytest.mark.parametrize("method", METHODS)
def test_children_exit_without_noise(method: str) -> None:
    ours = same_run("quiet_exit.py", method)
    assert ours.stdout.splitlines() == ["done {'x': 1} 1", "0"]
    assert ours.stderr == ""
