"""Benchmark (not a test): how long a 29-row ``sheetsync run`` takes in a fresh process, against
``python -c "import numpy"`` plus the run's own work (issue 17's start-up target: within 1.5x).

Side by side in one run, each a median of --repeat fresh processes, interleaved so a busy
machine slows them alike:

- ``python``: ``python -c pass`` (the interpreter alone);
- ``numpy``: ``python -c "import numpy"``;
- ``numpy+pandas``: ``python -c "import numpy, pandas"`` (what pandas adds);
- ``import cli``: what ``sheetsync --help`` pays (the command's own modules);
- ``import runner``: ``import sheetsync.runner`` (what a run imports before it reads);
- ``run``: ``python -m sheetsync run demo.xlsx`` on a fresh copy of the demo workbook (its
  four experiments, 29 rows, 5 epochs; the kernel cache warm, as on any run after the first);
- ``work``: the same run in a warm process (imports done, loops compiled), timed in-process.

Each is timed as wall-clock (the target) and as CPU time (user + system of the child, or of the
run in the warm process), which a machine busy with other work inflates less.

Bytecode caching is on in the children (an installed package has its ``.pyc`` files; without
them every start compiles ~25k lines first). Target: ``run`` <= 1.5 x (``numpy`` + ``work``). Also prints which modules the run imports
that it may not need (pandas, openpyxl, flask, ...).

    python bench/startup.py                 # 7 processes each
    python bench/startup.py --repeat 15
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "openpyxl", "flask", "werkzeug", "gspread", "google", "requests", "yaml", "apscheduler",
         "redis", "rq", "tqdm", "numba", "llvmlite", "scipy", "torch")

WORK = """
import shutil, sys, time
from sheetsync.runner import run
shutil.copy(sys.argv[1], sys.argv[2])
run(sys.argv[2])  # warm: imports, compiled loops
times, cpu = [], []
for _ in range(int(sys.argv[3])):
    shutil.copy(sys.argv[1], sys.argv[2])
    t, c = time.perf_counter(), time.process_time()
    run(sys.argv[2])
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
times.sort()
cpu.sort()
print(times[len(times) // 2], cpu[len(cpu) // 2])
"""

MODULES = """
import sys
from sheetsync.cli import main
main(["run", sys.argv[1]])
heavy = sys.argv[2].split(",")
print("loaded:" + ",".join(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))), file=sys.stderr)
"""


def import_shares(py: str, env: dict, cwd: str) -> dict[str, float]:
    """Seconds `import sheetsync.runner` spends per top-level package (-X importtime, self times)."""
    err = subprocess.run([py, "-X", "importtime", "-c", "import sheetsync.runner"], env=env, cwd=cwd,
                         check=True, capture_output=True, text=True).stderr
    shares: dict[str, float] = {}
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if self_us.isdigit():
            top = name.split(".")[0]
            shares[top] = shares.get(top, 0.0) + int(self_us) / 1e6
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def timed(argv: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as an install: modules load from their cached bytecode
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="sheetsync-startup-") as tmp:
        demo, book = os.path.join(tmp, "demo.xlsx"), os.path.join(tmp, "book.xlsx")
        subprocess.run([py, "-c", f"from sheetsync.demo import write_demo; write_demo({demo!r})"],
                       env=env, check=True)
        shutil.copy(demo, book)
        subprocess.run([py, "-m", "sheetsync", "run", book], env=env, check=True, stdout=subprocess.DEVNULL)  # warm the kernel cache

        cases = {
            "python": [py, "-c", "pass"],
            "numpy": [py, "-c", "import numpy"],
            "numpy+pandas": [py, "-c", "import numpy, pandas"],
            "import cli": [py, "-c", "import sheetsync.cli"],
            "import runner": [py, "-c", "import sheetsync.runner"],
            "run": [py, "-m", "sheetsync", "run", book],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.repeat):
            for name, argv in cases.items():
                if name == "run":
                    shutil.copy(demo, book)
                wall, used = timed(argv, env, tmp)
                times[name].append(wall)
                cpu[name].append(used)
        work, work_cpu = map(float, subprocess.run([py, "-c", WORK, demo, book, str(args.repeat)], env=env,
                                                   check=True, capture_output=True, text=True).stdout.split())
        shutil.copy(demo, book)
        shares = import_shares(py, env, tmp)
        loaded = subprocess.run([py, "-c", MODULES, book, ",".join(HEAVY)], env=env, check=True,
                                capture_output=True, text=True).stderr.strip().splitlines()[-1].removeprefix("loaded:")

    med = {name: statistics.median(v) for name, v in times.items()}
    med_cpu = {name: statistics.median(v) for name, v in cpu.items()}
    print(f"median of {args.repeat} fresh processes (seconds; wall, and CPU: less sensitive to a busy machine):")
    for name, value in med.items():
        print(f"  {name:<14} {value:7.3f}   cpu {med_cpu[name]:7.3f}")
    print(f"  {'work (warm)':<14} {work:7.3f}   cpu {work_cpu:7.3f}")
    target = med["numpy"] + work
    print(f"run / (numpy + work) = {med['run']:.3f} / {target:.3f} = {med['run'] / target:.2f}x  (target <= 1.5x)")
    target_cpu = med_cpu["numpy"] + work_cpu
    print(f"in CPU time: {med_cpu['run']:.3f} / {target_cpu:.3f} = {med_cpu['run'] / target_cpu:.2f}x")
    print(f"run / numpy = {med['run'] / med['numpy']:.2f}x; importing the runner: {med['import runner'] - med['python']:.3f} s")
    top = ", ".join(f"{name} {sec:.3f}" for name, sec in list(shares.items())[:6])
    print(f"importing the runner, by package (s, -X importtime self times; inflated by its overhead): {top}")
    print(f"modules a run loads among {', '.join(HEAVY)}: {loaded or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
