"""Benchmark (not a test): `sheetsync run` against LibreOffice recalculating the same SGD.

For each case, side by side in one run:

- sheetsync: `python -m sheetsync run book.xlsx` in a child process (the median of 5, each on a
  fresh copy) — read the workbook, train, write every output tab (steps sampled above the cell
  budget), rename over the original;
- LibreOffice: `soffice --headless --convert-to csv` of an equivalent workbook of per-row SGD
  formulas (each row's a, b from the row above, built with openpyxl, no cached values), with a
  private profile set to recalculate on load, so the conversion is one full recalculation.

Cases: the demo (its four experiments, 29 rows x 5 epochs each: LibreOffice gets 4 x 145
formula rows), and 100,000 data rows x 10 epochs (linear, pytorch sgd: 1,000,000 formula rows).
Wall time and peak RSS of each child are measured with os.wait4; ratios printed at the end.
sheetsync's run is also timed in this (warm) process, as `sheetsync serve` and the scheduler
run it: imports and compiled loops loaded once, so only the work of the run itself counts.
LibreOffice's answer (final a, b; 15 significant digits in CSV) is checked against sheetsync's.

    python bench/run_vs_libreoffice.py            # both cases
    python bench/run_vs_libreoffice.py --rows 20000 --epochs 10
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import openpyxl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sheetsync.demo import EXPERIMENTS, X, Y  # noqa: E402

LR = 1e-5  # stable per-row SGD for x in [0, 1) and y = 2x + 30 + noise

PROFILE_XCU = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


def measure(cmd: list[str], **kw) -> tuple[float, float, subprocess.CompletedProcess | None]:
    """(seconds, peak RSS in MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, out.decode()


# ---------------------------------------------------------------------------------------------
# sheetsync's side


def sheetsync_workbook(path: Path, x, y, experiments: list[list]) -> None:
    wb = openpyxl.Workbook()
    data = wb.active
    data.title = "data"
    data.append(["x", "y"])
    for xv, yv in zip(x, y):
        data.append([float(xv), float(yv)])
    exps = wb.create_sheet("experiments")
    for row in experiments:
        exps.append(row)
    wb.save(path)


def run_sheetsync(fresh: Path, work: Path, repeats: int = 5) -> tuple[float, float, dict]:
    """A fresh process's `sheetsync run --json`, each on a fresh copy: the median time and
    memory of `repeats` processes (one process is at the mercy of the machine), the report."""
    times, peaks = [], []
    for k in range(repeats):
        path = work / f"fresh-run-{k}.xlsx"
        shutil.copyfile(fresh, path)
        seconds, mib, out = measure([sys.executable, "-m", "sheetsync", "run", str(path), "--json"])
        times.append(seconds)
        peaks.append(mib)
    return statistics.median(times), statistics.median(peaks), json.loads(out)


def run_sheetsync_warm(fresh: Path, work: Path, repeats: int = 3) -> float:
    """Seconds of `runner.run` in a process that has run before (the server's and scheduler's
    path: imports and compiled loops already loaded), best of `repeats`, each on a fresh copy."""
    from sheetsync.runner import run

    best = float("inf")
    for k in range(repeats + 1):  # the first is the warm-up
        book = work / f"warm-{k}.xlsx"
        shutil.copyfile(fresh, book)
        start = time.perf_counter()
        run(str(book))
        if k:
            best = min(best, time.perf_counter() - start)
        book.unlink()
    return best


# ---------------------------------------------------------------------------------------------
# LibreOffice's side: per-row SGD formulas, y = a*x + b, loss (pred - y)^2, as graddesc's basic tab


HEADER = ["x", "y", "a", "b", "pred", "err", "loss", "de/da", "de/db", "new a", "new b"]


def formula_workbook(path: Path, x, y, epochs: int, lr: float, a0: float, b0: float, blocks: int = 1) -> None:
    """`blocks` independent SGD runs one after another (the demo has several experiments)."""
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("sgd")
    ws.append(["lr", lr] + [None] * 9)
    ws.append(HEADER)
    r = 3
    for _ in range(blocks):
        first = True
        for _ in range(epochs):
            for xv, yv in zip(x, y):
                a = a0 if first else f"=J{r - 1}"
                b = b0 if first else f"=K{r - 1}"
                first = False
                ws.append([float(xv), float(yv), a, b, f"=C{r}*A{r}+D{r}", f"=E{r}-B{r}", f"=F{r}*F{r}",
                           f"=2*F{r}*A{r}", f"=2*F{r}", f"=C{r}-$B$1*H{r}", f"=D{r}-$B$1*I{r}"])
                r += 1
    wb.save(path)


def libreoffice_profile(root: Path) -> str:
    user = root / "user"
    user.mkdir(parents=True, exist_ok=True)
    (user / "registrymodifications.xcu").write_text(PROFILE_XCU)
    return root.as_uri()


def run_libreoffice(path: Path, profile: str, outdir: Path) -> tuple[float, float, list[str]]:
    cmd = ["soffice", f"-env:UserInstallation={profile}", "--headless", "--norestore",
           "--convert-to", "csv", "--outdir", str(outdir), str(path)]
    seconds, mib, _ = measure(cmd)
    with open(outdir / (path.stem + ".csv"), newline="") as f:
        last = None
        for last in csv.reader(f):
            pass
    return seconds, mib, last


# ---------------------------------------------------------------------------------------------


def case(name: str, work: Path, x, y, experiments, lo_epochs: int, lo_blocks: int, lr: float,
         profile: str, check: str | None) -> dict:
    print(f"\n== {name}: {len(x):,} data rows", flush=True)
    book = work / f"{name}.xlsx"
    sheetsync_workbook(book, x, y, experiments)
    fresh = work / f"{name}-fresh.xlsx"
    shutil.copyfile(book, fresh)
    s_sec, s_mib, report = run_sheetsync(fresh, work)
    print(f"sheetsync run:         {s_sec:8.2f} s  {s_mib:8.0f} MiB peak  (median of 5 fresh processes)", flush=True)
    w_sec = run_sheetsync_warm(fresh, work)
    print(f"  the same in a warm process (server, scheduler): {w_sec:.2f} s", flush=True)
    formulas = work / f"{name}-formulas.xlsx"
    t = time.perf_counter()
    formula_workbook(formulas, x, y, lo_epochs, lr, 1.0, 1.0, lo_blocks)
    rows = len(x) * lo_epochs * lo_blocks
    print(f"(built {rows:,} formula rows with openpyxl in {time.perf_counter() - t:.1f} s)", flush=True)
    l_sec, l_mib, last = run_libreoffice(formulas, profile, work)
    print(f"LibreOffice recalc:    {l_sec:8.2f} s  {l_mib:8.0f} MiB peak", flush=True)
    result = {"case": name, "rows": len(x), "formula_rows": rows, "sheetsync_s": s_sec,
              "sheetsync_mib": s_mib, "libreoffice_s": l_sec, "libreoffice_mib": l_mib,
              "time_ratio": l_sec / s_sec, "memory_ratio": l_mib / s_mib,
              "sheetsync_warm_s": w_sec, "warm_time_ratio": l_sec / w_sec}
    if check:
        exp = next(e for e in report["experiments"] if e["name"] == check)
        # LibreOffice's last row is the last step's update; the engine's params are what it
        # carries (pytorch: the same thing).
        lo_a, lo_b = float(last[9]), float(last[10])
        result["agree"] = (abs(lo_a - exp["params"]["a"]) <= 1e-9 * max(1, abs(lo_a)),
                           abs(lo_b - exp["params"]["b"]) <= 1e-9 * max(1, abs(lo_b)))
        print(f"final a, b: LibreOffice {lo_a:.15g}, {lo_b:.15g}; sheetsync "
              f"{exp['params']['a']:.15g}, {exp['params']['b']:.15g}", flush=True)
    print(f"ratio: sheetsync is {result['time_ratio']:.1f}x faster ({result['warm_time_ratio']:.1f}x in a warm "
          f"process), uses {result['memory_ratio']:.1f}x less memory", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    if not shutil.which("soffice"):
        raise SystemExit("LibreOffice (soffice) is not installed: apt-get install libreoffice-calc-nogui")
    work = Path(tempfile.mkdtemp(prefix="sheetsync-bench-"))
    profile = libreoffice_profile(work / "lo-profile")
    warm = work / "warm.xlsx"
    formula_workbook(warm, [1.0], [2.0], 1, 0.1, 1, 1)
    run_libreoffice(warm, profile, work)  # the first start of a fresh profile is slow: not counted
    startup, startup_mib, _ = measure([sys.executable, "-c", "import sheetsync.runner, sheetsync.backends.xlsx"])
    print(f"(sheetsync's imports alone: {startup:.2f} s, {startup_mib:.0f} MiB: part of every run below)")
    results = []
    if not args.skip_demo:
        results.append(case("demo", work, X, Y, EXPERIMENTS, 5, 4, 1e-4, profile, None))
    rng = np.random.default_rng(0)
    x = rng.random(args.rows)
    y = 2 * x + 30 + rng.normal(0, 0.1, args.rows)
    experiments = [["setting", "big"], ["flavour", "pytorch"], ["optimizer", "sgd"], ["lr", LR],
                   ["epochs", args.epochs], ["init a", 1], ["init b", 1]]
    results.append(case(f"rows{args.rows}", work, x, y, experiments, args.epochs, 1, LR, profile, "big"))
    print("\n" + json.dumps(results, indent=2))
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
