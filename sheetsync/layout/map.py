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

from ..a1 import (FORMULA_REF, col_letter, column_index, epochs_tab_name, map_tab_name, quote_tab,
                  steps_tab_name)
from ..backends.base import Column, Table, TabPlan, Text
from .epochs import HEADER_ROW as EPOCHS_HEADER_ROW
from .formulas import MAX_FORMULA_CHARS, FormulaModeError, Ref, StepFormulas, absolute
from .steps import HEADER_ROW as STEPS_HEADER_ROW

MAX_BOUNDARY_ROWS = 8


def to_r1c1(formula: str, row: int, col: int) -> str:
    """An A1 formula as R1C1, relative to the cell at (row, col) (1-based row, 0-based col)."""

    def convert(m: re.Match) -> str:
        tab, abs_col, letters, abs_row, digits = m.groups()
        c = column_index(letters)
        r = int(digits)
        rr = f"R{r}" if abs_row else ("R" if r == row else f"R[{r - row}]")
        cc = f"C{c + 1}" if abs_col else ("C" if c == col else f"C[{c - col}]")
        return (tab or "") + rr + cc

    return FORMULA_REF.sub(convert, formula)


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
    if ref.kind == "table":
        return table_words(ref.name, sf)
    return f"{ref.value!r} ({ref.name})"


def table_words(name: str, sf: StepFormulas) -> str:
    """What a table model's value before the step is, in words (the map and the trace)."""
    slot = name.rpartition("_")[2] if name not in sf.table_slots else name
    table = sf.table_slots.get(slot)
    whose = table.index if table is not None else "row's"
    what = name if name in sf.table_slots else f"{name} (the optimizer's state of {slot})"
    return (f"{what}: the {whose}'s table row before this step, a number the engine writes (the table may "
            f"have moved since that {whose}'s last row: every step updates the whole table)")


def _typical_line(sf: StepFormulas) -> int:
    """A line whose formulas follow the column's pattern: not the first step, a batch's end,
    not an epoch's first row where the epoch hands values on."""
    lines = sf.lines
    for i in range(len(lines.step)):
        if lines.prev_end[i] >= 0 and lines.batch_end[i] and not lines.epoch_start[i] and sf.carried(i) is None:
            return i
    return len(lines.step) - 1


def _special_lines(sf: StepFormulas) -> tuple[np.ndarray, np.ndarray]:
    """The lines where carried values enter (the Run's first step, every epoch start) and a
    kind for each: two lines of one kind have the same formula up to their row numbers (same
    position in their batch, batch size, distance to the line they read, carried or not, and
    the same per-epoch constants as each other), so whether a line's formula differs from the
    typical row is decided once per kind, not once per epoch."""
    lines = sf.lines
    special = np.flatnonzero((lines.prev_end < 0) | lines.epoch_start)
    if not len(special):
        return special, special
    starts, ends = np.flatnonzero(lines.batch_start), np.flatnonzero(lines.batch_end)
    batch_first = starts[np.searchsorted(starts, special, side="right") - 1]
    batch_rows = ends[np.searchsorted(ends, special)] - batch_first + 1
    carried = sf.carried_mask()[special]
    epochs = lines.epoch[special]
    if sf.epoch_constants(int(epochs[0])):  # a macro's lr or eve's d: per epoch
        constants = {e: sf.epoch_constants(e) for e in sorted(set(epochs.tolist()))}  # np.unique would load numpy.ma
        const_id = {c: k for k, c in enumerate(dict.fromkeys(constants.values()))}
        consts = [const_id[constants[e]] for e in epochs.tolist()]
    else:
        consts = np.zeros(len(special), np.int64)
    prev_end, last_of_prev = lines.prev_end[special], lines.last_of_prev_epoch[special]
    prev = np.where(prev_end >= 0, special - prev_end, -1)
    last_prev = np.where(last_of_prev >= 0, special - last_of_prev, -1)
    keys = np.stack([prev_end < 0, lines.epoch_start[special], carried, lines.batch_start[special],
                     lines.batch_end[special], prev, last_prev, special - batch_first, batch_rows, consts],
                    axis=1).astype(np.int64)
    ids: dict[tuple, int] = {}
    kind = np.fromiter((ids.setdefault(k, len(ids)) for k in map(tuple, keys.tolist())), np.int64, len(keys))
    return special, kind


def _boundary(sf: StepFormulas, column: str, typical: str | None,
              special: tuple[np.ndarray, np.ndarray] | None = None) -> list[str]:
    lines = sf.lines
    col = sf.columns.index(column)
    t = _typical_line(sf)
    pattern = None if typical is None else to_r1c1(typical, lines.row(t), col)
    lines_, kind = _special_lines(sf) if special is None else special
    if sf.carried(t) is not None:  # no typical row (a tiny table): its carried values decide
        kind = np.arange(len(lines_))

    def differs(i: int) -> bool:
        f = sf.formula(i, column)
        return f is not None and (pattern is None or to_r1c1(f, lines.row(i), col) != pattern)

    _, first = np.unique(kind, return_index=True)  # kinds are numbered 0, 1, … in order
    decided = np.array([differs(int(lines_[j])) for j in first], bool)  # one formula per kind of line
    listed = lines_[decided[kind]] if len(kind) else lines_
    notes = []
    for i in map(int, listed[:MAX_BOUNDARY_ROWS]):
        why = "first step of this Run: reads the saved state" if lines.prev_end[i] < 0 else \
            f"first row of epoch {int(lines.epoch[i])}"
        if sf.carried(i) is not None and lines.prev_end[i] >= 0:
            why += ": reads values the workbook's macro pasted"
        elif (lines.prev_end[i] >= 0 and lines.epoch_start[i] and column in sf.program.param_columns
              and sf.spec.carry_inputs):
            why += ": the last row's inputs (the workbook throws that row's update away)"
        notes.append(f"row {lines.row(i)} ({why}): {sf.formula(i, column)}")
    if len(listed) > MAX_BOUNDARY_ROWS:
        notes.append(f"… {len(listed) - MAX_BOUNDARY_ROWS} more epoch starts, same pattern")
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
    special = _special_lines(sf)
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
            "boundary rows": ("\n".join(_boundary(sf, c, f, special))
                              if f and c not in sf.program.input_columns and c not in sf.table_slots else ""),
        })
    return rows


def _epoch_spans(sf: StepFormulas) -> dict[int, tuple[int, int]]:
    """epoch -> (first line, last line) of its rows in the steps table."""
    lines = sf.lines
    starts = np.flatnonzero(lines.epoch_start)
    ends = np.r_[starts[1:] - 1, len(lines.step) - 1]
    return {int(lines.epoch[a]): (int(a), int(b)) for a, b in zip(starts, ends)}


def _chain(cells: list[str] | None, op: str, fallback: str) -> tuple[str, bool]:
    """`cells` added left to right, as the engine's loop adds them (a spreadsheet's SUM and
    AVERAGE use compensated sums, which can differ in the last bit); the range function
    `fallback` when the chain would be over a formula's length limit (`cells` None: it would)."""
    if cells is None:
        return fallback, False
    text = "+".join(op.format(c) for c in cells)
    return (text, True) if len(text) < MAX_FORMULA_CHARS - 200 else (fallback, False)


def _chain_too_long(column: str, top: int, bottom: int) -> bool:
    """Whether a `_chain` of the cells `column`top..`column`bottom is over the limit whatever its
    op: each term is at least as long as the first cell's name, and they are joined by "+"."""
    n = bottom - top + 1
    return n * (len(f"{column}{top}") + 1) - 1 >= MAX_FORMULA_CHARS - 200


def epoch_formula(sf: StepFormulas, steps_tab: str, column: str, epoch: int,
                  span: tuple[int, int]) -> tuple[str | None, str]:
    """The formula of one epoch's cell in `column` of the epochs tab (None: a value), and what
    it is computed from, in words. The one definition behind both the map's epochs rows and
    the formulas formula mode writes in this Run's epochs rows."""
    lines = sf.lines
    top, bottom = lines.row(span[0]), lines.row(span[1])
    tab = quote_tab(steps_tab)

    def rng(name: str) -> str:
        letter = col_letter(sf.columns.index(name))
        return f"{tab}!{letter}{top}:{letter}{bottom}"

    def cells(name: str) -> list[str] | None:
        """The column's cells of the epoch; None when even their names alone, joined by "+",
        would be over the chain's limit (an epoch of 100,000 rows: not built to be thrown away)."""
        letter = col_letter(sf.columns.index(name))
        if _chain_too_long(f"{tab}!{letter}", top, bottom):
            return None
        return [f"{tab}!{letter}{r}" for r in range(top, bottom + 1)]

    def last(name: str) -> str:
        return f"{tab}!{col_letter(sf.columns.index(name))}{bottom}"

    if column == "epoch":
        return None, "the epoch number, counting across Runs"
    if column == "loss":
        n = bottom - top + 1
        text, exact = _chain(cells("loss"), "{}", f"AVERAGE({rng('loss')})")
        return (f"=({text})/{n}" if exact else f"={text}"), f"the mean of the epoch's row losses ({rng('loss')})"
    if column in sf.program.param_columns:
        source = column if sf.spec.carry_inputs else f"new {column}"
        what = (f"{column} carried into the next epoch: the last row's input (its update is thrown away)"
                if sf.spec.carry_inputs else f"{column} after the epoch's last update")
        return f"={last(source)}", what
    if column == "lr":
        ref = sf.setting_ref("lr", epoch)
        # an experiments cell, or the steps tab's settings block; a macro's lr stays a value
        return ("=" + absolute(ref.name) if ref.kind == "setting" else None), ref.name
    if column == "sqrt(sum err^2)":
        text, exact = _chain(cells("err"), "{0}*{0}", f"SUMSQ({rng('err')})")
        return f"=SQRT({text})", "the workbook's footer: sqrt of the sum of err²"
    if column.startswith("gap ") and f"de/d{column[4:]} est" in sf.columns:
        q = column[4:]
        # SUMPRODUCT makes every spreadsheet evaluate the inner ranges as arrays
        return (f"=SUMPRODUCT(MAX(ABS({rng(f'de/d{q} est')}-{rng(f'de/d{q}')})))",
                "largest |numeric - analytic| gradient gap in the epoch")
    if column == "dead":
        return None, "parameters whose gradient was 0 on every row of the epoch (dead ReLU)"
    if column == "rmse":
        return None, ("the RMSE over every rating of the tables at the end of the epoch (the engine's number; "
                      "the factors tab holds Jeremy's formula over the tables)")
    return None, "diagnostic"


def epochs_rows(sf: StepFormulas, steps_tab: str, epochs_tab: str, columns: list[str],
                first_history_row: int, epoch: int | None = None) -> list[dict]:
    """The epochs tab's columns for this Run's first epoch (or `epoch`, one of this Run's, for
    `trace`): what each is computed from.

    `first_history_row` is the 1-based sheet row of this Run's first epoch in the epochs tab.
    """
    lines = sf.lines
    if not len(lines.step):
        return []
    first_epoch = int(lines.epoch[0]) if epoch is None else epoch
    if epoch is None:
        later = np.flatnonzero(lines.epoch_start[1:])
        span = (0, int(later[0]) if len(later) else len(lines.step) - 1)  # the first epoch's lines
    else:
        span = _epoch_spans(sf)[epoch]
    out = []
    for c in columns:
        formula, what = epoch_formula(sf, steps_tab, c, first_epoch, span)
        out.append({"tab": epochs_tab, "column": c, "cells": f"row {first_history_row} onwards",
                    "formula (A1)": formula or "(a value)",
                    "formula (R1C1)": to_r1c1(formula, first_history_row, columns.index(c)) if formula else "",
                    "precedents": what, "dependents": "", "boundary rows": ""})
    return out


def epochs_formulas(sf: StepFormulas, steps_tab: str, columns: list[str],
                    earlier_rows: int) -> dict[str, list[str | None]]:
    """Formula mode's epochs tab: column -> one formula (or None: a value) per history row.
    The first `earlier_rows` rows (earlier Runs) stay values; this Run's rows read the steps tab."""
    spans = _epoch_spans(sf)
    out: dict[str, list[str | None]] = {c: [None] * earlier_rows for c in columns}
    for epoch, span in spans.items():
        for c in columns:
            out[c].append(epoch_formula(sf, steps_tab, c, epoch, span)[0])
    return {c: v for c, v in out.items() if any(v)}


def render_map(name: str, sf: StepFormulas, steps_tab: str, epochs_note: list[str] | None = None,
               extra_rows: list[dict] | None = None) -> TabPlan:
    rows = map_rows(sf, steps_tab) + list(extra_rows or [])
    headers = ["tab", "column", "cells", "formula (A1)", "formula (R1C1)", "precedents", "dependents",
               "boundary rows"]
    widths = [16, 12, 14, 48, 48, 48, 36, 60]
    columns = [Column(h, [r[h] for r in rows], "@", w) for h, w in zip(headers, widths)]
    tab = TabPlan(map_tab_name(name), kind="map", frozen_rows=3)
    tab.texts.append(Text(0, 0, f"{name}: where every number in '{steps_tab}' comes from", bold=True))
    tab.texts.append(Text(1, 0, "Each column's formula on a typical row (row "
                          f"{sf.lines.row(_typical_line(sf))}), its direct precedents and dependents. "
                          "Rows whose formula differs are listed under 'boundary rows'. "
                          + " ".join(epochs_note or [])))
    tab.tables.append(Table(columns, row=2, col=0))
    return tab


def map_tab(result, data_cell, setting_cells: dict[str, str], history, settings_block: bool = False) -> TabPlan | None:
    """The `NAME map` tab of one Run (None when it has no steps): every column's formula pattern,
    precedents and dependents, and the epochs tab's rows of this Run. `data_cell(i, name)` is a
    data cell's address (`Dataset.cell`); `history` the epochs tab's table, this Run's epochs last."""
    if not result.rows("steps"):
        return None
    name = result.experiment.name
    steps_tab = steps_tab_name(name)
    try:
        sf = StepFormulas(result, data_cell, setting_cells, STEPS_HEADER_ROW + 2, settings_block)
        first_epoch_row = len(history) - result.rows("epochs") + EPOCHS_HEADER_ROW + 2  # 1-based sheet row
        extra = epochs_rows(sf, steps_tab, epochs_tab_name(name), list(history), first_epoch_row)
        return render_map(name, sf, steps_tab, extra_rows=extra)
    except FormulaModeError:  # a value carried as inf has no formula: say so, do not fail the run
        tab = TabPlan(map_tab_name(name), kind="map")
        tab.texts.append(Text(0, 0, f"{name}: no precedents map for this Run: a value it carries is not a "
                              "finite number (the run diverged), and a formula cannot hold it", bold=True))
        return tab


def formula_mode(result, data_cell, setting_cells: dict[str, str], history):
    """Formula mode's formulas for the steps tab, its settings block and this Run's rows of the
    epochs tab, and None; or three Nones and why this Run cannot have them."""
    try:
        sf = StepFormulas(result, data_cell, setting_cells, STEPS_HEADER_ROW + 2, settings_block=True)
        epochs = epochs_formulas(sf, steps_tab_name(result.experiment.name), list(history),
                                 len(history) - result.rows("epochs"))
        return sf.all(), sf.block_table(), epochs, None
    except FormulaModeError as e:
        return None, None, None, f"Formula mode: {e}; values were written."
