"""`NAME steps`: one row per step, the way the fast.ai workbook lays it out.

Rows 1–2 say what the tab shows (experiment, flavour, whether rows are sampled, diagnostics in
plain words); row 3 is the frozen header; the first step sits in row 4, where the workbook's
first step sits. Above the cell budget, rows are sampled: every k-th step plus the first and
last step of each epoch (and the first diverging step), and row 2 says so.
"""

from __future__ import annotations

import math

import numpy as np

from ..backends.base import Highlight, TabPlan, Text
from ..engine.result import Result
from .tables import frame_columns

HEADER_ROW = 2  # 0-based: the header sits in sheet row 3, the first step in row 4
DIVERGED = "FFC7CE"  # Excel's light red "bad" fill
DEAD = "D9D9D9"  # grey: a parameter that has stopped moving
GAP = "FFEB9C"  # light yellow: numeric estimate beside the analytic gradient


def steps_tab_name(experiment: str) -> str:
    return f"{experiment} steps"


def steps_cells(result: Result) -> int:
    return (len(result.steps) + HEADER_ROW + 1) * len(result.steps.columns)


def sample_rows(epoch: np.ndarray, allowed: int, keep: list[int] = ()) -> tuple[np.ndarray, int]:
    """Indices of the rows to write when at most `allowed` fit, and the stride k (1: all rows).

    Keeps every k-th step, the first and last step of each epoch (of every m-th epoch when
    there are too many epochs for even that) and the indices in `keep`.
    """
    n = len(epoch)
    if n <= allowed:
        return np.arange(n), 1
    changes = np.flatnonzero(epoch[1:] != epoch[:-1]) + 1  # first row of each epoch after the 1st
    firsts = np.r_[0, changes]
    lasts = np.r_[changes - 1, n - 1]
    stride = 1
    while 2 * math.ceil(len(firsts) / stride) > allowed // 2:
        stride *= 2
    boundary = np.zeros(n, bool)
    boundary[firsts[::stride]] = True
    boundary[lasts[::stride]] = True
    room = max(allowed - int(boundary.sum()) - len(keep) - 2, 1)
    k = max(math.ceil(n / room), 2)
    mask = boundary | (np.arange(n) % k == 0)
    mask[list(keep)] = True
    mask[[0, n - 1]] = True
    return np.flatnonzero(mask), k


def render_steps(result: Result, allowed_rows: int | None = None,
                 formulas: dict[str, list] | None = None, settings_block=None) -> TabPlan:
    """The steps tab; with `formulas` (formula mode) every computed cell holds its formula, and
    `settings_block` (a Table right of the steps table) holds the settings they read."""
    exp = result.experiment
    steps = result.steps
    div_index = _divergence_index(result)
    keep = [div_index] if div_index is not None else []
    if allowed_rows is None or allowed_rows >= len(steps):
        rows, k = np.arange(len(steps)), 1
    else:
        rows, k = sample_rows(steps["epoch"].to_numpy(), allowed_rows, keep)
    tab = TabPlan(steps_tab_name(exp.name), kind="steps", frozen_rows=HEADER_ROW + 1)
    from ..backends.base import Table

    table = Table(frame_columns(steps, rows), row=HEADER_ROW, col=0)
    tab.tables.append(table)
    status = []
    if formulas and k == 1:
        for column in table.columns:
            column.formulas = formulas.get(column.header)
        status.append("Formula mode: every computed cell is its formula, so the spreadsheet recomputes "
                      "it and Trace Precedents works.")
        if settings_block is not None:  # formula mode's settings block (layout.formulas)
            tab.tables.append(settings_block)
    elif formulas:
        status.append("Formula mode needs every step, and these steps are sampled, so values were written.")
    tab.texts.append(Text(0, 0, _title(result, len(steps)), bold=True))
    if k > 1:
        status.append(f"SAMPLED: {len(rows):,} of {len(steps):,} steps shown (every {k}th step plus "
                      "the first and last step of each epoch); the epochs tab is complete.")
    else:
        status.append(f"All {len(steps):,} steps of this run.")
    headers = [c.header for c in table.columns]
    _mark_divergence(result, rows, div_index, headers, tab, status)
    _mark_dead(result, headers, tab, status)
    _mark_gaps(result, headers, tab, status)
    tab.texts.append(Text(1, 0, " ".join(status)))
    return tab


def _title(result: Result, n_steps: int) -> str:
    exp = result.experiment
    epochs = result.epochs["epoch"] if len(result.epochs) else []
    span = f"epochs {int(epochs.iloc[0])}–{int(epochs.iloc[-1])}" if len(epochs) else "no epochs"
    return (f"{exp.name}: {exp.model} model, {exp.flavour} {exp.optimizer}, lr {exp.lr:g}, "
            f"{span} ({n_steps:,} steps)")


def _divergence_index(result: Result) -> int | None:
    div = result.diagnostics.divergence
    if div is None or not len(result.steps):
        return None
    s = result.steps
    hit = np.flatnonzero(s["step"].to_numpy() == div.step)  # step numbers are unique in a run
    return int(hit[0]) if len(hit) else None


def divergence_sentence(result: Result) -> str:
    div = result.diagnostics.divergence
    index = _divergence_index(result)
    epoch = int(result.steps["epoch"].iloc[index]) if index is not None else div.epoch
    what = f"parameter {div.param}" if div.param else "the loss"
    bound = (f" A per-row SGD learning rate below {div.lr_bound:.3g} would be stable on this data."
             if div.lr_bound and "stable" not in div.reason else "")  # the reason may say it already
    return (f"DIVERGED at epoch {epoch}, step {div.step} (data row {div.row}): {what} blew up — "
            f"{div.reason}.{bound}")


def _mark_divergence(result, rows, div_index, headers, tab, status) -> None:
    if result.diagnostics.divergence is None:
        return
    sentence = divergence_sentence(result)
    status.append(sentence)
    if div_index is None:
        return
    position = int(np.searchsorted(rows, div_index))
    tab.highlights.append(Highlight(HEADER_ROW + 1 + position, 0, 1, len(headers), DIVERGED, sentence))


def _mark_dead(result, headers, tab, status) -> None:
    for param, epoch in result.diagnostics.dead.items():
        note = (f"{param} is dead: its gradient has been 0 on every row since epoch {epoch} "
                "(the ReLU never fires), so it no longer moves")
        status.append(note + ".")
        for header in (param, f"de/d{param}", f"new {param}"):
            if header in headers:
                tab.highlights.append(Highlight(HEADER_ROW, headers.index(header), 1, 1, DEAD, note))


def _mark_gaps(result, headers, tab, status) -> None:
    gaps = result.diagnostics.grad_gap
    theory = result.diagnostics.grad_gap_theory
    for param, gap in gaps.items():
        header = f"de/d{param} est"
        expected = f" (the step h explains about {theory[param]:.3g})" if param in theory else ""
        note = f"numeric estimate vs analytic de/d{param}: largest gap {gap:.3g}{expected}"
        status.append(note + ".")
        if header in headers:
            tab.highlights.append(Highlight(HEADER_ROW, headers.index(header), 1, 1, GAP, note))
