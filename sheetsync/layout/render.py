"""Results -> one `Plan`: every tab a run writes, inside the cell budget.

The steps tabs share what is left of `CELL_BUDGET` after the complete epochs histories and the
small tabs; each experiment gets a share in proportion to its full size, and a steps tab over
its share is sampled (see `engine.record.sample_lines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .. import budgets
from ..backends.base import Plan, Table, TabPlan, Text
from ..engine.result import Columns, Result
from .compare import render_compare
from .boundary import render_classifier_boundary
from .epochs import epochs_so_far, render_epochs
from .landscape import render_landscape
from .runs import LogAsRead, RunEntry, render_runs
from .state import SavedState, render_state
from .steps import CHART_COLUMNS, render_steps, steps_cells

if TYPE_CHECKING:  # the factors and similar tabs (dot_product) load only when drawn
    from .factors import EmbeddingView


LANDSCAPE_SHARE = 0.1  # of the cells left after the epochs and small tabs, for the landscapes


@dataclass
class ExperimentOutput:
    """What the layout writes for one experiment: its result, history and notes."""

    result: Result
    history: Columns  # all epochs so far, this run's included
    notes: list[str] = field(default_factory=list)  # plain-language diagnostics for the epochs tab
    formulas: dict[str, list] | None = None  # formula mode: column -> one formula (or None) per step
    map_tab: TabPlan | None = None  # the precedents map (`NAME map`)
    settings_block: Table | None = None  # formula mode: the settings the formulas read
    epochs_formulas: dict[str, list] | None = None  # formula mode: this Run's epochs rows (layout.map)
    embedding: EmbeddingView | None = None  # dot_product: the ids and ratings (`NAME factors`, `NAME similar`)


def render(outputs: list[ExperimentOutput], *, x: np.ndarray, y: np.ndarray,
           other_histories: dict[str, Columns], states: dict[str, SavedState],
           entry: RunEntry, previous_runs: LogAsRead | list[list] | None,
           cell_budget: int | None = None, order: list[str] | None = None) -> Plan:
    """`other_histories`: epochs histories of the sheet's experiments not run this time (for
    `compare`); `states`: every experiment's saved state after this run; `order`: the sheet's
    order of experiments (for `compare`)."""
    cell_budget = budgets.CELL_BUDGET if cell_budget is None else cell_budget
    epochs_tabs = [render_epochs(o.result, o.history, x, y, o.notes) for o in outputs]
    histories = dict(other_histories)
    histories.update({o.result.experiment.name: o.history for o in outputs})
    if order:
        histories = {n: histories[n] for n in sorted(histories, key=lambda n: _rank(order, n))}
    small = [render_compare(histories), render_runs(previous_runs, entry), render_state(states)]
    learned = [_embedding_tabs(o) for o in outputs]  # capped in size: they come before the steps
    used = sum(_cells(t) for t in epochs_tabs + small + [t for tabs, _ in learned for t in tabs])
    share = int(max(0, cell_budget - used) * LANDSCAPE_SHARE) // max(len(outputs), 1)
    # a landscape over two of a dot_product's many factors says little: its factors tab shows them all
    landscapes = [None if o.result.experiment.model == "dot_product" else render_landscape(o.result, x, y, share)
                  for o in outputs]
    used += sum(_cells(t) for t in landscapes if t is not None)
    allowed = steps_allowances([o.result for o in outputs], cell_budget - used)
    tabs: list[TabPlan] = []
    for o, epochs_tab, rows, land, (embedding_tabs, map_rows) in zip(outputs, epochs_tabs, allowed, landscapes,
                                                                     learned):
        steps_tab = render_steps(o.result, rows, o.formulas, o.settings_block)
        if o.formulas and o.epochs_formulas and rows >= o.result.total_steps:  # formulas need every step
            _epochs_formulas(epochs_tab, o, steps_tab.name)
        tabs += [steps_tab, epochs_tab] + embedding_tabs
        if o.map_tab is not None:
            _extend_map(o.map_tab, map_rows)
            if rows < o.result.total_steps:
                o.map_tab.texts.append(Text(1, 8, "The steps tab is sampled: row numbers here are those "
                                            "of the complete table."))
            tabs.append(o.map_tab)
        if land is not None:
            tabs.append(land)
        boundary = render_classifier_boundary(o.result, x, y, _final_cells(steps_tab, o, rows))
        if boundary is not None:
            tabs.append(boundary)
    return Plan(tabs + small)


def _embedding_tabs(o: ExperimentOutput) -> tuple[list[TabPlan], list[dict]]:
    """`NAME factors` and `NAME similar` of a dot_product experiment at the run's final
    parameters, and the factors tab's rows for `NAME map`; nothing for other models."""
    if o.embedding is None or not o.result.rows("steps"):
        return [], []
    from ..engine import embeddings
    from .factors import factors_map_rows, render_factors
    from .similar import render_similar

    exp = o.result.experiment
    formulas = exp.mode == "formulas"
    tables = embeddings.tables_of(o.result)
    factors = render_factors(exp.name, tables, o.embedding, start_rmse=embeddings.start_rmse(o.result),
                             formulas=formulas, epochs=epochs_so_far(o.history) or None)
    cells = o.embedding.cells
    map_rows = factors_map_rows(exp.name, tables, o.embedding, formulas,
                                cells[0].rsplit("!", 1)[0] if cells else None)
    return [factors, render_similar(exp.name, tables, o.embedding)], map_rows


def _extend_map(map_tab: TabPlan, rows: list[dict]) -> None:
    """More rows at the end of the map's table (its columns are the rows' keys)."""
    if not map_tab.tables:
        return
    for column in map_tab.tables[0].columns:
        column.values = list(column.values) + [r.get(column.header, "") for r in rows]


def _epochs_formulas(tab: TabPlan, o: ExperimentOutput, steps_tab: str) -> None:
    """This Run's epochs rows as formulas over the steps tab; earlier Runs' rows stay values."""
    from .epochs import HEADER_ROW

    for column in tab.tables[0].columns:
        column.formulas = o.epochs_formulas.get(column.header)
    first = len(o.history) - o.result.rows("epochs") + HEADER_ROW + 2  # 1-based sheet rows
    last = len(o.history) + HEADER_ROW + 1
    sentence = (f"Formula mode: {_rows(first, last)} (this Run's epochs) are formulas over '{steps_tab}', so "
                "editing a setting updates them and the charts")
    sentence += f"; {_rows(HEADER_ROW + 2, first - 1)} (earlier Runs) are values." if first > HEADER_ROW + 2 else "."
    text = next(t for t in tab.texts if (t.row, t.col) == (0, 0))
    text.value += "\n" + sentence


def _final_cells(steps_tab: TabPlan, o: ExperimentOutput, rows: int):
    """Formula mode with every step written: param -> the steps tab's last `new <param>` cell."""
    if not o.formulas or rows < o.result.total_steps or not o.result.rows("steps"):
        return None
    from ..a1 import col_letter, quote_tab

    table = steps_tab.tables[0]
    headers = [c.header for c in table.columns]
    last = table.row + 1 + table.n_rows  # 1-based row of the last step
    return lambda p: f"{quote_tab(steps_tab.name)}!${col_letter(table.col + headers.index(f'new {p}'))}${last}"


def _rows(first: int, last: int) -> str:
    return f"row {first}" if first == last else f"rows {first}-{last}"


def steps_allowances(results: list[Result], budget: int) -> list[int]:
    """Step rows each steps tab may hold: all of them when everything fits the budget."""
    sizes = [steps_cells(r) for r in results]
    total = sum(sizes)
    if total <= budget:
        return [r.total_steps for r in results]
    budget = max(budget, 0)
    return [max(int(budget * size / total) // (len(r.table("steps").columns) + CHART_COLUMNS), 10)
            for r, size in zip(results, sizes)]


def log_only_plan(entry: RunEntry, previous_runs: LogAsRead | list[list] | None) -> Plan:
    """What a run with input errors writes: the run log, nothing else."""
    return Plan([render_runs(previous_runs, entry)])


def _rank(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def _cells(tab: TabPlan) -> int:
    """The tab's whole rectangle: what a Google sheet's grid holds (and counts)."""
    rows, cols = tab.extent()
    return rows * cols
