"""`NAME factors` and `NAME similar` through the (fake) Google backend: the same Plan reads back as
the same cells as the .xlsx backend writes, and every colour scale lands as a gradient rule on the
fixed values the layout chose (white at 0 for factors, one scale for predicted and actual ratings)."""

from __future__ import annotations

import numpy as np
from sheets_support import KEY
from test_factors_recalc import case, formula_cells  # the 15 × 15 case LibreOffice recalculates

from sheetsync.backends.base import Plan
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.engine.embeddings import Ids, Tables
from sheetsync.layout.factors import EmbeddingView
from sheetsync.layout.similar import render_similar


def test_same_cells_and_colour_scales_as_the_xlsx(tmp_path, fake, backend, book):
    formulas, _, data = case(True, (0.0, 5.5))
    plan = Plan([formulas])
    local = XlsxBackend.create(tmp_path / "cf.xlsx", {"data": data, "notes": [["my own notes"]]})
    local.apply(plan)
    sheet = book.by_title("data")
    for r, row in enumerate(data):
        for c, v in enumerate(row):
            if v is not None:
                sheet.cells[(r, c)] = {"userEnteredValue": {"numberValue": v} if not isinstance(v, str)
                                       else {"stringValue": v}}
    backend.read(["data"])
    backend.apply(Plan([formulas]))
    here, there = local.read([formulas.name]).values[formulas.name], backend.read([formulas.name]).values[formulas.name]
    assert len(here) == len(there)
    computed = formula_cells(formulas)  # the fake computes no formula; the .xlsx holds their values
    compared = 0
    for r, (a, b) in enumerate(zip(here, there)):
        for c in range(max(len(a), len(b))):
            if (r, c) not in computed:
                assert (a[c] if c < len(a) else None) == (b[c] if c < len(b) else None), (r, c)
                compared += 1
    assert compared > 300
    written = fake.books[KEY].by_title(formulas.name).cells
    for (r, c), f in list(computed.items())[:50]:  # the formulas themselves land as formulas
        assert written[(r, c)]["userEnteredValue"] == {"formulaValue": f}
    rules = [r["gradientRule"] for r in fake.books[KEY].by_title(formulas.name).rules if "gradientRule" in r]
    assert len(rules) == len(formulas.color_scales) == 6
    points = [(r["minpoint"]["type"], float(r["minpoint"]["value"]), float(r["midpoint"]["value"]),
               float(r["maxpoint"]["value"])) for r in rules]
    assert all(kind == "NUMBER" for kind, *_ in points)
    assert [p[2] for p in points[:4]] == [0.0] * 4  # factors and biases: white at 0
    assert points[4] == points[5]  # predicted and actual ratings: one scale
    assert [(s.low_value, s.mid_value, s.high_value) for s in formulas.color_scales] == [p[1:] for p in points]


def test_the_similar_tab_lands_with_its_scales(fake, backend, book):
    ids = Ids(("1", "2"), ("A", "B", "C"))
    tables = Tables(ids, np.ones((2, 2)), np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), np.zeros(2),
                    np.array([0.5, -0.5, 0.0]))
    tab = render_similar("cf", tables, EmbeddingView(ids, np.array([0, 1, 1]), np.array([0, 1, 2]), np.ones(3)))
    backend.read(["data"])
    backend.apply(Plan([tab]))
    back = backend.read([tab.name]).values[tab.name]
    assert back[2][:3] == ["item", "ratings", "nearest 1"]
    assert back[3][0] == "A" and back[3][2] == "B"
    rules = [r for r in fake.books[KEY].by_title(tab.name).rules if "gradientRule" in r]
    assert len(rules) == len(tab.color_scales) == 2 + 2  # two similarity columns, two bias lists
