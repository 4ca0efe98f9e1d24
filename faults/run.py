"""The fault suite's driver: randomized deaths and Ctrl-C, procpar and the stdlib side by side.

    python faults/run.py [--impl procpar|multiprocessing|both] [--methods fork,spawn,forkserver] [--trials N]
                         [--seed S] [--budget SECONDS] [--json OUT] [--only SCENARIO ...]

Each trial is a program of its own (``trials.py``, or one of the spec's examples for ``ctrl_c``), run in a new
session with a marker in its environment so that every process it starts can be found. The driver kills
processes at random moments (seeded), times the program, and afterwards audits what is left: files in the
trial's own ``$TMPDIR``, the trial's files in ``/dev/shm``, and processes still carrying the marker. Loopback only.

The machine is shared: other programs make and remove files in ``/tmp`` and ``/dev/shm`` while a trial runs, so
only what is the trial's is counted (and removed afterwards): everything in its private ``$TMPDIR``, procpar's
``/dev/shm`` names that carry the trial program's pid (``procpar-[kind-]<pid>-...``), and for the stdlib, whose
``/dev/shm`` names are random, the ones that appeared during the trial.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from examples import EXAMPLES  # noqa: E402

MARKER = "PROCPAR_FAULT_TRIAL"
TRIAL_TIMEOUT = 40.0
# The stdlib's names in /dev/shm (random: only their appearance during a trial ties them to it).
STDLIB_SHM_PREFIXES = ("psm_", "sem.mp-", "mp-")
PROCPAR_NAME = re.compile(r"procpar-(?:[a-z]+-)?(\d+)-")

SHIM = """
import importlib, sys
mp = importlib.import_module({impl!r})
sys.modules["multiprocessing"] = mp
if __name__ == "__main__":
    mp.set_start_method({method!r}, force=True)
"""

TRACKER_START = """
import json, os, sys, time
impl, paths = sys.argv[1], json.loads(sys.argv[2])
if impl == "procpar":
    from procpar_core import resource_tracker
else:
    from multiprocessing import resource_tracker
resource_tracker.ensure_running()
deadline = time.monotonic() + 5  # the tracker looks for what dead programs left as it starts
while any(os.path.exists(p) for p in paths) and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def _entries(tmpdir: str, impl: str, program_pids: set[int]) -> set[str]:
    """What the trial may have left: all of its private $TMPDIR, and its names in /dev/shm."""
    found = {os.path.join(tmpdir, name) for name in os.listdir(tmpdir)} if os.path.isdir(tmpdir) else set()
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        names = []
    for name in names:
        if impl == "procpar":
            match = PROCPAR_NAME.match(name)
            if match is not None and int(match.group(1)) in program_pids:
                found.add(os.path.join("/dev/shm", name))
        elif name.startswith(STDLIB_SHM_PREFIXES):
            found.add(os.path.join("/dev/shm", name))
    return found


def _marked(trial_id: str) -> list[tuple[int, str]]:
    """Live (not zombie) processes whose environment carries this trial's marker, with their command lines."""
    needle = f"{MARKER}={trial_id}".encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found.append((int(pid), f.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return found


def _wait_marked_gone(trial_id: str, timeout: float) -> list[tuple[int, str]]:
    deadline = time.monotonic() + timeout
    while True:
        left = _marked(trial_id)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def _kill_marked(trial_id: str) -> None:
    for pid, _ in _marked(trial_id):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _start(argv: list[str], trial_id: str, workdir: str) -> subprocess.Popen[str]:
    env = dict(os.environ, **{MARKER: trial_id}, TMPDIR=os.path.join(workdir, "tmp"))
    env["PYTHONPATH"] = os.pathsep.join([HERE, *[p for p in sys.path if p]])
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=workdir, start_new_session=True)


def run_trial(scenario: str, impl: str, method: str, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    trial_id = f"{scenario}-{impl}-{method}-{seed}-{os.getpid()}"
    workdir = tempfile.mkdtemp(prefix="fault-")
    tmpdir = os.path.join(workdir, "tmp")
    os.mkdir(tmpdir)
    programs: set[int] = set()  # pids of the trial's programs: procpar names what they make after them
    before = _entries(tmpdir, impl, programs)
    result: dict[str, Any] = {"scenario": scenario, "impl": impl, "method": method, "seed": seed, "hang": False,
                              "lost": 0, "excused": 0, "dup": 0, "leftover_files": 0, "leftover_processes": 0}
    start = time.monotonic()
    if scenario.startswith("ctrl_c"):
        # Mostly the examples that run long enough to be interrupted in the middle of their work.
        example = rng.choice(["pool", "pool", "workers", "workers", "manager", "lock", "queue", "pipe"])
        path = os.path.join(workdir, "example.py")
        with open(path, "w") as f:
            f.write(SHIM.format(impl=impl, method=method) + EXAMPLES[example])
        proc = _start([sys.executable, path], trial_id, workdir)
        programs.add(proc.pid)
        time.sleep(rng.uniform(0.3, 1.5))
        result["interrupted"] = proc.poll() is None
        sent = time.monotonic()
        try:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        except ProcessLookupError:
            pass
        try:
            proc.communicate(timeout=TRIAL_TIMEOUT)
        except subprocess.TimeoutExpired:
            result["hang"] = True
        result["example"] = example
        if result["interrupted"]:
            result["seconds_to_exit"] = round(time.monotonic() - sent, 3)
    elif scenario.startswith("sigkill"):
        proc = _start([sys.executable, os.path.join(HERE, "trials.py"), "resources", impl, method, str(seed),
                       workdir], trial_id, workdir)
        programs.add(proc.pid)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip():
            result["error"] = proc.stderr.read()[-500:] if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.3))
        keep_tracker = scenario == "sigkill_but_tracker"
        for pid, cmdline in _marked(trial_id):
            if keep_tracker and "resource_tracker" in cmdline:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.communicate()
        if not keep_tracker:
            # Everything died at once: the next program's tracker must clean up after this one.
            left = sorted(_entries(tmpdir, impl, programs) - before)
            result["leftover_files_before_next"] = len(left)
            nxt = _start([sys.executable, "-c", TRACKER_START, impl, json.dumps(left)], trial_id + "-next", workdir)
            nxt.communicate(timeout=TRIAL_TIMEOUT)
    else:
        proc = _start([sys.executable, os.path.join(HERE, "trials.py"), scenario, impl, method, str(seed), workdir],
                      trial_id, workdir)
        programs.add(proc.pid)
        try:
            out, err = proc.communicate(timeout=TRIAL_TIMEOUT)
            lines = [x for x in out.splitlines() if x.startswith("{")]
            if lines:
                result.update(json.loads(lines[-1]))
            else:
                result["hang"] = True
                result["error"] = err[-800:]
        except subprocess.TimeoutExpired:
            result["hang"] = True
    result["seconds"] = round(time.monotonic() - start, 3)
    left = _wait_marked_gone(trial_id, 10.0)
    result["leftover_processes"] = len(left)
    _kill_marked(trial_id)
    _kill_marked(trial_id + "-next")
    time.sleep(0.1)
    left_files = _entries(tmpdir, impl, programs) - before
    result["leftover_files"] = len(left_files)
    if left_files:  # named, so that a red run says what was left
        result["leftover_names"] = sorted(os.path.relpath(p, workdir) if p.startswith(workdir) else p
                                          for p in left_files)[:10]
    for path in left_files:  # leave the machine as we found it, whatever the implementation left
        subprocess.run(["rm", "-rf", path], check=False)
    subprocess.run(["rm", "-rf", workdir], check=False)
    return result


SCENARIOS = ["consumers", "producers", "lock_holders", "manager_clients", "manager_server", "ctrl_c",
             "sigkill_but_tracker", "sigkill_all"]


def summarize(results: list[dict[str, Any]]) -> str:
    rows: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        rows.setdefault((r["scenario"], r["method"], r["impl"]), []).append(r)
    lines = [f"{'scenario':<20}{'method':<11}{'impl':<16}{'trials':>6}{'hangs':>6}{'lost':>6}{'excused':>8}"
             f"{'dup':>5}{'files':>6}{'procs':>6}  exit s after Ctrl-C (median/max of n)"]
    for (scenario, method, impl), rs in sorted(rows.items()):
        exits = sorted(r["seconds_to_exit"] for r in rs if "seconds_to_exit" in r and not r["hang"])
        exit_s = f"{exits[len(exits) // 2]:.2f}/{exits[-1]:.2f} of {len(exits)}" if exits else "-"
        total = {key: sum(r[key] for r in rs) for key in ("hang", "lost", "excused", "dup", "leftover_files",
                                                           "leftover_processes")}
        lines.append(f"{scenario:<20}{method:<11}{impl:<16}{len(rs):>6}{total['hang']:>6}{total['lost']:>6}"
                     f"{total['excused']:>8}{total['dup']:>5}{total['leftover_files']:>6}"
                     f"{total['leftover_processes']:>6}  {exit_s}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", default="procpar", choices=["procpar", "multiprocessing", "both"])
    parser.add_argument("--methods", default="fork,spawn,forkserver")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--budget", type=float, default=None, help="stop starting trials after this many seconds")
    parser.add_argument("--only", action="append", choices=SCENARIOS)
    parser.add_argument("--json")
    args = parser.parse_args()
    impls = ["procpar", "multiprocessing"] if args.impl == "both" else [args.impl]
    results = []
    started = time.monotonic()
    for scenario in args.only or SCENARIOS:
        for method in args.methods.split(","):
            for trial in range(args.trials):
                for impl in impls:
                    if args.budget is not None and time.monotonic() - started > args.budget:
                        break
                    r = run_trial(scenario, impl, method, args.seed * 1000 + trial)
                    results.append(r)
                    flag = "HANG " if r["hang"] else ""
                    print(f"{flag}{scenario} {impl} {method} seed={r['seed']} lost={r['lost']} dup={r['dup']} "
                          f"files={r['leftover_files']} procs={r['leftover_processes']} {r['seconds']}s", flush=True)
    print(summarize(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
