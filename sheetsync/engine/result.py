"""What training returns: the steps and epochs tables, final parameters, state to continue from,
and diagnostics. Plain data; the layout renders it, the engine never looks at it again except
to continue from `state`.

What nobody may read is computed on first read: a Result holds the loop's arrays and turns
them into columns (`Columns`, numpy), then a DataFrame, when `steps` or `epochs` is first read,
and a sweep's diagnostics are worked out when `diagnostics` is first read (`Lazy`). A sweep of
1,000 experiments that reads final parameters builds no table, and pandas is imported only
when a table is read.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..settings import Experiment

if TYPE_CHECKING:
    import pandas as pd

    from .explain import DeadUnit, GradGap, Onset, SafeLr
    from .loop.spec import Spec


@dataclass
class State:
    """Where a run stopped, so the next Run continues exactly there (JSON-safe via to_dict).

    `params` are the parameters carried into the next epoch (in graddesc: C1/C2), `opt` the
    optimizer state per state name and parameter (`{"m": {"a": ..., "b": ...}}`), `t` the number
    of optimizer steps taken, `epoch` the number of epochs run, `extra` flavour bookkeeping (the
    workbook's annealing memory, eve's feedback term, the lr an annealing macro settled on).
    """

    params: dict[str, float]
    opt: dict[str, dict[str, float]] = field(default_factory=dict)
    t: int = 0
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    signature: dict[str, Any] = field(default_factory=dict)  # model/optimizer/flavour it belongs to

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def diverged(self) -> bool:
        """The run that left this state diverged (its parameters are no place to continue from)."""
        return bool(self.extra.get("diverged")) or not all(math.isfinite(v) for v in self.params.values())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "State":
        return cls(
            params={k: float(v) for k, v in d["params"].items()},
            opt={s: {k: float(v) for k, v in per.items()} for s, per in d.get("opt", {}).items()},
            t=int(d.get("t", 0)),
            epoch=int(d.get("epoch", 0)),
            extra=dict(d.get("extra", {})),
            signature=dict(d.get("signature", {})),
        )


# Where a Run's first carried values come from (Result.start_origin), in words for the sheet.
START_ORIGINS = {"init": "the init values (Reset)", "reset warm-up": "the Reset macro's warm-up pass",
                 "previous run": "the previous Run (saved state)"}


@dataclass
class Divergence:
    """The first step at which training blew up, and why."""

    epoch: int
    step: int
    row: int  # 1-based data row
    param: str | None  # the parameter whose update blew up (None: the loss itself)
    reason: str  # plain language
    lr_bound: float | None = None  # stable per-row SGD learning rate on this data, where known


@dataclass
class Diagnostics:
    """What went wrong or is worth knowing, with the words the sheet shows (`notes`, `story`).

    See engine/explain.py and docs/why.md for the exact definitions.
    """

    divergence: Divergence | None = None
    onset: "Onset | None" = None  # where a diverged run's explosion started
    story: list[str] = field(default_factory=list)  # the explosion in plain words: where, how, what works
    safe_lr: float | None = None  # the largest lr that trained (None: nothing diverged or rose)
    safe_lr_check: "SafeLr | None" = None  # the search behind it
    rose: tuple[int, int] | None = None  # (epoch, peak epoch) when the loss rose without diverging
    dead: dict[str, "DeadUnit"] = field(default_factory=dict)  # ReLU unit (its pre-activation cell) -> when it died
    dead_epochs: dict[str, int] = field(default_factory=dict)  # parameter -> first epoch with all-zero gradient
    grad_gap: dict[str, float] = field(default_factory=dict)  # parameter -> max |numeric - analytic|
    grad_gap_theory: dict[str, float] = field(default_factory=dict)  # h*L''/2 at that step (forward)
    grad_gaps: dict[str, "GradGap"] = field(default_factory=dict)  # each gap with its step and cause
    collapsed_line: tuple[float, float] | None = None  # (slope, intercept) when the model acted as a line
    restarted: str | None = None  # why this Run started again from the init values
    notes: list[str] = field(default_factory=list)  # plain-language sentences for the sheet


class Columns(dict):
    """A table as the loop wrote it: column name -> numpy array, in order. Becomes a DataFrame
    (`frame`) when the table is first read."""

    def __init__(self, columns: dict[str, Any], copy: bool = False):
        super().__init__(columns)
        self.copy = copy  # False: the DataFrame's columns are views of these arrays

    def __len__(self) -> int:  # rows, as len(DataFrame)
        return len(next(iter(self.values()))) if dict.__len__(self) else 0

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        return pd.DataFrame(dict(self), copy=self.copy)


class Lazy:
    """A Result field's value, computed when the field is first read (`build()`), then kept."""

    def __init__(self, build: Callable[[], Any]):
        self.build = build


class _Field:
    """A Result field that may hold a `Lazy` (computed on first read) and, for a table, `Columns`
    (turned into a DataFrame on first read)."""

    def __init__(self, table: bool):
        self.table = table

    def __set_name__(self, owner, name: str) -> None:
        self.slot = "_" + name

    def resolve(self, obj) -> Any:
        """The value without building a DataFrame (Columns stay Columns)."""
        value = obj.__dict__[self.slot]
        if isinstance(value, Lazy):
            value = obj.__dict__[self.slot] = value.build()
        return value

    def __get__(self, obj, owner=None):
        if obj is None:
            raise AttributeError(self.slot[1:])  # a dataclass field without a default
        value = self.resolve(obj)
        if self.table and isinstance(value, Columns):
            value = obj.__dict__[self.slot] = value.frame()
        return value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.slot] = value


@dataclass
class Result:
    """What `train` returns: the steps and epochs tables, the parameters, the state to continue from."""

    experiment: Experiment
    steps: "pd.DataFrame" = _Field(table=True)  # type: ignore[assignment]
    epochs: "pd.DataFrame" = _Field(table=True)  # type: ignore[assignment]
    params: dict[str, float]
    state: State
    diagnostics: Diagnostics = _Field(table=False)  # type: ignore[assignment]
    details: dict[str, Any]  # flavour details: variant, eps placement, bias correction, ...
    param_names: list[str]
    input_names: list[str]
    state_names: list[str]  # optimizer state column stems, e.g. ["m", "v"]
    spec: "Spec"  # the compiled loop's structure (model, update, batch size): what every table derives from
    # What each epoch started from where that is not the previous line's output: the Run's first
    # epoch (the saved state), and every epoch after a workbook macro pasted values between
    # epochs. epoch -> {"params", "opt", "lr", "eve_d"}. Formula mode writes these as inputs.
    starts: dict[int, dict[str, Any]] = field(default_factory=dict)
    # classifiers: class names by index (text labels in order of first appearance, else "0".."K-1")
    # and the final parameters' confusion counts over every data row (true class x predicted)
    classes: list[str] = field(default_factory=list)
    confusion: Any = None
    start_origin: str = "init"  # where the first epoch's carried values come from: "init",
    # "reset warm-up" (the workbook's Reset macro ran passes to fill the optimizer state) or "previous run"
    # table models (dot_product): the users and items of the tables' rows (engine/embeddings.Ids)
    # and the RMSE over all ratings of the tables the Run started from (embeddings.start_rmse)
    ids: Any = None
    start_rmse: float | None = None
    # A run recorded sampled (engine/record.py): `steps` holds some lines of the complete table,
    # `step_lines` the complete table's index of each (None: `steps` is complete), `counters`
    # the complete table's epoch, step and row numbers, `param_range` each parameter's (min, max)
    # over every line, `reduced` the lines diagnoses name, `more_lines(lines)` records more
    # lines (the loop run again).
    step_lines: Any = None
    counters: Any = None
    param_range: dict[str, tuple[float, float]] | None = None
    reduced: dict[str, Any] = field(default_factory=dict)  # what diagnoses found over every line (record.Reductions)
    more_lines: Callable[[np.ndarray], tuple[Columns, np.ndarray]] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:  # pickling: work out what is still Lazy (closures)
        for f in (_TABLES["steps"], _TABLES["epochs"], Result.__dict__["diagnostics"]):
            f.resolve(self)
        state = dict(self.__dict__)
        state["more_lines"] = None  # a closure over the run; the lines recorded stay
        return state

    @property
    def sampled(self) -> bool:
        """`steps` holds only some lines of the run (see `step_lines`)."""
        return self.step_lines is not None

    @property
    def total_steps(self) -> int:
        """Lines of the complete steps table (what `len(steps)` is when nothing was left out)."""
        return self.counters.n if self.sampled else self.rows("steps")

    def counter(self, name: str) -> np.ndarray:
        """"epoch", "step" or "row" over every line of the complete steps table."""
        return getattr(self.counters, name)() if self.sampled else self.column("steps", name)

    def epoch_firsts(self) -> np.ndarray:
        """The complete table's first line of each epoch."""
        if self.sampled:
            return self.counters.firsts()
        from .record import epoch_starts

        return epoch_starts(self.column("steps", "epoch"))

    def record_lines(self, lines) -> None:
        """Make sure `steps` holds these lines of the complete table (a sampled run records the
        ones it lacks by running its loop again; a complete one holds them all)."""
        if not self.sampled:
            return
        lines = np.asarray(lines, dtype=np.int64)
        if np.isin(lines, self.step_lines).all():
            return
        if self.more_lines is None:  # unpickled: the run it could replay stayed behind
            raise ValueError("this sampled Result cannot record more lines (it was copied from another process)")
        self.steps, self.step_lines = self.more_lines(np.union1d(self.step_lines, lines))

    def position(self, lines) -> np.ndarray:
        """Rows of `steps` holding these lines of the complete table (`record_lines` first)."""
        lines = np.asarray(lines, dtype=np.int64)
        if not self.sampled:
            return lines
        at = np.searchsorted(self.step_lines, lines)
        if not (at < len(self.step_lines)).all() or not np.array_equal(self.step_lines[np.minimum(at, len(self.step_lines) - 1)], lines):
            raise ValueError("lines asked for were not recorded (Result.record_lines records them)")
        return at

    def column(self, table: str, name: str) -> np.ndarray:
        """One column of `steps` or `epochs` as numpy, without building the DataFrame."""
        value = _TABLES[table].resolve(self)
        return value[name] if isinstance(value, Columns) else value[name].to_numpy()

    def table(self, table: str) -> "Table":
        """`steps` or `epochs` read as numpy columns, without building the DataFrame."""
        return Table(self, table)

    def rows(self, table: str) -> int:
        """How many rows `steps` or `epochs` has, without building the DataFrame."""
        return len(_TABLES[table].resolve(self))

    @classmethod
    def from_tables(cls, experiment: Experiment, steps: pd.DataFrame, epochs: pd.DataFrame,
                    input_names: list[str], starts: dict[int, dict[str, Any]], n_rows: int,
                    classes: int = 2, ids: Any = None) -> "Result":
        """A Result read back from a sheet's own steps and epochs tables (what a trace walks): the
        loop's structure comes from the experiment and the data's shape (`n_rows`: a full batch's
        size depends on it; `classes`: a softmax's K); no final parameters, state or diagnostics
        (nothing reads them there)."""
        from .loop.spec import build_spec

        spec = build_spec(experiment, n_rows, len(input_names), classes=classes)
        return cls(experiment, steps, epochs, params={}, state=State({}), diagnostics=Diagnostics(), details={},
                   param_names=list(spec.params), input_names=list(input_names),
                   state_names=list(spec.update.state), spec=spec, starts=starts, ids=ids)


_TABLES = {"steps": Result.__dict__["steps"], "epochs": Result.__dict__["epochs"]}


class Table:
    """A Result's table as the engine reads it (numpy, no pandas): `t[name]` a column, `name in
    t`, `len(t)` its rows, `t.row(i)` column -> value of row i."""

    def __init__(self, result: Result, name: str):
        self.result, self.name = result, name

    def __getitem__(self, column: str) -> np.ndarray:
        return self.result.column(self.name, column)

    def __contains__(self, column: str) -> bool:
        return column in self.columns

    def __len__(self) -> int:
        return self.result.rows(self.name)

    @property
    def columns(self) -> list[str]:
        value = _TABLES[self.name].resolve(self.result)
        return list(value.keys() if isinstance(value, Columns) else value.columns)

    def row(self, i: int) -> dict[str, Any]:
        return {c: self[c][i] for c in self.columns}
