"""Long runs and the run log: what grows with what is written, not with what is computed.

    python bench/long_runs.py [--epochs 20000] [--log-rows 5000]

Side by side, in one process (issue 17):
- the demo workbook (4 experiments) at 5 epochs and at `--epochs` epochs: the whole `run`, its
  training time, and the layout (map) time; the target is the long run within 2x of the short
  run plus the extra training time;
- `layout.map.render_map` alone on the long run (the per-line map of commit 8094b82 took 3.48 s a
  line at 20,000 epochs, 263x this one when last measured; its interface has gone since);
- the run log (`layout.runs.render_runs`) at 0, 1,000 and `--log-rows` previous rows, against the
  row-by-row renderer it replaced; the target is <= 5 ms at the 5,000-row cap.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sheetsync import runner  # noqa: E402
from sheetsync.demo import EXPERIMENTS  # noqa: E402
from sheetsync.backends.xlsx import XlsxBackend  # noqa: E402
from sheetsync.engine.result import Result  # noqa: E402
from sheetsync.layout import map as layout_map  # noqa: E402
from sheetsync.layout.runs import RUNS_HEADER, RunEntry, render_runs  # noqa: E402
from yardstick import best_of, demo_book  # noqa: E402



def timed_run(path: Path) -> dict[str, float]:
    """One `run`, with the time spent in each phase (patched timers): read, train, map (the map
    and formula mode's formulas), render (the rest of the layout), write; and `rerun`, the loop
    run again inside the layout for the lines a sampled steps tab writes (engine/record.py),
    which is training, taken out of `render`."""
    spent = {"read": 0.0, "train": 0.0, "rerun": 0.0, "map": 0.0, "render": 0.0, "write": 0.0}
    patched = [(runner, "train", "train"), (runner, "_formulas_and_maps", "map"), (runner, "render", "render"),
               (Result, "record_lines", "rerun"), (XlsxBackend, "read", "read"), (XlsxBackend, "apply", "write")]
    originals = [getattr(owner, name) for owner, name, _ in patched]

    def timed(key, fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[key] += time.perf_counter() - start
        return wrapper

    for (owner, name, key), fn in zip(patched, originals):
        setattr(owner, name, timed(key, fn))
    try:
        start = time.perf_counter()
        runner.run(str(path))
        spent["run"] = time.perf_counter() - start
        spent["render"] -= spent["rerun"]
    finally:
        for (owner, name, _), fn in zip(patched, originals):
            setattr(owner, name, fn)
    return spent


def log_frame(rows: int) -> pd.DataFrame:
    entry = RunEntry("run", ["basic", "momentum"], "abc123", ["graddesc"], "ok", ["basic: first run"])
    return pd.DataFrame([entry.row()] * rows, columns=RUNS_HEADER)


def old_render_runs_rows(previous: pd.DataFrame) -> list[list[str]]:
    """What the run log did per previous row before it was columnar (iterrows)."""
    rows = []
    for _, r in previous.iterrows():
        rows.append(["" if r.get(h) is None else str(r.get(h)) for h in RUNS_HEADER])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20_000)
    parser.add_argument("--log-rows", type=int, default=5_000)
    args = parser.parse_args()
    n_exp = len(EXPERIMENTS[0]) - 1
    with tempfile.TemporaryDirectory() as tmp:
        short = timed_run(demo_book(Path(tmp), 5))
        long = timed_run(demo_book(Path(tmp), args.epochs))
    keys = ["run", "read", "train", "rerun", "map", "render", "write"]
    print(f"demo, {n_exp} experiments " + "".join(f"{k:>9}" for k in keys))
    for label, t in ((f"{5:>6} epochs", short), (f"{args.epochs:>6} epochs", long)):
        print(f"  {label}         " + "".join(f"{t[k]:8.2f}s" for k in keys))
    extra = long["train"] + long["rerun"] - short["train"] - short["rerun"]  # the loop, both passes
    print(f"  long / (short + extra training) = {long['run'] / (short['run'] + extra):.2f} (target <= 2); "
          f"long - extra training = {long['run'] - extra:.2f}s against 2 x short = {2 * short['run']:.2f}s")

    from sheetsync import Experiment, train
    from sheetsync.demo import X, Y
    from sheetsync.layout.formulas import StepFormulas

    result = train(Experiment("basic", epochs=args.epochs), X, Y)
    sf = StepFormulas(result, lambda i, name: f"data!{'A' if name == 'x' else 'B'}{i + 2}",
                      {"lr": "experiments!B5"}, 4)
    now = best_of(3, lambda: layout_map.render_map("basic", sf, "basic steps"))[0]
    line = f"map of one experiment at {args.epochs} epochs: {now * 1e3:.1f} ms"
    print(line)

    entry = RunEntry("run", ["basic"], "abc", ["graddesc"])
    print("run log: previous rows   render_runs   old per-row loop")
    for rows in (0, 1_000, args.log_rows):
        frame = log_frame(rows)
        now = best_of(5, lambda: render_runs([RUNS_HEADER] + frame.values.tolist(), entry))[0]  # the tab as read
        then = best_of(2, lambda: old_render_runs_rows(frame))[0]
        print(f"  {rows:>6}              {now * 1e3:7.2f} ms   {then * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
