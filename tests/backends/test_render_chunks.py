"""A table that shares some of its rows (a steps table beside its charts' data, a loose text) is
written whole, a chunk of rows at a time, where nothing shares them, and cell by cell only in
the chunks that are shared; tables side by side on exactly the same rows (an epochs history and
its log10 loss) are written together a chunk at a time where nothing else shares those rows. The
bytes must be those of writing the whole tables cell by cell, as every such table was written
before."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from sheetsync.backends.base import Column, Highlight, Plan, Table, TabPlan, Text
from sheetsync.backends.xlsx import XlsxBackend, render

from workbooks import rows_of
from xlsx_builders import plain_workbook


def shared_plan(n: int) -> Plan:
    x = np.linspace(-1, 1, n)
    x[[5, min(300, n - 2), n - 1]] = np.nan  # blank cells, rendered apart, in shared and alone chunks
    steps = Table([Column("step", np.arange(1, n + 1), number_format="0"), Column("x", x),
                   Column("label", [f"r{i}" if i % 4 else "" for i in range(n)])], row=2, col=0)
    beside = Table([Column("chart", np.arange(40.0))], row=3, col=5)  # the first rows only
    tab = TabPlan("steps", tables=[steps, beside], frozen_rows=3, row_heights={0: 60.0},
                  texts=[Text(0, 0, "title"), Text(250, 7, "a note far down, beside the table")],
                  highlights=[Highlight(row=400, col=1, n_rows=2, n_cols=1, color="FFFF00")])
    alone = TabPlan("alone", tables=[Table([Column("x", x)], row=1, col=0)], texts=[Text(0, 0, "above")])
    with np.errstate(all="ignore"):
        log10 = np.log10(np.abs(x))
    history = Table([Column("epoch", np.arange(1, n + 1), number_format="0"), Column("loss", x),
                     Column("dead", ["a" if i % 7 == 0 else "" for i in range(n)])], row=2, col=0)
    side = Table([Column("log10 loss", log10, number_format="0.00")], row=2, col=4)  # the same rows
    far = Table([Column("more", -x)], row=2, col=6)  # a third on them, further right
    epochs = TabPlan("epochs", tables=[side, history, far], frozen_rows=3,
                     texts=[Text(0, 0, "title"), Text(min(200, n), 9, "a note beside the group")],
                     highlights=[Highlight(row=60, col=4, n_rows=3, n_cols=1, color="FFFF00")])
    return Plan([tab, alone, epochs])


def cell_by_cell_where_shared_at_all(self, table, besides=()):
    """The rule before: a table sharing any row is written cell by cell in all of them."""
    spans = ORIGINAL(self, table)
    first, last = table.row, table.row + table.n_rows
    return [(-1, 10**9)] if any(a <= last and first <= b for a, b in spans) else spans


ORIGINAL = render.TabRenderer._busy_rows


def worksheets(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/")}


@pytest.mark.parametrize("n", [97, 98, 500, 1000])
def test_shared_tables_write_the_bytes_they_wrote_cell_by_cell(tmp_path, monkeypatch, n):
    monkeypatch.setattr(render, "CHUNK_ROWS", 97)  # many chunks: shared ones and alone ones
    now, before = tmp_path / "now.xlsx", tmp_path / "before.xlsx"
    for path in (now, before):
        plain_workbook(path)
    XlsxBackend(now).apply(shared_plan(n))
    monkeypatch.setattr(render.TabRenderer, "_busy_rows", cell_by_cell_where_shared_at_all)
    XlsxBackend(before).apply(shared_plan(n))
    assert worksheets(now) == worksheets(before)


@pytest.mark.parametrize("style", ["General", "0.00"])
def test_nan_and_infinities_are_empty_cells_and_every_number_reads_back_exactly(tmp_path, monkeypatch, style):
    """A NaN or infinity is written as an empty cell, in a chunk written whole, in one written
    cell by cell and in a row holding an overlaid cell; every other number reads back as the
    same double (Excel's and LibreOffice's reader, openpyxl here, not ours)."""
    monkeypatch.setattr(render, "CHUNK_ROWS", 7)
    hard = [0.0, -0.0, 1e-5, 1e16, 1.5, np.nan, np.inf, -np.inf, 5e-324, 1.7976931348623157e308, 0.1,
            123456789.0, -2.5e-300, np.nan]
    x = np.array(hard * 3)
    n = len(x)
    table = Table([Column("i", np.arange(n), number_format="0"), Column("x", x, number_format=style)], row=1, col=0)
    tab = TabPlan("t", tables=[table], texts=[Text(20, 3, "a note beside one chunk")],
                  highlights=[Highlight(row=2 + 5, col=1, n_rows=2, n_cols=1, color="FFFF00")])  # x's NaN row
    path = tmp_path / "b.xlsx"
    plain_workbook(path)
    XlsxBackend(path).apply(Plan([tab]))
    rows = rows_of(path, "t")[2:2 + n]
    for i, v in enumerate(x.tolist()):
        got = rows[i][1] if len(rows[i]) > 1 else None
        if np.isfinite(v):
            assert got == v and np.signbit(got) == np.signbit(v), (i, v, got)
        else:
            assert got is None, (i, v, got)
    assert all(b"null" not in xml for xml in worksheets(path).values())


def a_table(rng: np.random.Generator, n: int) -> list[render.ColumnData]:
    """Columns of every kind the renderer meets: floats with NaN, infinities, -0.0 and the
    extremes; integers; float32; texts (some blank, some not ASCII) rendered whole."""
    hard = np.array([0.0, -0.0, 1e-5, 1e16, np.nan, np.inf, -np.inf, 5e-324, 1.7976931348623157e308, 0.1])
    floats = rng.normal(size=n) * 10.0 ** rng.integers(-20, 20, size=n)
    hit = rng.random(n) < 0.2
    floats[hit] = rng.choice(hard, size=hit.sum())
    texts = [rng.choice(["", "lr", "é α", " padded ", "<&>"]) for _ in range(n)]
    with np.errstate(over="ignore"):
        narrow = floats.astype(np.float32)
    return [render.ColumnData(floats, None, 0, True),
            render.ColumnData(rng.integers(-10**12, 10**12, size=n), None, 3, True),
            render.ColumnData(texts, None, 2, False),
            render.ColumnData(narrow, None, 5, True)]  # overflows to infinities


@pytest.mark.parametrize("first_row", [1, 8, 95, 999_990])
@pytest.mark.parametrize("with_text", [False, True])
def test_the_c_row_renderer_writes_the_bytes_of_the_python_path(monkeypatch, first_row, with_text):
    """rowwrite lays out a chunk as one %-format of the template did: framed or not, with
    overlaid cells, row numbers gaining a digit inside the chunk, texts that are not ASCII."""
    from sheetsync.backends.xlsx import rowwrite
    from sheetsync.engine.loop import cc

    assert cc.compiler() is None or rowwrite._load() is not None  # a machine with cc builds it
    rng = np.random.default_rng(first_row)
    columns = a_table(rng, 40)
    if not with_text:
        columns = [c for c in columns if c.fast]
    letters = [render.col_letter(2 + j) for j in range(len(columns))]
    patches = {(12, 1): '<c r="D20" s="9"><v>7</v></c>', (13, 0): '<c r="C21" s="9"/>'}

    def outputs():
        out = []
        for framed in (True, False):
            r = render.RowsRenderer(letters, columns, first_row, framed=framed)
            for i0, i1 in ((0, 40), (5, 17), (12, 14), (39, 40)):
                p = {k: v for k, v in patches.items() if i0 <= k[0] < i1}
                out.append(r.framed(i0, i1, p) if framed else r.separate(i0, i1, p))
        return out

    with_c = outputs()
    monkeypatch.setattr(rowwrite, "_load", lambda: None)
    assert outputs() == with_c
