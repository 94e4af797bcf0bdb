"""`NAME map`: the precedents map, Excel's Trace Precedents written down for every column.

One row per output column: the cells it fills, its formula pattern (A1 and R1C1) on a typical
row, its direct precedents and dependents, and the boundary rows whose formula differs (the
Run's first step reads the saved state; an epoch's first row reads what the previous epoch
handed on). Everything here is derived from `StepFormulas`, the same object that writes formula
mode, so the map cannot describe a formula that is not the one in the sheet.
"""

from __future__ import annotations

import re

import numpy as np

from ..backends.base import Column, Table, TabPlan, Text, col_letter, quote_tab
from .formulas import Ref, StepFormulas, absolute

MAX_BOUNDARY_ROWS = 8

_A1 = re.compile(r"((?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?(\$?)([A-Z]{1,3})(\$?)(\d+)(?![\w(])")


def to_r1c1(formula: str, row: int, col: int) -> str:
    """An A1 formula as R1C1, relative to the cell at (row, col) (1-based row, 0-based col)."""

    def convert(m: re.Match) -> str:
        tab, abs_col, letters, abs_row, digits = m.groups()
        c = 0
        for ch in letters:
            c = c * 26 + ord(ch) - 64
        c -= 1
        r = int(digits)
        rr = f"R{r}" if abs_row else ("R" if r == row else f"R[{r - row}]")
        cc = f"C{c + 1}" if abs_col else ("C" if c == col else f"C[{c - col}]")
        return (tab or "") + rr + cc

    return _A1.sub(convert, formula)


def _describe(ref: Ref, line: int, sf: StepFormulas) -> str:
    if ref.kind == "line":
        if ref.line == line:
            return f"{ref.name} (same row)"
        gap = line - ref.line
        return f"{ref.name} ({'row above' if gap == 1 else f'{gap} rows up'})"
    if ref.kind == "data":
        return f"{ref.name.split('!')[0]}!{re.sub(r'[0-9]+$', '', ref.name.split('!')[-1])} ({ref.column} column)"
    if ref.kind == "setting":
        if ref.name.split("!")[0].endswith(" steps"):  # formula mode's settings block
            return f"{ref.name} ({ref.setting}: the settings block, the value in force)"
        return f"{ref.name} ({ref.setting})"
    if ref.kind == "carried":
        return f"{ref.name} carried in ({ref.value!r})"
    return f"{ref.value!r} ({ref.name})"


def _typical_line(sf: StepFormulas) -> int:
    """A line whose formulas follow the column's pattern: not the first step, a batch's end,
    not an epoch's first row where the epoch hands values on."""
    lines = sf.lines
    for i in range(len(lines.step)):
        if lines.prev_end[i] >= 0 and lines.batch_end[i] and not lines.epoch_start[i] and sf.carried(i) is None:
            return i
    return len(lines.step) - 1


def _boundary(sf: StepFormulas, column: str, typical: str | None) -> list[str]:
    lines = sf.lines
    notes = []
    special = np.flatnonzero((lines.prev_end < 0) | lines.epoch_start)  # where carried values enter
    for i in map(int, special):
        f = sf.formula(i, column)
        if f is None or (typical is not None and to_r1c1(f, lines.row(i), sf.columns.index(column)) ==
                         to_r1c1(typical, lines.row(_typical_line(sf)), sf.columns.index(column))):
            continue
        why = "first step of this Run: reads the saved state" if lines.prev_end[i] < 0 else \
            f"first row of epoch {int(lines.epoch[i])}"
        if sf.carried(i) is not None and lines.prev_end[i] >= 0:
            why += ": reads values the workbook's macro pasted"
        elif (lines.prev_end[i] >= 0 and lines.epoch_start[i] and column in sf.program.param_columns
              and sf.job.spec.carry_inputs):
            why += ": the last row's inputs (the workbook throws that row's update away)"
        notes.append(f"row {lines.row(i)} ({why}): {f}")
    if len(notes) > MAX_BOUNDARY_ROWS:
        notes = notes[:MAX_BOUNDARY_ROWS] + [f"… {len(notes) - MAX_BOUNDARY_ROWS} more epoch starts, same pattern"]
    return notes


def _dependents(sf: StepFormulas, i: int) -> dict[str, list[str]]:
    """Who reads each column of line `i`: found by asking the following lines' cells."""
    n = len(sf.lines.step)
    out: dict[str, list[str]] = {c: [] for c in sf.columns}
    for k in range(i, min(n, i + max(sf.batch, 1) + 2)):
        for d in sf.columns:
            for r in sf.precedents(k, d):
                if r.kind == "line" and r.line == i:
                    where = "same row" if k == i else ("next row" if k == i + 1 else f"{k - i} rows down")
                    out[r.name].append(f"{d} ({where})")
    return {c: list(dict.fromkeys(v)) for c, v in out.items()}


def map_rows(sf: StepFormulas, steps_tab: str) -> list[dict]:
    """One dict per column of the steps table (what the map tab shows)."""
    i = _typical_line(sf)
    row = sf.lines.row(i)
    n = len(sf.lines.step)
    first, last = sf.lines.row(0), sf.lines.row(n - 1)
    entries = []
    for c in sf.columns:
        f = sf.formula(i, c)
        refs = sf.precedents(i, c) if f else []
        entries.append({"column": c, "refs": refs, "formula": f})
    dependents = _dependents(sf, i)
    rows = []
    for e in entries:
        c, f = e["column"], e["formula"]
        letter = col_letter(sf.columns.index(c))
        rows.append({
            "tab": steps_tab,
            "column": c,
            "cells": f"{letter}{first}:{letter}{last}",
            "formula (A1)": f or "(a number)",
            "formula (R1C1)": to_r1c1(f, row, sf.columns.index(c)) if f else "",
            "precedents": "; ".join(_describe(r, i, sf) for r in e["refs"]),
            "dependents": "; ".join(dependents[c]),
            "boundary rows": "\n".join(_boundary(sf, c, f)) if f and c not in sf.program.input_columns else "",
        })
    return rows


def epochs_rows(sf: StepFormulas, steps_tab: str, epochs_tab: str, columns: list[str],
                first_history_row: int) -> list[dict]:
    """The epochs tab's columns for this Run's first epoch: what each is computed from.

    `first_history_row` is the 1-based sheet row of this Run's first epoch in the epochs tab.
    """
    lines = sf.lines
    if not len(lines.step):
        return []
    first_epoch = int(lines.epoch[0])
    idx = np.flatnonzero(lines.epoch == first_epoch)
    top, bottom = lines.row(int(idx[0])), lines.row(int(idx[-1]))
    tab = quote_tab(steps_tab)

    def span(column: str) -> str:
        letter = col_letter(sf.columns.index(column))
        return f"{tab}!{letter}{top}:{letter}{bottom}"

    def last(column: str) -> str:
        return f"{tab}!{col_letter(sf.columns.index(column))}{bottom}"

    out = []
    for c in columns:
        if c == "epoch":
            formula, what = None, "the epoch number, counting across Runs"
        elif c == "loss":
            formula, what = f"=AVERAGE({span('loss')})", f"the mean of the epoch's row losses ({span('loss')})"
        elif c in sf.program.param_columns:
            source = c if sf.job.spec.carry_inputs else f"new {c}"
            formula = f"={last(source)}"
            what = (f"{c} carried into the next epoch: the last row's input (its update is thrown away)"
                    if sf.job.spec.carry_inputs else f"{c} after the epoch's last update")
        elif c == "lr":
            ref = sf.setting_ref("lr", first_epoch)
            formula = None
            if ref.kind == "setting":  # an experiments cell, or the steps tab's settings block
                formula = "=" + absolute(ref.name)
            what = ref.name if ref.kind == "setting" else f"{ref.name}"
        elif c == "sqrt(sum err^2)":
            formula, what = f"=SQRT(SUMSQ({span('err')}))", "the workbook's footer: sqrt of the sum of err²"
        elif c.startswith("gap "):
            q = c[4:]
            formula = f"=MAX(ABS({span(f'de/d{q} est')}-{span(f'de/d{q}')}))"
            what = "largest |numeric - analytic| gradient gap in the epoch (an array formula)"
        elif c == "dead":
            formula, what = None, "parameters whose gradient was 0 on every row of the epoch (dead ReLU)"
        else:
            formula, what = None, "diagnostic"
        out.append({"tab": epochs_tab, "column": c, "cells": f"row {first_history_row} onwards",
                    "formula (A1)": formula or "(a value)",
                    "formula (R1C1)": to_r1c1(formula, first_history_row, columns.index(c)) if formula else "",
                    "precedents": what, "dependents": "", "boundary rows": ""})
    return out


def render_map(name: str, sf: StepFormulas, steps_tab: str, epochs_note: list[str] | None = None,
               extra_rows: list[dict] | None = None) -> TabPlan:
    rows = map_rows(sf, steps_tab) + list(extra_rows or [])
    headers = ["tab", "column", "cells", "formula (A1)", "formula (R1C1)", "precedents", "dependents",
               "boundary rows"]
    widths = [16, 12, 14, 48, 48, 48, 36, 60]
    columns = [Column(h, [r[h] for r in rows], "@", w) for h, w in zip(headers, widths)]
    tab = TabPlan(f"{name} map", kind="map", frozen_rows=3)  # runner.map_tab_name
    tab.texts.append(Text(0, 0, f"{name}: where every number in '{steps_tab}' comes from", bold=True))
    tab.texts.append(Text(1, 0, "Each column's formula on a typical row (row "
                          f"{sf.lines.row(_typical_line(sf))}), its direct precedents and dependents. "
                          "Rows whose formula differs are listed under 'boundary rows'. "
                          + " ".join(epochs_note or [])))
    tab.tables.append(Table(columns, row=2, col=0))
    return tab
