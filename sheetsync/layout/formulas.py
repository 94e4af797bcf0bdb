"""Formula mode: the steps table written as per-row formulas, as the fast.ai workbook does.

Every computed cell gets the formula of its column (`engine.program`), with references turned
into A1 addresses: the same line's columns, the line of the previous step, the data tab, the
experiments tab. Values that no formula can produce — what a Run starts from (the saved
state), and what the workbook's macros paste between epochs (adagrad's normalisers, an
annealed lr, eve's feedback term) — are written as numbers inside a formula (``=0.1234…``),
which spreadsheets read exactly, and the map says where they came from.

Formulas for the common case are rendered once per column as a template with the row numbers
left open, so a 100,000-row table costs a string format per cell, not a tree walk.

A table model (dot_product) reads one user's and one item's table row per step: those slots
(``u1``.., ``m1``.., ``bu``, ``bm``) are numbers the engine writes (``=0.0123…``: the table before
the step, which may have moved since that user's last row: every step of a dense table touches
every row), and the row's prediction, error, loss, gradients and new slots are formulas of them,
the dot product as ``SUMPRODUCT`` over the slot cells. Formula mode takes batch size 1 and an
optimizer without state there (an optimizer's state of a table row before the step is not a
cell of the tab); other runs write values and say so.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..backends.base import Column, Table, col_letter, quote_tab
from ..engine.expr import to_formula
from ..engine.optimizers import CONSTANTS
from ..engine.program import Program, build_program
from ..engine.reduction import render as render_sum, sum_tree
from ..engine.result import Result
from ..settings import SETTINGS

# Columns the steps tab writes after those of the loop (layout.steps: the stability margin).
STEPS_EXTRA_COLUMNS = ("margin",)

MAX_FORMULA_CHARS = 8000  # Excel's limit is 8,192 characters per formula


class FormulaModeError(ValueError):
    """Formula mode cannot express this run (the message says why and what to do)."""


def literal(value: float | None) -> str:
    if value is None:
        return "?"  # a trace of a sheet whose saved state predates this run's start values
    if not math.isfinite(value):
        raise FormulaModeError(f"a carried value is {value!r}: a diverged run cannot be written as "
                               "formulas; run it in values mode or Reset with a smaller lr")
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def absolute(ref: str) -> str:
    """'experiments!B5' -> "experiments!$B$5", quoting the tab name where needed."""
    tab, _, cell = ref.rpartition("!")
    m = re.fullmatch(r"([A-Z]+)(\d+)", cell)
    if not m:
        raise ValueError(f"not a cell reference: {ref!r}")
    address = f"${m.group(1)}${m.group(2)}"
    return f"{quote_tab(tab)}!{address}" if tab else address


class _Unknown(dict):
    def __missing__(self, key):
        return None


class _UnknownState(dict):
    def __missing__(self, key):
        return _Unknown()


@dataclass
class Ref:
    """One precedent: a cell of the steps table, a data or setting cell, or a constant."""

    kind: str  # "line" (steps table), "data", "setting", "carried" (into an epoch: `line` is the line it
    # feeds), "constant"
    name: str  # column, A1 address, or setting name
    line: int | None = None
    value: float | None = None
    data_row: int | None = None
    column: str | None = None
    setting: str | None = None


@dataclass
class Lines:
    """The structure of the steps table a formula needs: where each step's lines are."""

    epoch: np.ndarray
    step: np.ndarray
    first_row: int  # 1-based sheet row of line 0

    def __post_init__(self):
        n = len(self.step)
        self.batch_start = np.ones(n, bool)
        self.batch_start[1:] = self.step[1:] != self.step[:-1]
        self.batch_end = np.ones(n, bool)
        self.batch_end[:-1] = self.step[1:] != self.step[:-1]
        self.epoch_start = np.ones(n, bool)
        self.epoch_start[1:] = self.epoch[1:] != self.epoch[:-1]
        # the line holding the previous step's update: the end of the previous batch
        ends = np.flatnonzero(self.batch_end)
        batch = np.cumsum(self.batch_start) - 1
        self.prev_end = np.where(batch > 0, ends[np.maximum(batch - 1, 0)] if len(ends) else -1, -1)
        starts = np.flatnonzero(self.epoch_start)
        self.last_of_prev_epoch = np.full(n, -1)
        self.last_of_prev_epoch[starts[1:]] = starts[1:] - 1

    def row(self, i: int) -> int:
        return self.first_row + i


class StepFormulas:
    """Formula text for every cell of a steps table."""

    def __init__(self, result: Result, data_cells: Callable[[int, str], str],
                 setting_cells: dict[str, str], first_row: int, settings_block: bool = False):
        self.result = result
        self.spec = result.spec  # the run's own structure (a softmax's K comes from its labels)
        self.program: Program = build_program(self.spec)
        # the loop's columns (a steps tab read back by `trace` also holds the tab's own extra ones)
        self.columns = [c for c in result.table("steps").columns if c not in STEPS_EXTRA_COLUMNS]
        self.letter = {c: col_letter(i) for i, c in enumerate(self.columns)}
        self.data_cells = data_cells  # (data row 0-based, input name) -> "data!B7"
        self.settings = setting_cells  # setting name -> "experiments!B5"
        # the complete table's structure (a run recorded sampled holds only some of its lines)
        self.lines = (result.counters.lines(first_row) if result.sampled else
                      Lines(result.column("steps", "epoch"), result.column("steps", "step"), first_row))
        self.update = self.spec.update  # what the workbook's macros set and paste between epochs
        self.batch = self.spec.batch_size
        self.lr_by_epoch = dict(zip(result.column("epochs", "epoch").tolist(),
                                    result.column("epochs", "lr").tolist()))
        self.tables = self.spec.model.tables  # a table model (dot_product): its slots are the engine's values
        self.table_slots = {q: t for t in self.tables for q in t.slots}
        # Formula mode's settings block (see `block_table`): setting -> its value cell in this tab.
        # Right of the steps: the formula columns, the steps tab's own extra columns, a blank one.
        self.block_col = len(self.columns) + len(STEPS_EXTRA_COLUMNS) + 1
        self.block: dict[str, str] = {}
        if settings_block:
            value_col = col_letter(self.block_col + 1)  # name, value, from
            tab = f"{result.experiment.name} steps"  # steps.steps_tab_name; a trace reads it back
            self.block = {name: f"{tab}!{value_col}{first_row + k}" for k, name in enumerate(self.used_settings())}

    # -- the settings block ------------------------------------------------------------------
    def used_settings(self) -> list[str]:
        """The settings the formulas read from a cell, in the order they first appear."""
        found: list[str] = []

        def ref(name: str) -> str:
            kind, _, what = name.partition(":")
            if kind == "set" and what not in found and self._macro_value(what) is None:
                found.append(what)
            return "0"

        for e in self.program.formulas.values():
            to_formula(e, ref)
        return found

    def block_table(self) -> Table | None:
        """The settings block beside the steps table (formula mode): one row per setting the
        formulas read, with the value in force. Its value cell falls back to the default when
        the experiments cell is blank (`=IF(ISBLANK(...), default, ...)`), so the formulas always
        read a number and editing or blanking the experiments cell still updates the sheet."""
        if not self.block:
            return None
        exp = self.result.experiment
        names, values, formulas, sources = [], [], [], []
        for name in self.block:
            default = SETTINGS[name].default
            default = float(default(exp.flavour, exp.optimizer) if callable(default) else default)
            cell = self.settings.get(name)
            names.append(name)
            values.append(float(exp.values[name]))
            if cell is None:
                formulas.append(f"={literal(default)}")
                sources.append("default (the experiments tab has no row for it)")
            else:
                formulas.append(f"=IF(ISBLANK({absolute(cell)}),{literal(default)},{absolute(cell)})")
                sources.append(f"set in {cell}" if name in exp.given else f"default ({cell} is blank)")
        return Table([Column("setting", names, "@", 14),
                      Column("value in force", values, "General", 14, formulas),
                      Column("from", sources, "@", 36)],
                     row=self.lines.first_row - 2, col=self.block_col)

    # -- references -------------------------------------------------------------------------
    def _macro_value(self, name: str) -> str | None:
        """What a value no setting cell holds is, if `name` is one (the macros' and torch's)."""
        if name in self.update.macro_sets:
            return self.update.macro_sets[name]
        return CONSTANTS[name][1] if name in CONSTANTS else None

    def setting_ref(self, name: str, epoch: int) -> Ref:
        """Where a setting comes from: the settings block, the experiments tab, a macro, or a
        default."""
        if name in self.update.macro_sets:  # the lr is per epoch in the epochs table, the rest in starts
            value = self.lr_by_epoch.get(epoch) if name == "lr" else self.start(epoch)[name]
            return Ref("constant", self.update.macro_sets[name], value=value)
        if name in CONSTANTS:
            return Ref("constant", CONSTANTS[name][1], value=CONSTANTS[name][0])
        if name in self.block:
            return Ref("setting", self.block[name], setting=name,
                       value=float(self.result.experiment.values[name]))
        if name in self.settings:
            return Ref("setting", self.settings[name], setting=name)
        return Ref("constant", f"{name} (default)", value=float(self.result.experiment.values[name]))

    def setting(self, name: str, epoch: int) -> str:
        ref = self.setting_ref(name, epoch)
        return absolute(ref.name) if ref.kind == "setting" else literal(ref.value)

    def carried(self, i: int) -> dict | None:
        """The start values line `i` reads instead of a previous line, if any."""
        epoch = int(self.lines.epoch[i])
        if self.lines.prev_end[i] < 0:  # the Run's first step: what the saved state carries in
            return self.start(epoch)
        if self.lines.epoch_start[i] and self.update.macro_pastes:
            return self.start(epoch)  # what the macro pasted (adagrad's normalisers)
        return None

    def carried_mask(self) -> np.ndarray:
        """`carried(i) is not None` for every line at once."""
        lines = self.lines
        mask = lines.prev_end < 0
        if self.update.macro_pastes:
            mask = mask | lines.epoch_start
        return mask

    def epoch_constants(self, epoch: int) -> tuple:
        """The values written into formulas that change from epoch to epoch (a macro's lr,
        eve's d): two lines of the same kind whose epochs agree here get the same formula."""
        if not hasattr(self, "_per_epoch"):
            read: set[str] = set()

            def ref(name: str) -> str:
                read.add(name)
                return "0"

            for e in self.program.formulas.values():
                to_formula(e, ref)
            self._per_epoch = [f"set:{n}" for n in self.update.macro_sets if f"set:{n}" in read]
        out = []
        for name in self._per_epoch:
            r = self.setting_ref(name[4:], epoch)
            out.append(None if r.kind != "constant" or r.value is None else repr(float(r.value)))
        return tuple(out)

    def start(self, epoch: int) -> dict:
        known = self.result.starts.get(epoch)
        if known is not None:
            return known
        unknown: dict = {"params": _Unknown(), "opt": _UnknownState(), "lr": None, "eve_d": None}
        return unknown

    def _renderer(self, i: int, template: bool) -> Callable[[str], str]:
        lines, epoch = self.lines, int(self.lines.epoch[i])
        r = "{r}" if template else str(lines.row(i))
        p = "{p}" if template else (str(lines.row(lines.prev_end[i])) if lines.prev_end[i] >= 0 else None)
        carried = None if template else self.carried(i)

        def ref(name: str) -> str:
            kind, _, what = name.partition(":")
            if kind == "row":
                return f"{self.letter[what]}{r}"
            if kind == "prev":
                if self.tables:  # a table row's state before the step: held by the engine alone
                    return f"[{what} before this step]"
                if carried is not None:
                    stem, _, q = what.partition("_")
                    return literal(carried["opt"][stem][q])
                return f"{self.letter[what]}{p}"
            if kind == "g":
                return self.gradient(i, what, r, template)
            if kind == "set":
                return self.setting(what, epoch)
            if kind == "batch":  # batch:w = 1/k, batch:k = k (bce divides by k, as torch)
                return f"(1/{self.batch_rows(i)})" if what == "w" else str(self.batch_rows(i))
            raise ValueError(name)

        return ref

    def batch_first(self, i: int) -> int:
        first = i
        while not self.lines.batch_start[first]:
            first -= 1
        return first

    def batch_rows(self, i: int) -> int:
        first, last = self.batch_first(i), i
        while not self.lines.batch_end[last]:
            last += 1
        return last - first + 1

    def gradient(self, i: int, param: str, r: str, template: bool) -> str:
        col = self.letter[self.program.gradient_source(param)]
        if self.batch == 1:
            return f"{col}{r}"
        first = self.batch_first(i)
        tree = sum_tree(i - first + 1)  # the shares added in torch's order
        return render_sum(tree, lambda k: f"{col}{self.lines.row(first + k)}").replace(" ", "")

    def check_tables(self) -> None:
        """Formula mode of a table model: what its formulas cannot express, as FormulaModeError."""
        if not self.tables:
            return
        if self.batch != 1:
            raise FormulaModeError(f"a {self.spec.model.name} step's gradient in a batch sums the rows of the "
                                   "same user or item only, which a column formula cannot pick; formula mode "
                                   "takes batch size 1 here")
        if self.update.state:
            raise FormulaModeError(f"{self.result.experiment.optimizer} keeps state for every table row, and "
                                   "its value before a step is not a cell of the steps tab; formula mode takes "
                                   "optimizer sgd here")

    def dot_text(self, renderer: Callable[[str], str], template_row: str) -> tuple[str, str] | None:
        """(the dot product as the program renders it, the same as SUMPRODUCT over the row's
        slot cells), for a table model; the one text replaced by the other in its formulas."""
        dot = dict(self.spec.model.intermediates).get("dot") if self.tables else None
        if dot is None:
            return None
        from ..engine.expr import subs, sym

        inlined = subs(dot, {q: sym(f"row:{q}") for q in self.program.param_columns})
        users, items = (t.slots for t in self.tables[:2])
        rng = lambda slots: f"{self.letter[slots[0]]}{template_row}:{self.letter[slots[-1]]}{template_row}"
        return to_formula(inlined, renderer), f"SUMPRODUCT({rng(users)},{rng(items)})"

    def render(self, e, i: int, template: bool = False) -> str:
        """One formula's text (without '=') for line `i` (or the template of its column)."""
        renderer = self._renderer(i, template)
        text = to_formula(e, renderer)
        dot = self.dot_text(renderer, "{r}" if template else str(self.lines.row(i)))
        return text.replace(*dot) if dot else text

    # -- columns ----------------------------------------------------------------------------
    def all(self) -> dict[str, list[str | None]]:
        self.check_tables()
        n = self.result.rows("steps")
        out: dict[str, list[str | None]] = {c: [None] * n for c in self.columns}
        # One row per step with no macro between epochs: every line but the carried-in ones
        # follows its column's template, so render each column once and format it per row.
        fast = self.batch == 1 and not self.update.macro_sets
        templates = ({c: "=" + self.render(e, 0, template=True) for c, e in self.program.formulas.items()}
                     if fast else {})
        update_cols = set(self.spec.state_cols) | {f"new {q}" for q in self.program.param_columns}
        lines = self.lines
        data_rows = (self.result.column("steps", "row") - 1).tolist()
        for name in self.program.input_columns:  # one data cell's formula per data row, not per step
            cells: dict[int, str] = {}
            out[name] = [cells.get(d) or cells.setdefault(d, "=" + absolute(self.data_cells(d, name)))
                         for d in data_rows]
        for q in self.program.param_columns:
            out[q] = [self.param_link(i, q) for i in range(n)]
        rows = range(lines.first_row, lines.first_row + n)
        prev = [lines.first_row + p if p >= 0 else lines.first_row + i
                for i, p in enumerate(lines.prev_end.tolist())]
        slow = [i for i in range(n) if not fast or self.carried(i) is not None]
        for c, e in self.program.formulas.items():
            if fast:  # batch_size 1: every line ends its batch
                template = templates[c]
                out[c] = [template.format(r=r, p=p) for r, p in zip(rows, prev)]
            for i in slow:
                if c in update_cols and not lines.batch_end[i]:
                    continue
                out[c][i] = "=" + self.render(e, i)
        for c in self.program.formulas:
            longest = max((len(f) for f in out[c] if f), default=0)
            if longest > MAX_FORMULA_CHARS:
                raise FormulaModeError(f"the formula for {c!r} would be {longest:,} characters, over a "
                                       f"spreadsheet's limit of 8,192; use values mode for this model")
        return out

    # -- precedents of one cell (the trace) ----------------------------------------------------
    def precedents(self, i: int, column: str) -> list[Ref]:
        """The cells (and constants) the cell of line `i`, `column` reads, in formula order."""
        lines = self.lines
        if column in ("epoch", "step", "row") or column in STEPS_EXTRA_COLUMNS:
            return []  # counters, and what sheetsync computes beside the loop (no formula)
        if column in self.program.input_columns:
            data_row = self._data_row(i)
            return [Ref("data", self.data_cells(data_row, column), data_row=data_row, column=column)]
        if column in self.program.param_columns:
            return [self._param_ref(i, column)]
        if column not in self.program.formulas:
            raise KeyError(column)
        update_cols = set(self.spec.state_cols) | {f"new {q}" for q in self.program.param_columns}
        if column in update_cols and not lines.batch_end[i]:
            return []  # blank: only the batch's last line carries the update
        found: list[Ref] = []
        epoch = int(lines.epoch[i])
        carried = self.carried(i)

        def ref(name: str) -> str:
            kind, _, what = name.partition(":")
            if kind == "row":
                found.append(Ref("line", what, line=i))
            elif kind == "prev":
                if self.tables:
                    found.append(Ref("table", what, line=i))
                elif carried is not None:
                    stem, _, q = what.partition("_")
                    found.append(Ref("carried", what, line=i, value=carried["opt"][stem][q]))
                else:
                    found.append(Ref("line", what, line=int(lines.prev_end[i])))
            elif kind == "g":
                src = self.program.gradient_source(what)
                first = i if self.batch == 1 else self.batch_first(i)
                found.extend(Ref("line", src, line=k) for k in range(first, i + 1))
            elif kind == "set":
                found.append(self.setting_ref(what, epoch))
            elif kind == "batch":
                found.append(Ref("constant", "1/rows in the batch", value=1.0 / self.batch_rows(i)) if what == "w"
                             else Ref("constant", "rows in the batch", value=float(self.batch_rows(i))))
            return "0"

        to_formula(self.program.formulas[column], ref)
        if self.tables:  # the slots in the order of their cells, as SUMPRODUCT reads them (not torch's sum order)
            at = [k for k, r in enumerate(found) if r.kind == "line" and r.name in self.table_slots]
            for k, r in zip(at, sorted((found[k] for k in at), key=lambda r: self.columns.index(r.name))):
                found[k] = r
        unique: dict[tuple, Ref] = {}
        for r in found:
            unique.setdefault((r.kind, r.name, r.line), r)
        return list(unique.values())

    def _param_ref(self, i: int, q: str) -> Ref:
        lines = self.lines
        if q in self.table_slots:  # the engine's value: the table row before this step
            return Ref("table", q, line=i, value=float(self.result.column("steps", q)[i]))
        if lines.prev_end[i] < 0 and lines.batch_start[i]:
            return Ref("carried", q, line=i, value=self.start(int(lines.epoch[i]))["params"][q])
        if not lines.batch_start[i]:
            return Ref("line", q, line=i - 1)
        if lines.epoch_start[i] and self.spec.carry_inputs:
            return Ref("line", q, line=int(lines.last_of_prev_epoch[i]))
        return Ref("line", f"new {q}", line=int(lines.prev_end[i]))

    def formula(self, i: int, column: str) -> str | None:
        """The formula formula mode writes in this cell (None for plain numbers and blanks)."""
        if column in ("epoch", "step", "row"):
            return None
        if column in self.program.input_columns:
            return "=" + absolute(self.data_cells(self._data_row(i), column))
        if column in self.program.param_columns:
            return self.param_link(i, column)
        update_cols = set(self.spec.state_cols) | {f"new {q}" for q in self.program.param_columns}
        if column in update_cols and not self.lines.batch_end[i]:
            return None
        return "=" + self.render(self.program.formulas[column], i)

    def _data_row(self, i: int) -> int:
        """The 0-based data row line `i` of the complete table reads."""
        if self.result.sampled:
            return int(self.result.counters.row([i])[0]) - 1
        return int(self.result.column("steps", "row")[i]) - 1

    def param_link(self, i: int, q: str) -> str | None:
        """A parameter before the step: carried in, same batch, or the previous step's output
        (a table model's slot: the engine's number, inside a formula so a spreadsheet reads all
        17 digits, as carried values are written)."""
        if q in self.table_slots:
            return "=" + literal(float(self.result.column("steps", q)[i]))
        lines = self.lines
        carried = self.carried(i) if self.lines.prev_end[i] < 0 and self.lines.batch_start[i] else None
        if carried is not None:
            return "=" + literal(carried["params"][q])
        if not lines.batch_start[i]:
            return f"={self.letter[q]}{lines.row(i - 1)}"
        if lines.epoch_start[i] and self.spec.carry_inputs:
            return f"={self.letter[q]}{lines.row(lines.last_of_prev_epoch[i])}"  # the last row's inputs
        return f"={self.letter['new ' + q]}{lines.row(lines.prev_end[i])}"


def step_formulas(result: Result, data_cells: Callable[[int, str], str], setting_cells: dict[str, str],
                  first_row: int) -> dict[str, list[str | None]]:
    """Formulas for every cell of `result.steps` laid out from sheet row `first_row` (1-based)."""
    return StepFormulas(result, data_cells, setting_cells, first_row).all()

