"""Workbooks for tests, written with openpyxl as a learner's Excel would hold them, and read
back the same way."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import openpyxl

from sheetsync.demo import demo_tabs


def write_book(path: Path, tabs: dict[str, list[list]] | None = None, edit=None) -> Path:
    """A workbook of user tabs (the demo's inputs by default); `edit(wb)` changes it first."""
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in (tabs or demo_tabs()).items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(list(row))
    if edit:
        edit(wb)
    wb.save(path)
    return path


def rows_of(path: Path, tab: str, read_only: bool = False) -> list[list]:
    """A tab's cached values, row by row (`read_only`: openpyxl's streaming reader, for big tabs)."""
    wb = openpyxl.load_workbook(path, data_only=True, read_only=read_only)
    return [list(r) for r in wb[tab].iter_rows(values_only=True)]


def record(path: Path, tab: str, header_row: int, row: int) -> dict:
    """Sheet row `row` (1-based) of `tab` as {header: value}, the header in `header_row`."""
    wb = openpyxl.load_workbook(path, data_only=True)
    ws = wb[tab]
    header = [c.value for c in ws[header_row]]
    values = [c.value for c in ws[row]]
    return {h: v for h, v in zip(header, values) if h is not None}


def parts(path: Path) -> dict[str, str]:
    """Hash of every part of the package, to prove what a run left untouched."""
    with zipfile.ZipFile(path) as z:
        return {n: hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()}


def sheet_names(path: Path) -> list[str]:
    return openpyxl.load_workbook(path).sheetnames


def formula_cells(tab) -> dict[tuple[int, int], str]:
    """A TabPlan's formulas by (row, column), 0-based: its tables' cells and its loose texts."""
    out = {}
    for t in tab.tables:
        for j, c in enumerate(t.columns):
            for i, f in enumerate(c.formulas or []):
                if f:
                    out[(t.row + 1 + i, t.col + j)] = f
    out.update({(x.row, x.col): x.formula for x in tab.texts if x.formula})
    return out
