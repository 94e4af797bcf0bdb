"""Peak memory of a long run: the engine records only the step lines the cell budget writes
(issue 17), against recording every line (the path before).

    python bench/record_memory.py [--rows 1000000] [--epochs 10] [--demo-epochs 20000]

Each measurement is a fresh process (`runner.run` on an .xlsx workbook: read, train, layout,
write) reporting its peak RSS (VmHWM) and wall time; the two paths run interleaved, one
after the other for each model, so the shared machine's noise hits both alike. The target is a
peak of at most 600 MB for 1,000,000 rows x 10 epochs. Last, the demo workbook at
`--demo-epochs` epochs, both paths, wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yardstick import demo_book  # noqa: E402

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from sheetsync import budgets, runner
from sheetsync.engine import record
record.RECORD_ALL = {record_all!r}
budgets.MEMORY_BUDGET = 1 << 40  # parse refuses a run whose every line would take over 1 GiB
start = time.perf_counter()
report = runner.run({path!r})
seconds = time.perf_counter() - start
# VmHWM: this process's peak RSS (ru_maxrss would carry the forking parent's peak across exec)
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({{"seconds": seconds, "peak_mb": peak, "sampled": [e.sampled for e in report.experiments],
                  "diverged": [e.diverged for e in report.experiments]}}))
"""


def book(folder: Path, rows: int, epochs: int, model: str, outlier: float | None = None) -> Path:
    """A workbook with `rows` data rows (y = 2x + 0.3 plus noise) and one experiment; `outlier`:
    the last row's x, with y = 0 (the first epoch's last step blows up on it: a run that diverges
    after a whole epoch)."""
    import numpy as np

    from sheetsync.backends.xlsx import XlsxBackend

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, rows).round(4)
    y = (2 * x + 0.3 + rng.normal(0, 0.01, rows)).round(4)
    if outlier is not None:  # off the line: its step blows the parameters up
        x[-1], y[-1] = outlier, 0.0
    experiments = [["setting", "e"], ["model", model], ["flavour", "pytorch"], ["optimizer", "sgd"],
                   ["lr", 0.01], ["epochs", epochs]]
    path = folder / f"{model}-{rows}x{epochs}{'-outlier' if outlier else ''}.xlsx"
    XlsxBackend.create(str(path), {"data": [["x", "y"]] + [[a, b] for a, b in zip(x.tolist(), y.tolist())],
                                   "experiments": experiments})
    return path


def measure(template: Path, record_all: bool) -> dict:
    """One fresh process running the workbook (a fresh copy: a Run continues from saved state)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / template.name
        shutil.copy(template, path)
        code = CHILD.format(root=str(ROOT), record_all=record_all, path=str(path))
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--models", default="linear,two_linear")
    ap.add_argument("--demo-epochs", type=int, default=20_000)
    ap.add_argument("--outlier", type=float, default=1e6, help="0: no diverging run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"{args.rows:,} rows x {args.epochs} epochs, pytorch sgd, fresh process each, paths interleaved")
        print(f"{'model':<12}{'path':<18}{'peak MB':>10}{'seconds':>10}  sampled")
        for model in args.models.split(","):
            template = book(folder, args.rows, args.epochs, model)
            got = {}
            for record_all in (True, False):
                r = got[record_all] = measure(template, record_all)
                name = "record every line" if record_all else "record the plan"
                print(f"{model:<12}{name:<18}{r['peak_mb']:>10.0f}{r['seconds']:>10.2f}  {r['sampled']}")
            print(f"{'':<12}{'ratio new/old':<18}{got[False]['peak_mb'] / got[True]['peak_mb']:>10.2f}"
                  f"{got[False]['seconds'] / got[True]['seconds']:>10.2f}   target: peak <= 600 MB")
        if args.outlier:  # a run that diverges after an epoch: recorded sampled, then again whole up to there
            template = book(folder, args.rows, args.epochs, "linear", args.outlier)
            got = {r: measure(template, r) for r in (True, False)}
            print(f"linear, last row x = {args.outlier:g}, y = 0 (diverges at its step): record every line "
                  f"{got[True]['peak_mb']:.0f} MB {got[True]['seconds']:.2f} s, record the plan "
                  f"{got[False]['peak_mb']:.0f} MB {got[False]['seconds']:.2f} s; diverged: {got[False]['diverged']}")
        if args.demo_epochs:
            template = demo_book(folder, args.demo_epochs)
            got = {r: measure(template, r) for r in (True, False)}
            print(f"demo, {args.demo_epochs:,} epochs x 4 experiments: record every line "
                  f"{got[True]['seconds']:.2f} s, record the plan {got[False]['seconds']:.2f} s "
                  f"(ratio {got[False]['seconds'] / got[True]['seconds']:.2f})")


if __name__ == "__main__":
    main()
