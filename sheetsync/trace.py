"""`trace`: follow one cell's precedents down to the pure inputs (or its dependents up).

What Excel's Trace Precedents arrows show when followed to the end, and what Google Sheets
lacks: for a cell of a ``NAME steps`` tab, the tree of cells it was computed from — each node
with its address, its value as the sheet holds it, and its formula — ending at data cells,
settings and values carried in (from the init values, the Reset macro's warm-up pass or the
previous Run, as the saved state records), or, for a dot_product row's factor slots, at the
table row as the engine held it before the step. It works the same on values-mode and
formula-mode output, because the precedents come from the formula program (`engine.program`),
not from parsing whatever the sheet holds.

A prediction or an actual rating of ``NAME factors`` (dot_product) traces to its user's and its
item's factor and bias cells and the rating's cell on the data tab (`layout.factors.trace_cell`).

A cell of ``NAME epochs`` starts one level higher: its precedents are the steps rows of that
epoch as the map describes them (`layout.map.epochs_rows`: the loss is the mean of the epoch's
row losses, a parameter the epoch's last update), or, for an epoch of an earlier Run whose steps
are no longer in the steps tab, the value carried from that Run.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import a1
from .a1 import (EPOCHS_SUFFIX, FACTORS_SUFFIX, FORMULA_RANGE, STEPS_SUFFIX, column_index, col_letter, epochs_tab_name,
                 quote_tab, steps_tab_name, unquote_tab)
from .backends.base import Snapshot
from .engine.labels import classes_of
from .engine.result import START_ORIGINS, Result
from .errors import SheetsyncError
from .layout import epochs as epochs_layout
from .layout.epochs import read_history
from .layout.formulas import Ref, StepFormulas
from .layout.map import epochs_rows
from .layout.state import STATE_TAB, read_state
from .layout.steps import HEADER_ROW
from .layout.tables import read_table
from .parse import DATA_TAB, EXPERIMENTS_TAB, parse_inputs

MAX_NODES = 2000  # a full trace of a late row visits every earlier row: cap what is printed


@dataclass
class Node:
    cell: str
    label: str  # column name, setting, or what a constant is
    value: Any
    formula: str | None = None
    kind: str = "line"  # line | data | setting | carried | constant | value (written, no formula)
    children: list["Node"] = field(default_factory=list)
    seen: bool = False  # already expanded higher up the tree
    truncated: bool = False

    def to_dict(self) -> dict:
        d = {"cell": self.cell, "label": self.label, "value": _jsonable(self.value), "kind": self.kind}
        if self.formula:
            d["formula"] = self.formula
        if self.seen:
            d["seen"] = True
        if self.truncated:
            d["truncated"] = True
        if self.children:
            d["children"] = [c.to_dict() for c in self.children]
        return d


def _jsonable(v):
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return v if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def parse_cell(text: str) -> tuple[str, str, int]:
    """"basic steps!H17" -> ("basic steps", "H", 17)."""
    try:
        return a1.parse_cell(text, need_tab=True)
    except a1.A1Error as e:
        raise SheetsyncError(str(e)) from None


class Tracer:
    """Everything a trace needs from one read of the sheet."""

    def __init__(self, snapshot: Snapshot, experiment_name: str):
        self.snapshot = snapshot
        inputs = parse_inputs(snapshot, only=[experiment_name])
        found = [e for e in inputs.experiments if e.name == experiment_name]
        if not found:
            raise SheetsyncError(f"no experiment named {experiment_name!r} in the {EXPERIMENTS_TAB} tab")
        self.experiment = found[0]
        self.dataset = inputs.dataset
        self.steps_tab = steps_tab_name(experiment_name)
        rows = snapshot.values.get(self.steps_tab)
        if not rows:
            raise SheetsyncError(f"there is no {self.steps_tab!r} tab yet: run the sheet first")
        steps = read_table(rows, HEADER_ROW).frame().apply(lambda s: pd.to_numeric(s, errors="coerce"))
        if steps.empty or "step" not in steps:
            raise SheetsyncError(f"{self.steps_tab!r} holds no steps")
        gaps = np.diff(steps["step"].to_numpy())
        if steps["step"].isna().any() or (gaps < 0).any() or (gaps > 1).any():
            raise SheetsyncError(f"{self.steps_tab!r} is sampled or edited: a trace needs every step "
                                 "(run again with fewer steps, or trace a cell of a complete table)")
        for c in ("epoch", "step", "row"):
            steps[c] = steps[c].astype(np.int64)
        self.steps = steps
        self.epochs_tab = epochs_tab_name(experiment_name)
        epochs = read_history(snapshot.values.get(f"{experiment_name} epochs")).frame().apply(
            lambda s: pd.to_numeric(s, errors="coerce"))
        starts = self._starts(experiment_name)
        result = Result.from_tables(self.experiment, steps,
                                    epochs if not epochs.empty else pd.DataFrame({"epoch": [], "lr": []}),
                                    list(self.dataset.input_names), starts, n_rows=len(self.dataset.y),
                                    classes=classes_of(self.experiment, self.dataset.y), ids=self.dataset.ids)
        settings = inputs.setting_cells.get(experiment_name, {})
        self.formulas = StepFormulas(result, lambda i, name: self.dataset.cell(i, name), settings,
                                     HEADER_ROW + 2, "value in force" in rows[HEADER_ROW])  # formula mode's settings block
        self.columns = list(steps.columns)
        self.history = epochs

    def _starts(self, name: str) -> dict:
        saved = read_state(read_table(self.snapshot.values.get(STATE_TAB)))
        state = saved.get(name)
        starts = state.state.get("starts", {}) if state else {}
        self.start_origin = state.state.get("start_origin", "previous run") if state else "previous run"
        return {int(k): v for k, v in starts.items()}

    def origin_of(self, ref) -> str:
        """Where a carried value came from: what the Run started from (init, the Reset macro's
        warm-up pass, the previous Run), or a workbook macro's paste between epochs."""
        first_epoch = int(self.steps["epoch"].iloc[0])
        if ref.line is not None and int(self.steps["epoch"].iloc[ref.line]) != first_epoch:
            return "the previous epoch (pasted by the workbook's macro between epochs)"
        return START_ORIGINS.get(self.start_origin, START_ORIGINS["previous run"])

    # -- values ----------------------------------------------------------------------------
    def sheet_value(self, address: str):
        tab, letters, row = parse_cell(address)
        col = 0
        for ch in letters:
            col = col * 26 + ord(ch) - 64
        rows = self.snapshot.values.get(tab) or []
        if row - 1 < len(rows) and col - 1 < len(rows[row - 1]):
            return rows[row - 1][col - 1]
        return None

    def line_cell(self, line: int, column: str) -> str:
        return f"{quote_tab(self.steps_tab)}!{col_letter(self.columns.index(column))}{self.formulas.lines.row(line)}"

    def node(self, ref: Ref) -> Node:
        if ref.kind == "line":
            value = self.steps[ref.name].iat[ref.line]
            return Node(self.line_cell(ref.line, ref.name), ref.name, value,
                        self.formulas.formula(ref.line, ref.name), "line")
        if ref.kind == "data":
            return Node(ref.name, f"{ref.column} (data row {ref.data_row + 1})", self.sheet_value(ref.name),
                        None, "data")
        if ref.kind == "setting":
            return Node(ref.name, ref.setting, self.sheet_value(ref.name), None, "setting")
        if ref.kind == "table":  # a dot_product slot: the engine's number, no formula behind it
            from .layout.map import table_words

            return Node(f"(table) {ref.name}", table_words(ref.name, self.formulas), ref.value, None, "value")
        if ref.kind == "carried":
            return Node(f"(carried in) {ref.name}", f"{ref.name} carried in from {self.origin_of(ref)}",
                        ref.value, None, "carried")
        return Node(f"(constant) {ref.name}", ref.name, ref.value, None, "constant")

    # -- walking ----------------------------------------------------------------------------
    def locate(self, tab: str, letters: str, row: int) -> tuple[int, str]:
        if tab != self.steps_tab:
            raise SheetsyncError(f"{tab}!{letters}{row}: a trace starts from a cell of {self.steps_tab!r}")
        col = column_index(letters) + 1
        line = row - self.formulas.lines.first_row
        if not (0 <= line < len(self.steps)) or not (1 <= col <= len(self.columns)):
            raise SheetsyncError(f"{tab}!{letters}{row}: outside the steps table "
                                 f"(rows {self.formulas.lines.first_row}–{self.formulas.lines.row(len(self.steps) - 1)}, "
                                 f"columns A–{col_letter(len(self.columns) - 1)})")
        return line, self.columns[col - 1]

    def precedents(self, line: int, column: str, depth: int | None) -> Node:
        return self._walk(line, column, depth, self._precedent_refs)

    def dependents(self, line: int, column: str, depth: int | None) -> Node:
        return self._walk(line, column, depth, self._dependent_refs)

    def _precedent_refs(self, line: int, column: str) -> list[Ref]:
        return self.formulas.precedents(line, column)

    def _dependent_refs(self, line: int, column: str) -> list[Ref]:
        """The cells that read (line, column): found by asking the lines that could."""
        n = len(self.steps)
        window = range(line, min(n, line + max(self.formulas.batch, 1) + 2))
        next_epoch = [k for k in range(line + 1, min(n, line + len(self.steps))) if self.formulas.lines.epoch_start[k]][:1]
        out: dict[tuple, Ref] = {}
        for k in list(window) + next_epoch:
            for d in self.columns:
                if any(r.kind == "line" and r.line == line and r.name == column
                       for r in self.formulas.precedents(k, d)):
                    out.setdefault((k, d), Ref("line", d, line=k))
        return list(out.values())

    def _walk(self, line: int, column: str, depth: int | None, refs_of) -> Node:
        root = self.node(Ref("line", column, line=line))
        self._expand([(root, line, column, 0)], set(), depth, refs_of)
        return root

    def _expand(self, stack: list, seen: set[str], depth: int | None, refs_of, count: int = 0) -> None:
        """Depth-first, each cell expanded once (later visits say so), at most MAX_NODES nodes.

        Iterative: a late row's trace runs through every earlier row, far deeper than Python's
        recursion allows."""
        while stack:
            node, at, col, level = stack.pop()
            if node.cell in seen:
                node.seen = True
                continue
            seen.add(node.cell)
            refs = refs_of(at, col)
            if (depth is not None and level >= depth) or count >= MAX_NODES:
                node.truncated = bool(refs)
                continue
            children = []
            for ref in refs:
                count += 1
                child = self.node(ref)
                node.children.append(child)
                if ref.kind == "line":
                    children.append((child, ref.line, ref.name, level + 1))
            stack.extend(reversed(children))  # visit in formula order

    # -- the epochs tab ----------------------------------------------------------------------
    def epoch_precedents(self, letters: str, row: int, depth: int | None) -> Node:
        """The tree of a `NAME epochs` cell: the steps rows of its epoch, or the carried value."""
        top = epochs_layout.HEADER_ROW + 2  # 1-based sheet row of the first epoch
        columns = list(self.history.columns)
        col = column_index(letters) + 1
        j = row - top
        if "epoch" not in self.history or not (0 <= j < len(self.history)) or not 1 <= col <= len(columns):
            last = top + len(self.history) - 1
            raise SheetsyncError(f"{quote_tab(self.epochs_tab)}!{letters}{row}: outside the epochs table "
                                 f"(rows {top}–{last}, columns A–{col_letter(max(len(columns), 1) - 1)})")
        column = columns[col - 1]
        address = f"{quote_tab(self.epochs_tab)}!{letters}{row}"
        value = self.sheet_value(address)
        epoch = int(self.history["epoch"].iat[j])
        this_run = sorted(set(int(e) for e in self.steps["epoch"]))
        if epoch not in this_run:
            root = Node(address, column, value, None, "line")
            root.children.append(Node(f"(carried in) {address}", f"the value carried from an earlier Run "
                                      f"(epoch {epoch}; this Run's steps are epochs {this_run[0]}–{this_run[-1]})",
                                      value, None, "carried"))
            return root
        described = next(r for r in epochs_rows(self.formulas, self.steps_tab, self.epochs_tab, columns, row,
                                                epoch=epoch) if r["column"] == column)
        formula = described["formula (A1)"] if str(described["formula (A1)"]).startswith("=") else None
        if formula is None:  # the epoch number, a diagnostic, a default lr: written as a value
            return Node(address, f"{column}: {described['precedents']}", value, None, "value")
        root = Node(address, column, value, formula, "line")
        if depth is not None and depth < 1:
            root.truncated = True
            return root
        stack = []
        for tab, first, last in self._formula_refs(formula):
            if tab != self.steps_tab:  # a setting cell (lr)
                root.children.append(Node(first, column, self.sheet_value(first), None, "setting"))
                continue
            (c1, r1), (c2, r2) = first, last
            for r in range(r1, r2 + 1):
                for c in range(c1, c2 + 1):
                    ref = Ref("line", self.columns[c - 1], line=r - self.formulas.lines.first_row)
                    child = self.node(ref)
                    root.children.append(child)
                    stack.append((child, ref.line, ref.name, 1))
        self._expand(stack[::-1], {root.cell}, depth, self._precedent_refs, len(root.children))
        return root

    def _formula_refs(self, formula: str):
        """(tab, (col, row), (col, row)) per steps range in `formula` (1-based columns); (tab,
        address, None) for others."""
        for m in FORMULA_RANGE.finditer(formula):
            tab = unquote_tab(m.group(1))
            if tab != self.steps_tab:
                yield tab, m.group(0).replace("$", ""), None
                continue
            start = (column_index(m.group(2)) + 1, int(m.group(3)))
            end = (column_index(m.group(4)) + 1, int(m.group(5))) if m.group(4) else start
            yield tab, start, end


def trace(target: str, cell: str, *, depth: int | None = None, dependents: bool = False, backend=None,
          credentials: str | None = None, token: str | None = None) -> dict:
    """The tree of precedents (or dependents) of `cell`, e.g. ``"basic steps!H17"``, as a dict."""
    tab, letters, row = parse_cell(cell)
    suffix = next((s for s in (STEPS_SUFFIX, EPOCHS_SUFFIX, FACTORS_SUFFIX) if tab.endswith(s)), None)
    if suffix is None:
        raise SheetsyncError(f"{cell}: a trace starts from a cell of a 'NAME steps', 'NAME epochs' or "
                             "'NAME factors' tab")
    if suffix == EPOCHS_SUFFIX and dependents:
        raise SheetsyncError(f"{cell}: only charts and the compare tab read 'NAME epochs'; --dependents "
                             "starts from a cell of a 'NAME steps' tab")
    name = tab[: -len(suffix)]
    if backend is None:
        from .backends import open_backend

        backend = open_backend(target, credentials, token) if token else open_backend(target, credentials)
    if suffix == FACTORS_SUFFIX:
        if dependents:
            raise SheetsyncError(f"{cell}: --dependents starts from a cell of a 'NAME steps' tab")
        return _factors_trace(backend, tab, letters, row)
    snapshot = backend.read([DATA_TAB, EXPERIMENTS_TAB, steps_tab_name(name), epochs_tab_name(name), STATE_TAB])
    tracer = Tracer(snapshot, name)
    if suffix == EPOCHS_SUFFIX:
        root = tracer.epoch_precedents(letters, row, depth)
        return {"cell": f"{quote_tab(tab)}!{letters}{row}", "direction": "precedents", "tree": root.to_dict()}
    line, column = tracer.locate(tab, letters, row)
    root = tracer.dependents(line, column, depth) if dependents else tracer.precedents(line, column, depth)
    return {"cell": f"{quote_tab(tab)}!{letters}{row}", "direction": "dependents" if dependents else "precedents",
            "tree": root.to_dict()}


def _factors_trace(backend, tab: str, letters: str, row: int) -> dict:
    """A prediction or actual rating of `NAME factors`: its factor cells and the rating's data cell."""
    from .layout.factors import trace_cell
    from .parse.ratings import show_id

    snapshot = backend.read([DATA_TAB, EXPERIMENTS_TAB, tab])
    if not snapshot.values.get(tab):
        raise SheetsyncError(f"there is no {tab!r} tab yet: run the sheet first")
    dataset = parse_inputs(snapshot).dataset
    cells = {}  # (user id, item id) -> the rating's cell on the data tab
    if dataset.ratings is not None:
        ids = dataset.ids
        cells = {(ids.users[int(u)], ids.items[int(i)]): dataset.ratings.cells[k]
                 for k, (u, i) in enumerate(dataset.x.tolist())}
    try:
        tree = trace_cell(tab, snapshot.values[tab], row - 1, column_index(letters),
                          lambda user, item: cells.get((show_id(user), show_id(item))))
    except ValueError as e:
        raise SheetsyncError(str(e)) from None
    return {"cell": f"{quote_tab(tab)}!{letters}{row}", "direction": "precedents", "tree": tree}


def render_text(result: dict) -> str:
    """The tree as indented text, the way Excel's arrows read when followed to the end."""
    lines: list[str] = []

    def fmt(v):
        return repr(v) if isinstance(v, float) else str(v)

    def walk(node: dict, prefix: str, last: bool, top: bool) -> None:
        head = "" if top else (prefix + ("└─ " if last else "├─ "))
        text = f"{node['cell']} = {fmt(node.get('value'))}"
        if node.get("formula"):
            text += f"   {node['formula']}"
        if node["kind"] in ("setting", "constant", "carried", "data", "value"):
            text += f"   [{node['label']}]"
        if node.get("seen"):
            text += "   (expanded above)"
        if node.get("truncated"):
            text += "   (…)"
        lines.append(head + text)
        kids = node.get("children", [])
        for k, child in enumerate(kids):
            walk(child, "" if top else prefix + ("   " if last else "│  "), k == len(kids) - 1, False)

    walk(result["tree"], "", True, True)
    return "\n".join(lines)


class _Callable(types.ModuleType):
    """`sheetsync.trace(...)` is the function even once this module has been imported (importing a
    submodule binds the package's name `trace` to the module)."""

    def __call__(self, *args, **kwargs):
        return trace(*args, **kwargs)


sys.modules[__name__].__class__ = _Callable
