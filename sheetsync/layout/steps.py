"""`NAME steps`: one row per step, the way the fast.ai workbook lays it out.

Row 1 is the tab's first screen: in A1 what the tab shows (experiment, flavour, whether rows are
sampled) and the diagnosis in plain words, wrapped; beside it the per-step charts (the loss, the
stability margin against the overshoot line, each parameter on its own scale). Row 2 holds the
values this Run starts from under their columns (the parameters and the carried optimizer
state, with where they come from: init, the Reset macro's warm-up pass or the previous Run).
Row 3 is the header, and the three rows stay frozen above the steps; the first step sits in
row 4, where the workbook's first step sits. The row where the explosion started and the row
where it left the bound are highlighted, each with a note. Above the cell budget, rows are
sampled: every k-th step plus the first and last step of each epoch (and those two rows), and
A1 says so.

A dot_product experiment's row is one rating: its user and item (shown by their ids, as the
data tab writes them), the rating, the user's and the item's table rows before the step, the
prediction, error and loss, the gradients and the rows after the step.
"""

from __future__ import annotations

import math

import numpy as np

from ..a1 import steps_tab_name
from ..backends.base import Chart, Column, Highlight, RangeRef, Series, Table, TabPlan, Text
from ..engine.record import sample_lines
from ..engine.result import START_ORIGINS, Result
from .formulas import STEPS_EXTRA_COLUMNS
from .tables import frame_columns, result_table

HEADER_ROW = 2  # 0-based: the header sits in sheet row 3, the first step in row 4
START_ROW = 1  # 0-based: the values the Run starts from, just above the header
DIVERGED = "FFC7CE"  # Excel's light red "bad" fill
ONSET = "FFD8A8"  # orange: the step where the explosion started
DEAD = "D9D9D9"  # grey: a parameter that has stopped moving
GAP = "FFEB9C"  # light yellow: numeric estimate beside the analytic gradient
BAND_POINTS = 186.0  # row 1's height: the diagnosis and the charts (248 px)
BAND_CHARACTERS = 80  # the diagnosis in A1 is merged across about this many characters of columns
CHART_W, CHART_H = 340, 240  # px: the per-step charts, side by side in row 1
CHART_STEPS = 1000  # steps a chart shows: the first ones, or the last ones up to a divergence
MAX_PARAM_CHARTS = 8
STEP_WIDTH = 10.0  # characters: General then shows about 7 significant digits
LOG_DECADES = 3  # a loss spanning more than this many decades is charted as log10(loss)
MARGIN_NOTE = ("margin: how hard this step pushed against its own curvature, ΔᵀHΔ/(−gᵀΔ) for the "
               "update Δ, gradient g and Hessian H of the step's loss (for plain SGD: lr × the "
               "curvature along the gradient). Above 2 the step overshoots: its loss rises instead "
               "of falling. Blank: the update went uphill. See docs/why.md.")


TABLE_ROWS = ("Each row is one rating: its user and item (their ids), the user's factors u1.. and the item's "
              "m1.. as the tables held them before the step (numbers from the engine: the tables may have moved "
              "since that user's or item's last row), the prediction, error and loss, the gradients and the "
              "factors after the step. The tables themselves are in the factors tab.")
CHART_COLUMNS = 4  # beyond the steps: margin, a gap, the chart data (log10 loss, overshoot at)


def steps_cells(result: Result) -> int:
    return (result.total_steps + HEADER_ROW + 1) * (len(result.table("steps").columns) + CHART_COLUMNS)


def render_steps(result: Result, allowed_rows: int | None = None,
                 formulas: dict[str, list] | None = None, settings_block=None) -> TabPlan:
    """The steps tab; with `formulas` (formula mode) every computed cell holds its formula, and
    `settings_block` (a Table right of the steps table) holds the settings they read."""
    exp = result.experiment
    div_index = _divergence_index(result)
    onset = result.diagnostics.onset
    keep = [i for i in (div_index, onset.line if onset else None) if i is not None]
    n = result.total_steps  # rows are lines of the complete table, recorded or not
    if allowed_rows is None or allowed_rows >= n:
        rows, k = np.arange(n), 1
    else:
        rows, k = sample_lines(n, result.epoch_firsts(), allowed_rows, keep)
    result.record_lines(rows)  # a run recorded sampled records what it lacks
    steps = result_table(result, "steps")  # read after: recording more replaces it
    at = result.position(rows)  # where those lines sit in result.steps
    tab = TabPlan(steps_tab_name(exp.name), kind="steps", frozen_rows=HEADER_ROW + 1,
                  row_heights={0: BAND_POINTS})
    columns = frame_columns(steps, at)
    if exp.model == "dot_product":
        show_ids(result, columns)
    for c in columns:  # narrow: the spreadsheet shows ~7 significant digits, the cell keeps all 17
        if c.number_format == "General":
            c.width = max(len(c.header) + 2.0, STEP_WIDTH)
    if result.spec is not None and len(steps):
        from ..engine.explain import step_geometry

        margin = step_geometry(result, at).margin
        columns.append(Column(STEPS_EXTRA_COLUMNS[0], np.where(np.isfinite(margin), margin, np.nan),
                              "General", 9, note=MARGIN_NOTE))
    table = Table(columns, row=HEADER_ROW, col=0)
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
    if k > 1:
        status.append(f"SAMPLED: {len(rows):,} of {n:,} steps shown (every {k}th step plus "
                      "the first and last step of each epoch); the epochs tab is complete.")
    else:
        status.append(f"All {n:,} steps of this run.")
    if exp.model == "dot_product":
        status.append(TABLE_ROWS)
    headers = [c.header for c in table.columns]
    _mark_divergence(result, rows, div_index, headers, tab, status)
    _mark_dead(result, headers, tab, status)
    _mark_gaps(result, headers, tab, status)
    text = _title(result, n) + "\n" + " ".join(status)
    tab.texts.append(Text(0, 0, text, wrap=True, span=band_span(table.columns)))
    _start_row(result, headers, tab)
    if len(rows):
        side = max(t.col + len(t.columns) for t in tab.tables) + 1  # right of the steps and settings
        _charts(result, tab, table, rows, div_index, side)
    return tab


def show_ids(result: Result, columns: list[Column]) -> None:
    """The `user` and `item` columns (0-based table rows in the Result) as the sheet's ids: numbers
    where the ids are numbers, else text."""
    ids = result.ids
    for c in columns:
        if c.header in ("user", "item"):
            names = ids.users if c.header == "user" else ids.items
            shown = [as_cell(names[int(v)]) for v in c.values]
            c.values, c.number_format = shown, ("General" if all(not isinstance(v, str) for v in shown) else "@")
            c.width = max(len(c.header) + 2.0, min(24.0, max((len(str(v)) for v in shown), default=0) + 2.0))


def as_cell(raw_id: str) -> int | float | str:
    """An id as a cell holds it: '14' as the whole number 14 (as the data tab had it), '2.5' as 2.5,
    text as text (`parse.ratings.show_id` read it the other way)."""
    try:
        number = float(raw_id)
    except ValueError:
        return raw_id
    if not math.isfinite(number):
        return raw_id
    if number.is_integer():
        return int(number) if raw_id.strip() == str(int(number)) else raw_id
    return number if raw_id.strip() == repr(number) else raw_id


def place_in_band(tab: TabPlan, charts: list[Chart], col: int) -> None:
    """Charts side by side in row 1 from column `col`, each starting on the column after the
    previous one ends (columns measured as the tab's tables set them)."""
    widths = {t.col + j: c.width for t in tab.tables for j, c in enumerate(t.columns) if c.width}
    for chart in charts:
        chart.anchor, chart.width_px, chart.height_px = (0, col), CHART_W, CHART_H
        px = 0.0
        while px < CHART_W + 8:
            px += (widths.get(col) or 8.43) * 7 + 5  # characters to pixels, as the Sheets backend does
            col += 1
    tab.charts.extend(charts)


def band_span(columns: list[Column], characters: float = BAND_CHARACTERS) -> int:
    """How many of the table's columns the diagnosis in A1 is merged across: about
    BAND_CHARACTERS wide, so the sentences wrap into a readable block."""
    width, span = 0.0, 0
    for c in columns:
        if width >= characters:
            break
        width += c.width or 8.43  # Excel's default column width
        span += 1
    return max(span, 1)


def _start_row(result: Result, headers: list[str], tab: TabPlan) -> None:
    """Row 2: what the Run's first step starts from, under the columns it feeds."""
    if not result.starts or not result.rows("steps"):
        return
    first = result.starts[min(result.starts)]
    values = dict(first.get("params", {}))
    for stem, per in first.get("opt", {}).items():
        values.update({f"{stem}_{q}": v for q, v in per.items()})
    origin = START_ORIGINS[result.start_origin]
    placed = False
    for header, v in values.items():
        if header in headers and v is not None and math.isfinite(v):
            tab.texts.append(Text(START_ROW, headers.index(header), v,
                                  note=f"{header} at the start of this Run: {origin}"))
            placed = True
    if placed:
        tab.texts.append(Text(START_ROW, 0, f"start of this Run ({origin}) →", bold=True))


def _charts(result: Result, tab: TabPlan, table: Table, rows: np.ndarray, div_index: int | None,
            side: int) -> None:
    """Row 1, right of the diagnosis: the loss per step, the margin, each parameter."""
    n = len(rows)
    first, last = 0, min(n, CHART_STEPS)
    if div_index is not None and n > CHART_STEPS:  # show the steps that lead up to the blow-up
        position = int(np.searchsorted(rows, div_index))
        first, last = max(0, position + 1 - CHART_STEPS), position + 1
    top = HEADER_ROW + 1
    headers = [c.header for c in table.columns]
    span = (f"steps {int(table.columns[headers.index('step')].values[first])}–"
            f"{int(table.columns[headers.index('step')].values[last - 1])}")

    def ref(header: str) -> RangeRef:
        c = headers.index(header)
        return RangeRef(tab.name, top + first, c, top + last, c + 1)

    x = ref("step")  # the chart data block starts at column `side`
    loss = np.asarray(table.columns[headers.index("loss")].values, dtype=float)[first:last]
    data: list[Column] = []
    loss_title, loss_series = f"Loss, {span}", ref("loss")
    finite = loss[np.isfinite(loss) & (loss > 0)]
    if len(finite) and np.log10(finite.max() / max(finite.min(), 1e-300)) > LOG_DECADES:
        with np.errstate(all="ignore"):
            data.append(Column("log10 loss", np.log10(loss), "0.00", 11))
        loss_title = f"Loss (log scale), {span}"
        loss_series = RangeRef(tab.name, top + first, side, top + last, side + 1)
    charts = [Chart("line", loss_title, [Series("loss", loss_series)], "step",
                    "log10(loss): 2 = 100, 4 = 10,000" if data else "loss", domain=x)]
    if "margin" in headers:
        c = side + len(data)
        data.append(Column("overshoot at", np.full(last - first, 2.0), "0", 11))
        charts.append(Chart("line", f"Margin, {span}: above 2 a step overshoots",
                            [Series("margin", ref("margin")),
                             Series("overshoot at 2", RangeRef(tab.name, top + first, c, top + last, c + 1))],
                            "step", "margin", domain=x))
    if data:  # its rows line up with the charted steps
        tab.tables.append(Table(data, row=HEADER_ROW + first, col=side))
        margins = np.asarray(table.columns[headers.index("margin")].values, dtype=float)[first:last]
        finite_m = margins[np.isfinite(margins)]
        if len(finite_m) and finite_m.max() > 10 * 2.0:  # keep the line at 2 readable
            charts[-1].y_max, charts[-1].y_title = 10 * 2.0, "margin (axis cut at 20)"
        if len(finite_m) and finite_m.min() < -2.0:
            charts[-1].y_min = -2.0
    onset = result.diagnostics.onset
    p_last = last
    if onset is not None:  # past the start of the explosion the parameters leave every scale
        p_last = min(last, max(first + 2, int(np.searchsorted(rows, onset.line)) + 3))
    p_span = span if p_last == last else (
        f"steps {int(table.columns[headers.index('step')].values[first])}–"
        f"{int(table.columns[headers.index('step')].values[p_last - 1])} (then it diverged)")
    for q in result.param_names[:MAX_PARAM_CHARTS]:
        if q in headers:
            c = headers.index(q)
            charts.append(Chart("line", f"{q}, {p_span}",
                                [Series(q, RangeRef(tab.name, top + first, c, top + p_last, c + 1))], "step", q,
                                domain=RangeRef(tab.name, top + first, 1, top + p_last, 2)))
    place_in_band(tab, charts, band_span(table.columns))


def _title(result: Result, n_steps: int) -> str:
    exp = result.experiment
    epochs = result.column("epochs", "epoch") if result.rows("epochs") else []
    span = f"epochs {int(epochs[0])}–{int(epochs[-1])}" if len(epochs) else "no epochs"
    return (f"{exp.name}: {exp.model} model, {exp.flavour} {exp.optimizer}, lr {exp.lr:g}, "
            f"{span} ({n_steps:,} steps)")


def _divergence_index(result: Result) -> int | None:
    div = result.diagnostics.divergence
    if div is None or not result.rows("steps"):
        return None
    hit = np.flatnonzero(result.column("steps", "step") == div.step)  # step numbers are unique in a run
    return int(hit[0]) if len(hit) else None


def divergence_sentence(result: Result) -> str:
    div = result.diagnostics.divergence
    index = _divergence_index(result)
    epoch = int(result.column("steps", "epoch")[index]) if index is not None else div.epoch
    what = f"parameter {div.param}" if div.param else "the loss"
    bound = (f" A per-row SGD learning rate below {div.lr_bound:.3g} would be stable on this data."
             if div.lr_bound and "stable" not in div.reason else "")  # the reason may say it already
    return (f"DIVERGED at epoch {epoch}, step {div.step} (data row {div.row}): {what} blew up — "
            f"{div.reason}.{bound}")


def _mark_divergence(result, rows, div_index, headers, tab, status) -> None:
    diag = result.diagnostics
    status.extend(diag.story)
    if diag.divergence is None:
        return
    if div_index is not None:
        position = int(np.searchsorted(rows, div_index))
        tab.highlights.append(Highlight(HEADER_ROW + 1 + position, 0, 1, len(headers), DIVERGED,
                                        divergence_sentence(result)))
    onset = diag.onset
    if onset is not None and onset.line != div_index:
        from ..engine.explain import onset_sentence

        position = int(np.searchsorted(rows, onset.line))
        if position < len(rows) and rows[position] == onset.line:
            tab.highlights.append(Highlight(HEADER_ROW + 1 + position, 0, 1, len(headers), ONSET,
                                            "WHERE IT STARTED: " + onset_sentence(result, onset)))


def _mark_dead(result, headers, tab, status) -> None:
    for dead in result.diagnostics.dead.values():
        note = dead.sentence()
        status.append(note)
        for param in dead.params:
            for header in (param, f"de/d{param}", f"new {param}"):
                if header in headers:
                    tab.highlights.append(Highlight(HEADER_ROW, headers.index(header), 1, 1, DEAD, note))


def _mark_gaps(result, headers, tab, status) -> None:
    for param, gap in result.diagnostics.grad_gaps.items():
        header = f"de/d{param} est"
        note = f"numeric estimate vs analytic de/d{param}: largest gap {gap.gap:.4g}; {gap.cause}"
        if header in headers:
            tab.highlights.append(Highlight(HEADER_ROW, headers.index(header), 1, 1, GAP, note))
