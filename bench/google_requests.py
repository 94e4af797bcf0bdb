"""Benchmark: Sheets API requests and bytes per run, sheetsync's Google backend against the
usual gspread way. Not a test; run ``python bench/google_requests.py [ROWS]`` (default 10000).

Everything runs offline against the fake Sheets API of ``tests/google/fake_sheets.py`` through
`responses`, so the figures count requests and JSON bytes, not network time. The token
exchange is counted apart (one per process for both ways).

Jobs, each done the two ways from the same starting spreadsheet:

- ``demo``: `sheetsync.runner.run` on the demo inputs (29 rows, 4 experiments), a first run
  and a second one that continues from the saved state;
- ``5x{ROWS}``: a first run on 5 experiments and ROWS data rows (1 epoch each).

The gspread way replays the very plan sheetsync wrote, as a gspread user typically would:
``open_by_key``; per input tab ``worksheet(title).get_all_values()``; per output tab
``del_worksheet`` (if present), ``add_worksheet``, ``update`` (values, USER_ENTERED when the
tab has formulas), ``format`` (bold header), ``freeze``; one ``batch_update`` per chart.
NaN is replaced by "" (gspread would send invalid JSON otherwise). Number formats, widths,
notes, fills and ownership marks are left out of the gspread way, which favours it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import responses

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "google"))

import google.oauth2.credentials  # noqa: E402
import gspread  # noqa: E402
from fake_sheets import FakeSheetsAPI  # noqa: E402

from sheetsync.backends.base import Plan, TabPlan  # noqa: E402
from sheetsync.backends.google import ChartWriter, GoogleBackend, header_cells, tab_grid  # noqa: E402
from sheetsync.backends.retry import QuotaBuckets  # noqa: E402
from sheetsync.demo import EXPERIMENTS, demo_tabs  # noqa: E402
from sheetsync.runner import run  # noqa: E402

KEY = "1BenchBenchBenchBenchBenchBenchBench0123456"
TOKEN = "ya29.bench-token"
USER = "bench@example.com"


# -- the jobs ------------------------------------------------------------------------------------


def big_inputs(rows: int) -> dict[str, list[list]]:
    rng = np.random.default_rng(0)
    x = rng.integers(1, 100, rows)
    data = [["x", "y"]] + [[int(a), int(2 * a + 30)] for a in x]
    experiments = [list(r) for r in EXPERIMENTS]
    experiments[0].append("adam2")
    for row, extra in zip(experiments[1:], ["linear", "pytorch", "adam", 0.5, 1, 1, 1, None, None]):
        row.append(extra)
    for row in experiments:
        if row[0] == "epochs":
            row[1:] = [1] * (len(row) - 1)
    return {"data": data, "experiments": experiments}


def seed(fake: FakeSheetsAPI, tabs: dict[str, list[list]]):
    book = fake.create(KEY, shared_with={USER}, tabs=tuple(tabs))
    for title, rows in tabs.items():
        sheet = book.by_title(title)
        sheet.grid["rowCount"] = max(1000, len(rows))
        sheet.fill(rows)
    return book


class Recording(GoogleBackend):
    """A GoogleBackend that keeps the plans it applied (the gspread way replays them)."""

    plans: list[Plan]

    def apply(self, plan: Plan) -> None:
        self.plans = getattr(self, "plans", []) + [plan]
        super().apply(plan)


def sheetsync_way(fake: FakeSheetsAPI, runs: int, **options) -> list[Plan]:
    plans = []
    for _ in range(runs):
        backend = Recording(KEY, google.oauth2.credentials.Credentials(token=TOKEN),
                            bucket=QuotaBuckets({"user": 1e9, "project": 1e9}), **options)
        run(KEY, backend=backend)
        plans += backend.plans
    return plans


# -- the usual gspread way ----------------------------------------------------------------------------


def grid_of(tab: TabPlan) -> tuple[list[list], bool]:
    rows, cols = tab.extent()
    grid = [[""] * cols for _ in range(rows)]
    formulas = False
    for table in tab.tables:
        for j, column in enumerate(table.columns):
            grid[table.row][table.col + j] = column.header
            values = column.values.tolist() if isinstance(column.values, np.ndarray) else list(column.values)
            for i, v in enumerate(values):
                f = column.formulas[i] if column.formulas is not None else None
                formulas |= bool(f)
                grid[table.row + 1 + i][table.col + j] = f or plain(v)
    for text in tab.texts:
        formulas |= bool(text.formula)
        grid[text.row][text.col] = text.formula or plain(text.value)
    return grid, formulas


def plain(v):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return v.item() if isinstance(v, np.generic) else v


def gspread_way(plans: list[Plan], input_tabs: list[str]) -> None:
    gc = gspread.Client(google.oauth2.credentials.Credentials(token=TOKEN))
    for plan in plans:
        sh = gc.open_by_key(KEY)
        titles = [ws.title for ws in sh.worksheets()]
        for title in input_tabs:
            if title in titles:
                sh.worksheet(title).get_all_values()
        existing = {ws.title: ws for ws in sh.worksheets()}
        ids = {t: ws.id for t, ws in existing.items()}
        for tab in plan.tabs:
            if tab.name in existing:
                sh.del_worksheet(existing[tab.name])
            rows, cols = tab_grid(tab)  # room for charts too, as sheetsync makes
            ws = sh.add_worksheet(tab.name, rows=rows, cols=cols)
            ids[tab.name] = ws.id
            grid, formulas = grid_of(tab)
            if grid:
                ws.update(grid, "A1", value_input_option="USER_ENTERED" if formulas else "RAW")
            if tab.tables:
                ws.format("1:1", {"textFormat": {"bold": True}})
            if tab.frozen_rows:
                ws.freeze(rows=tab.frozen_rows)
        charts = ChartWriter(ids, header_cells(plan))
        for tab in plan.tabs:
            for chart in tab.charts:
                request = json.loads(charts.request(chart, ids[tab.name], 0).json)
                del request["addChart"]["chart"]["chartId"]  # let Google choose, as usual
                sh.batch_update({"requests": [request]})


# -- measuring ---------------------------------------------------------------------------------------


def measure(label: str, tabs: dict, job) -> dict:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeSheetsAPI().register(mock)
        fake.add_user_token(TOKEN, USER)
        seed(fake, tabs)
        start = time.perf_counter()
        result = job(fake)
        seconds = time.perf_counter() - start
        calls = fake.api_calls
    return {"label": label, "requests": len(calls), "reads": sum(c.method == "GET" for c in calls),
            "sent": sum(c.bytes_in for c in calls), "received": sum(c.bytes_out for c in calls),
            "largest": max((c.bytes_in for c in calls), default=0), "seconds": seconds, "result": result}


def scenario(name: str, tabs: dict, runs: int) -> list[dict]:
    ours = measure("sheetsync", tabs, lambda fake: sheetsync_way(fake, runs))
    values = measure("sheetsync (values.batchGet)", tabs,
                     lambda fake: sheetsync_way(fake, runs, value_source="values"))
    inputs = ["data", "experiments", "runs", "state"]
    theirs = measure("gspread usual way", tabs, lambda fake: gspread_way(ours["result"], inputs))
    for row in (ours, values, theirs):
        row["scenario"], row["runs"] = name, runs
    return [ours, values, theirs]


def report(rows: list[dict]) -> None:
    print(f"{'scenario':<22} {'approach':<29} {'req/run':>8} {'GET':>5} {'sent/run':>12} "
          f"{'recv/run':>12} {'largest body':>13} {'s (fake)':>9}")
    for r in rows:
        n = r["runs"]
        print(f"{r['scenario']:<22} {r['label']:<29} {r['requests'] / n:>8.1f} {r['reads'] / n:>5.1f} "
              f"{r['sent'] / n:>12,.0f} {r['received'] / n:>12,.0f} {r['largest']:>13,} {r['seconds']:>9.2f}")
    print("\nratios, gspread usual way / sheetsync:")
    for i in range(0, len(rows), 3):
        ours, theirs = rows[i], rows[i + 2]
        print(f"  {ours['scenario']:<22} requests x{theirs['requests'] / ours['requests']:.1f}   "
              f"bytes sent x{theirs['sent'] / ours['sent']:.2f}   "
              f"bytes received x{theirs['received'] / max(ours['received'], 1):.2f}")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    results = scenario("demo (1 run)", demo_tabs(), 1)
    results += scenario("demo (2 runs)", demo_tabs(), 2)
    results += scenario(f"5 exp x {rows:,} rows", big_inputs(rows), 1)
    report(results)


if __name__ == "__main__":
    main()
