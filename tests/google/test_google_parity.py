"""The same plan through the local .xlsx backend and through the (fake) Google backend reads
back as the same cells."""

from __future__ import annotations

import numpy as np

from sheets_plans import demo_plan
from sheetsync.backends.base import Uncomputed
from sheetsync.backends.xlsx import XlsxBackend

USER_TABS = {"data": [["x", "y"], [1, 2.5], [2, 4.5], [3, 6.5]], "notes": [["my own notes"]]}


def plan():
    p = demo_plan(("A", "B"), n_rows=25)
    p.tabs[0].tables[0].columns[2].values[5] = np.nan  # a blank in both
    return p


def test_same_plan_same_cells(tmp_path, backend, book):
    local = XlsxBackend.create(tmp_path / "lab.xlsx", USER_TABS)
    local.apply(plan())
    backend.read(["data"])
    backend.apply(plan())
    names = [t.name for t in plan().tabs]
    here, there = local.read(names + ["data"]), backend.read(names + ["data"])
    assert [(t.title, t.owned) for t in here.tabs] == [(t.title, t.owned) for t in there.tabs]
    assert here.values["data"] == there.values["data"]
    compared = 0
    for name in names:
        ours, theirs = here.values[name], there.values[name]
        assert len(ours) == len(theirs), name
        for r, (a, b) in enumerate(zip(ours, theirs)):
            a = [None if isinstance(v, Uncomputed) else v for v in a]  # the fake does not compute formulas
            while a and a[-1] is None:
                a.pop()
            assert a == b, (name, r)
            compared += len(b)
    assert compared > 600  # every cell of every tab, not a sample


def test_dates_errors_and_integers_read_alike(tmp_path, backend, book):
    import datetime as dt
    local = XlsxBackend.create(tmp_path / "dates.xlsx", {"when": [["day", "n"], [dt.datetime(2024, 1, 31), 3]]})
    sheet = book.by_title("notes")
    sheet.props["title"] = "when"
    sheet.cells.clear()
    sheet.cells[(0, 0)] = {"userEnteredValue": {"stringValue": "day"}}
    sheet.cells[(0, 1)] = {"userEnteredValue": {"stringValue": "n"}}
    sheet.cells[(1, 0)] = {"userEnteredValue": {"numberValue": 45322},
                           "userEnteredFormat": {"numberFormat": {"type": "DATE", "pattern": "yyyy-mm-dd"}}}
    sheet.cells[(1, 1)] = {"userEnteredValue": {"numberValue": 3}}
    here, there = local.read(["when"]).values["when"], backend.read(["when"]).values["when"]
    assert here == there
    assert type(here[1][1]) is type(there[1][1]) is int
