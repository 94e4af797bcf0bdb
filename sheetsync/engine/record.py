"""Which step lines a run records: every line, or only the lines that will be written.

Above the cell budget the steps tab writes a sample of the lines (`sample_lines`: every k-th
line, the first and last of each epoch), and a run of a million rows by ten epochs would hold
ten million lines to write 125,000 of them. With a `RecordPlan` (the runner passes one), `train`
keeps only the lines the layout asks for and reduces what the diagnostics need over every line
as the loop goes. The layout asks for lines with
`Result.record_lines`; a line that was not recorded is recorded by running the loop again from
the same start (it is deterministic: the same bits come out), so what is written never depends
on a guess.

What the diagnoses need over every line is gathered in the loop (`Reductions`): the
parameters' ranges (the landscape), the largest numeric-against-analytic gaps (with the lines
that hold them), a classifier's saturated and log-of-0 lines. Runs whose diagnoses read more
record every line (`plannable` leaves them out): ReLU units (dead units) and table models;
so does a run that diverges (it is run again recording every
line up to the divergence: the explosion's story reads them). The Python API records every
line unless asked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RECORD_ALL = False  # True: ignore plans and record every line (bench/record_memory.py's old path)


@dataclass(frozen=True)
class RecordPlan:
    """What the caller will write: `cell_budget` cells for all steps tabs together. A run whose
    own lines × columns are over it can only be written sampled, so it is recorded sampled."""

    cell_budget: int


def epoch_starts(epoch: np.ndarray) -> np.ndarray:
    """The first line of each epoch of a table whose epoch column is `epoch`."""
    if not len(epoch):
        return np.zeros(0, np.int64)
    return np.r_[0, np.flatnonzero(epoch[1:] != epoch[:-1]) + 1]


def sample_lines(n: int, firsts: np.ndarray, allowed: int, keep=()) -> tuple[np.ndarray, int]:
    """Indices of the lines to write of a table of `n` lines whose epochs start at lines
    `firsts` (ascending, from 0) when at most `allowed` fit, and the stride k (1: all lines).

    Keeps every k-th line, the first and last line of each epoch (of every m-th epoch when
    there are too many epochs for even that) and the indices in `keep`.
    """
    if n <= allowed:
        return np.arange(n), 1
    firsts = np.asarray(firsts, dtype=np.int64)
    lasts = np.r_[firsts[1:] - 1, n - 1]
    stride = 1
    while 2 * math.ceil(len(firsts) / stride) > allowed // 2:
        stride *= 2
    boundary = np.zeros(n, bool)
    boundary[firsts[::stride]] = True
    boundary[lasts[::stride]] = True
    room = max(allowed - int(boundary.sum()) - len(keep) - 2, 1)
    k = max(math.ceil(n / room), 2)
    mask = boundary
    mask[::k] = True
    mask[list(keep)] = True
    mask[[0, n - 1]] = True
    return np.flatnonzero(mask), k


# A sampled run's kernel call covers at most this many row steps (at least one epoch): what the
# loop writes for one call is held until its planned lines are copied out.
PLAN_CHUNK_STEPS = 250_000


def plannable(spec) -> bool:
    """Whether a run of this structure (its `Spec`) can do with the recorded lines alone for its
    diagnostics and layout (module docstring); a divergence is found only by running it."""
    from .explain import relu_units

    # ReLU units: with one input two data rows decide whether a unit is on (explain._extreme_rows);
    # with more, every data row at every update would be evaluated in the loop
    return not (spec.tables or (relu_units(spec.model) and len(spec.model.inputs) != 1))


def sampled(spec, n_rows: int, epochs: int, cell_budget: int) -> bool:
    """Whether `train` with a RecordPlan(cell_budget) records the run sampled: its lines alone
    are over the cell budget (so the steps tab is sampled whatever the other tabs take) and
    nothing else reads every line."""
    return epochs * n_rows * len(spec.step_columns()) > cell_budget and plannable(spec)


def held_bytes(spec, n_rows: int, epochs: int, cell_budget: int) -> int:
    """Bytes of step lines `train` holds for a run given a RecordPlan(cell_budget) when it does
    not diverge: every line, or (recorded sampled) one kernel call's lines and at most the
    cell budget's. A sampled run that diverges is run again recording every line up to there
    (refused by `diverged_bytes` when that is over budgets.MEMORY_BUDGET)."""
    cols = len(spec.step_columns())
    lines = epochs * n_rows
    if RECORD_ALL or not sampled(spec, n_rows, epochs, cell_budget):
        return lines * cols * 8
    return (min(lines, max(n_rows, PLAN_CHUNK_STEPS)) * cols + cell_budget) * 8


def whole_batches(lines: np.ndarray, n_rows: int, batch: int, n: int) -> np.ndarray:
    """`lines` with every other line of their batches (a step's margin reads its whole batch)."""
    if batch == 1 or not len(lines):
        return lines
    epoch, within = np.divmod(lines, n_rows)
    first = epoch * n_rows + within // batch * batch
    last = np.minimum(np.minimum(first + batch, (epoch + 1) * n_rows), n)
    counts = last - first
    out = np.repeat(first, counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.unique(out)


@dataclass
class Counters:
    """The counters of the complete steps table of a run of whole epochs, from its structure:
    line l is in epoch l // n_rows (after `first_epoch` before it), its step is the optimizer's
    step count `t0` plus its batch's number, its data row comes from the epoch's order."""

    n: int
    n_rows: int
    batch: int
    first_epoch: int  # epochs run before this Run
    t0: int  # optimizer steps taken before this Run
    order: object  # (first_epoch, n_epochs) -> array of 0-based data rows per epoch (Job.order)

    def epoch(self, lines: np.ndarray | None = None) -> np.ndarray:
        lines = np.arange(self.n) if lines is None else np.asarray(lines, dtype=np.int64)
        return lines // self.n_rows + self.first_epoch + 1

    def step(self, lines: np.ndarray | None = None) -> np.ndarray:
        lines = np.arange(self.n) if lines is None else np.asarray(lines, dtype=np.int64)
        per_epoch = -(-self.n_rows // self.batch)
        epoch, within = np.divmod(lines, self.n_rows)
        return self.t0 + epoch * per_epoch + within // self.batch + 1

    def row(self, lines: np.ndarray | None = None) -> np.ndarray:
        lines = np.arange(self.n) if lines is None else np.asarray(lines, dtype=np.int64)
        epoch, within = np.divmod(lines, self.n_rows)
        out = np.empty(len(lines), np.int64)
        for e in np.unique(epoch).tolist():  # only the epochs asked about are shuffled again
            at = epoch == e
            out[at] = self.order(self.first_epoch + e, 1)[0][within[at]] + 1
        return out

    def firsts(self) -> np.ndarray:
        """The first line of each epoch."""
        return np.arange(0, self.n, self.n_rows)

    def lines(self, first_row: int) -> "CompleteLines":
        """The complete table's structure as `layout.formulas.Lines` describes it."""
        return CompleteLines(self, first_row)


class LineColumn:
    """A number per line of the complete table, computed for the lines asked for (indexing by a
    line, an array of lines or a slice; comparisons work through it in pieces): ten million
    lines cost nothing until read."""

    PIECE = 1 << 20

    def __init__(self, n: int, at, negative: int | None = None):
        self.n, self.at = n, at  # at(lines: int64 array) -> values
        self.negative = negative  # if known: lines [0, negative) hold the only values below 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.at(np.arange(self.n)[key])
        if np.ndim(key) == 0:
            i = int(key)
            return self.at(np.array([i + self.n if i < 0 else i]))[0]
        return self.at(np.asarray(key, dtype=np.int64))

    def _compare(self, op, other) -> np.ndarray:
        if self.negative is not None and other == 0 and op in (np.less, np.greater_equal):
            out = np.zeros(self.n, bool)
            out[:self.negative] = True
            return out if op is np.less else ~out
        out = np.empty(self.n, bool)
        for a in range(0, self.n, self.PIECE):
            out[a:a + self.PIECE] = op(self.at(np.arange(a, min(a + self.PIECE, self.n))), other)
        return out

    def __lt__(self, other):
        return self._compare(np.less, other)

    def __ge__(self, other):
        return self._compare(np.greater_equal, other)


class CompleteLines:
    """`layout.formulas.Lines` of a run recorded sampled: the same attributes, from the run's
    structure (whole epochs of `n_rows` lines, batches of `batch` rows) rather than from every
    line's counters. The flags are arrays (a byte a line); the numbers are computed per line."""

    def __init__(self, counters: Counters, first_row: int):
        c = counters
        n, rows, batch = c.n, c.n_rows, c.batch
        self.first_row = first_row
        self.epoch = LineColumn(n, c.epoch)
        self.step = LineColumn(n, c.step)
        grid = (n // rows, rows)  # whole epochs: a sampled run never diverged
        self.batch_start = np.zeros(grid, bool)
        self.batch_start[:, ::batch] = True
        self.batch_end = np.zeros(grid, bool)
        self.batch_end[:, batch - 1::batch] = True
        self.batch_end[:, -1] = True
        self.epoch_start = np.zeros(grid, bool)
        self.epoch_start[:, 0] = True
        self.batch_start, self.batch_end, self.epoch_start = (a.reshape(-1) for a in
                                                             (self.batch_start, self.batch_end, self.epoch_start))

        def prev_end(lines):  # the line before the batch's first: the previous batch's end
            epoch, within = np.divmod(lines, rows)
            return epoch * rows + within // batch * batch - 1

        def last_of_prev_epoch(lines):
            return np.where((lines % rows == 0) & (lines > 0), lines - 1, -1)

        self.prev_end = LineColumn(n, prev_end, negative=min(batch, rows, n))  # the Run's first batch
        self.last_of_prev_epoch = LineColumn(n, last_of_prev_epoch)

    def row(self, i: int) -> int:
        return self.first_row + i


class Reductions:
    """What the diagnoses of a run recorded sampled need over every line, gathered kernel call
    by kernel call (`take`): each parameter's range (the landscape's axes), the line of each
    parameter's largest numeric-against-analytic gap (explain.gradient_gaps), a classifier's
    first saturated line, how many were, and its first log-of-0 line (explain_classify). The
    lines named are kept whole (`rows`), so their sentences read them as recorded."""

    def __init__(self, spec, columns: list[str], X: np.ndarray):
        from .explain import _extreme_rows, relu_units

        self.spec, self.columns = spec, columns
        self.units = relu_units(spec.model)  # one input (plannable): two data rows decide each
        self.extremes = _extreme_rows(X) if self.units else None
        self.active = True  # every unit on for every data row at every line's parameters
        # per unit: the batch after its last alive update, as (its last line, its first line);
        # None while it was never alive after an update; "next" when the last alive update
        # ended a kernel call (the next call's first batch is the one)
        self.death: dict[str, object] = {u.name: None for u in self.units}
        self.first_end: int | None = None  # the first batch's last line
        self.params = spec.params
        self.lo = np.full(len(self.params), np.inf)
        self.hi = np.full(len(self.params), -np.inf)
        self.gap: dict[str, tuple[float, int] | None] = {q: None for q in self.params} if spec.has_estimates else {}
        self.gap_finite = {q: False for q in self.gap}
        self.saturated: int | None = None
        self.saturated_hits = 0
        self.log_zero: int | None = None
        self.rows: dict[int, np.ndarray] = {}  # line -> its row, for the lines named

    def take(self, lines: np.ndarray, base: int) -> None:
        """The kernel call's lines (epochs already counted across Runs), line `base` first."""
        view = {c: lines[:, i] for i, c in enumerate(self.columns)}
        if self.units:
            self._take_units(lines, view, base)
        at = [self.columns.index(q) for q in self.params]
        self.lo = np.fmin(self.lo, lines[:, at].min(axis=0))
        self.hi = np.fmax(self.hi, lines[:, at].max(axis=0))
        for q in self.gap:
            with np.errstate(invalid="ignore"):
                gaps = np.abs(view[f"de/d{q} est"] - view[f"de/d{q}"])
            self.gap_finite[q] |= bool(np.isfinite(gaps).any())
            if (~np.isnan(gaps)).any():
                i = int(np.nanargmax(gaps))  # the first of the largest, as over every line at once
                if self.gap[q] is None or gaps[i] > self.gap[q][0]:
                    self.gap[q] = (float(gaps[i]), base + i)
                    self._keep(lines, base, i)
        if self.spec.model.classifier:
            from .explain_classify import log_zero_lines, saturated_lines

            hit = np.flatnonzero(saturated_lines(view, self.spec.model))
            self.saturated_hits += len(hit)
            if self.saturated is None and len(hit):
                self.saturated = base + int(hit[0])
                self._keep(lines, base, int(hit[0]))
            if self.log_zero is None:
                hit = np.flatnonzero(log_zero_lines(view, self.spec.model))
                if len(hit):
                    self.log_zero = base + int(hit[0])
                    self._keep(lines, base, int(hit[0]))

    def _take_units(self, lines: np.ndarray, view: dict, base: int) -> None:
        """explain.dead_units and always_active, over this call's lines."""
        from .explain import _pre_activation

        model = self.spec.model
        step = view["step"]
        ends = np.flatnonzero(np.r_[step[1:] != step[:-1], True])  # calls hold whole epochs
        if base == 0:
            self.first_end = int(ends[0])
            self._keep(lines, 0, 0)
            self._keep(lines, 0, int(ends[0]))
        before = {q: view[q] for q in model.params}
        new = {q: view[f"new {q}"][ends] for q in model.params}
        for u in self.units:
            if self.active:
                self.active = bool((_pre_activation(u, before, self.extremes, model.inputs) > 0).all())
            if self.death[u.name] == "next":
                self.death[u.name] = (base + int(ends[0]), base)
                self._keep(lines, base, int(ends[0]))
            alive = np.flatnonzero((_pre_activation(u, new, self.extremes, model.inputs) > 0).any(axis=1))
            if len(alive):
                j = int(alive[-1])
                if j + 1 < len(ends):
                    self.death[u.name] = (base + int(ends[j + 1]), base + int(ends[j]) + 1)
                    self._keep(lines, base, int(ends[j + 1]))
                    self._keep(lines, base, int(ends[j]) + 1)
                else:
                    self.death[u.name] = "next"

    def _keep(self, lines: np.ndarray, base: int, i: int) -> None:
        self.rows[base + i] = lines[i].copy()

    def reduced(self) -> dict:
        """What `Result.reduced` holds (only the lines still named keep their rows)."""
        death = {u: (d if isinstance(d, tuple) else None) for u, d in self.death.items()}
        return {"gap": {q: (g[1] if g is not None and self.gap_finite[q] else None) for q, g in self.gap.items()},
                "saturated": self.saturated, "saturated hits": self.saturated_hits, "log zero": self.log_zero,
                "active": self.active, "death": death, "first end": self.first_end}

    def named_rows(self) -> dict[int, np.ndarray]:
        reduced = self.reduced()
        named = {v for v in [*reduced["gap"].values(), reduced["saturated"], reduced["log zero"]] if v is not None}
        if self.units:
            named |= {0, self.first_end} | {line for d in reduced["death"].values() if d for line in d}
        return {line: row for line, row in self.rows.items() if line in named}

    def ranges(self) -> dict[str, tuple[float, float]]:
        return dict(zip(self.params, zip(self.lo.tolist(), self.hi.tolist())))
