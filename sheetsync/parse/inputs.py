"""Read the `data` and `experiments` tabs of a `Snapshot` into a `Dataset` and `Experiment`s.

Layout (README.md, "The sheet"):

- ``data``: row 1 holds the headers ``x`` and ``y`` (or ``x1``, ``x2``, … and ``y``); data
  rows run from row 2 down to the first empty row. At least `MIN_DATA_ROWS` rows.
- ``data`` for ``model: dot_product``: ratings, long or crosstab (`parse.ratings`).
- ``experiments``: column A holds setting names (case-insensitive; ``init a`` gives a starting
  value), row 1 holds experiment names, each further column is one experiment.

Every problem found in one pass is collected and raised together as one `InputError`, each
with the cell it sits in, so a learner fixes the sheet once rather than once per run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Callable

import numpy as np

from .. import budgets
from ..a1 import (DATA_TAB, EXPERIMENTS_TAB, FIXED_TABS, MAX_EXPERIMENT_NAME, TAB_SUFFIXES, A1Error,
                  a1, forbidden_in_tab_name, parse_cell)
from ..backends.base import Snapshot
from ..errors import InputError, Problem, SettingError, closest
from ..settings import SETTINGS, Experiment, suggest_setting
from .cells import NUMBER_LIKE, describe_non_number, is_blank, number_or_problem
from .ratings import Ratings, init_problems, is_ratings_sheet, own_init, parse_ratings

@dataclass
class Dataset:
    """The training data: x (n, k), y (n,), and where each value sits in the sheet."""

    x: np.ndarray
    y: np.ndarray
    input_names: list[str]  # ["x"] or ["x1", "x2", ...]
    tab: str = DATA_TAB
    columns: dict[str, int] = field(default_factory=dict)  # header -> 0-based sheet column
    first_row: int = 1  # 0-based sheet row of the first data row
    classes: list[str] = field(default_factory=list)  # text labels of y, numbered by first appearance
    # y with text in it, read both ways: its problems as class labels and as numbers (which apply
    # depends on the experiments: `y_problems`)
    text_y: dict[str, list[Problem]] = field(default_factory=dict, repr=False)
    ratings: Ratings | None = None  # dot_product: the ids and each rating's cells

    @property
    def ids(self):
        """The ratings' users and items (`engine.embeddings.Ids`), or None for x/y data."""
        return self.ratings.ids if self.ratings else None

    @property
    def n_rows(self) -> int:
        return len(self.y)

    def cell(self, i: int, name: str) -> str:
        """A1 address of data row `i` (0-based) in column `name`: ``data!B7``; for ratings, `name`
        ``y`` is rating `i`'s cell, ``user``/``item`` the cell of its user's/item's id."""
        if self.ratings is not None:
            cells = {"y": self.ratings.cells, "user": self.ratings.user_cells, "item": self.ratings.item_cells}
            return cells[name][i]
        return a1(self.first_row + i, self.columns[name], self.tab)

    def fingerprint(self) -> str:
        """A short hash of the numbers (not of formatting): equal data, equal hash."""
        if self.ratings is not None:
            from .ratings import fingerprint

            return fingerprint(self.ratings, self.x, self.y)
        h = hashlib.sha256()
        h.update(",".join(self.input_names).encode())
        h.update(np.ascontiguousarray(self.x, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(self.y, dtype=np.float64).tobytes())
        return h.hexdigest()[:12]

    def train_x(self) -> np.ndarray:
        """x as the engine takes it: (n,) for one input, (n, k) for several."""
        return self.x[:, 0] if self.x.shape[1] == 1 else self.x


@dataclass
class Inputs:
    """The data and the experiments read from a sheet."""

    dataset: Dataset
    experiments: list[Experiment]
    warnings: list[str] = field(default_factory=list)
    setting_cells: dict[str, dict[str, str]] = field(default_factory=dict)  # exp -> setting -> A1
    all_names: list[str] = field(default_factory=list)  # every experiment in the sheet


def parse_inputs(snapshot: Snapshot, *, data_tab: str = DATA_TAB,
                 experiments_tab: str = EXPERIMENTS_TAB, only: list[str] | None = None,
                 previous_epochs: dict[str, int] | None = None) -> Inputs:
    """Parse both tabs; raise one `InputError` listing every problem found.

    `only` restricts the run to some experiments (all are still validated: a broken column is
    worth knowing about). `previous_epochs` (experiment -> epochs already in its history) lets
    the history budget count what the run will add to.
    """
    problems: list[Problem] = []
    warnings: list[str] = []
    rated = is_ratings_sheet(snapshot, experiments_tab)
    dataset = (_parse_ratings_data if rated else _parse_data)(snapshot, data_tab, problems, warnings)
    n_data_problems = len(problems)
    # no readable data: how many inputs, so which parameters, is unknown (init names go unchecked)
    n_inputs = dataset.x.shape[1] if dataset is not None and not rated else None
    experiments, cells, name_cells = _parse_experiments(snapshot, experiments_tab, n_inputs,
                                                        problems, warnings, (data_tab, experiments_tab))
    if rated:
        experiments = _ratings_experiments(experiments, dataset, cells, name_cells, experiments_tab, problems)
    if dataset is not None and dataset.text_y:  # y's problems join the data tab's, in reading order
        data_problems = problems[:n_data_problems] + y_problems(dataset, experiments)
        data_problems.sort(key=lambda p: (p.cell == data_tab, _cell_order(p.cell)))  # "… and N more" last
        problems[:n_data_problems] = data_problems
    all_names = [e.name for e in experiments]
    if only:
        experiments = _select(experiments, only, experiments_tab, problems)
    if dataset is not None and not problems:
        problems += budget_problems(experiments, dataset, previous_epochs or {}, experiments_tab,
                                    cells, name_cells)
        problems += memory_problems(experiments, dataset, cells, experiments_tab)
        problems += label_problems(experiments, dataset, experiments_tab, cells)
    if problems:
        raise InputError(problems)
    return Inputs(dataset, experiments, warnings, cells, all_names)


# ---------------------------------------------------------------------------------------------
# data


def _parse_data(snapshot: Snapshot, tab: str, problems: list[Problem],
                warnings: list[str]) -> Dataset | None:
    rows = _tab_values(snapshot, tab, problems, "headers x and y (or x1, x2, … and y) in row 1")
    if rows is None:
        return None
    columns = _data_headers(rows[0] if rows else [], tab, problems)
    if columns is None:
        return None
    inputs = [name for name in columns if name != "y"]
    if len(inputs) > budgets.MAX_INPUTS:
        extra = sorted(columns[name] for name in inputs)[budgets.MAX_INPUTS]
        problems.append(Problem(a1(0, extra, tab), f"{len(inputs):,} input columns; the limit is "
                                f"{budgets.MAX_INPUTS} (x1 to x{budgets.MAX_INPUTS})"))
        return None
    last = _last_data_row(rows, columns.values())
    n = last - 1 + 1 if last >= 1 else 0
    if n < budgets.MIN_DATA_ROWS:
        problems.append(Problem(a1(1, 0, tab), f"expected at least {budgets.MIN_DATA_ROWS} data rows "
                                f"below the headers, found {n}"))
        return None
    if n > budgets.MAX_DATA_ROWS:
        # the first row past the limit: where the data would have to stop
        problems.append(Problem(a1(1 + budgets.MAX_DATA_ROWS, 0, tab),
                                f"{n:,} data rows; the limit is {budgets.MAX_DATA_ROWS:,} (rows 2 to "
                                f"{1 + budgets.MAX_DATA_ROWS:,})"))
        return None
    _warn_rows_after_gap(rows, last, columns.values(), tab, warnings)

    values = np.zeros((n, len(columns)))
    order = inputs + ["y"]
    found = 0
    classes: list[str] = []
    text_y: dict[str, list[Problem]] = {}
    for j, name in enumerate(order):
        col = columns[name]
        cells = _column(rows, col, 1, 1 + n)
        if _all_plain_numbers(cells):  # the common case, without a check per cell
            values[:, j] = cells
            continue
        if name == "y" and _text_labels(cells):
            text_y["labels"] = []
            classes = _read_labels(cells, values[:, j], col, tab, text_y["labels"])
            number_problems = text_y["numbers"] = []
            found_before = found
        else:
            number_problems = problems
        for i, cell in enumerate(cells):
            v, problem = number_or_problem(cell)
            if problem:
                if found < 200:  # a whole column of text says the same thing 100,000 times
                    number_problems.append(Problem(a1(1 + i, col, tab), problem))
                found += 1
            elif number_problems is problems:
                values[i, j] = v
        if "numbers" in text_y and name == "y":
            found = found_before  # counted when the numbers reading is the one that applies
    problems.sort(key=lambda p: _cell_order(p.cell))
    if found > 200:
        problems.append(Problem(tab, f"… and {found - 200:,} more cells that are not numbers"))
    return Dataset(values[:, :-1], values[:, -1].copy(), inputs, tab, columns, 1, classes, text_y)


def _parse_ratings_data(snapshot: Snapshot, tab: str, problems: list[Problem],
                        warnings: list[str]) -> Dataset | None:
    rows = _tab_values(snapshot, tab, problems, "ratings: headers user, item and rating in row 1, or item ids "
                       "across row 1 and user ids down column A")
    if rows is None:
        return None
    found = parse_ratings(rows, tab, problems, warnings)
    if found is None:
        return None
    x, y, ratings = found
    return Dataset(x, y, ["user", "item"], tab, ratings=ratings)


def factor_ranges(inputs: "Inputs", snapshot: Snapshot, tab: str = EXPERIMENTS_TAB) -> None:
    """Each dot_product experiment's `user_factors_from` / `item_factors_from` ranges read from
    `snapshot` (which holds their tabs) into its `init`; one `InputError` for every problem."""
    from .ratings import factor_init

    problems: list[Problem] = []
    for k, exp in enumerate(inputs.experiments):
        cells = inputs.setting_cells.get(exp.name, {})
        inputs.experiments[k] = factor_init(exp, inputs.dataset.ids, snapshot,
                                            lambda key, c=cells: c.get(key, tab), problems)
    if problems:
        raise InputError(problems)


def _ratings_experiments(experiments: list[Experiment], dataset: Dataset | None, cells: dict[str, dict[str, str]],
                         name_cells: dict[str, str], tab: str, problems: list[Problem]) -> list[Experiment]:
    """A ratings sheet's experiments: all dot_product (the data tab holds ratings, not x and y),
    their `init` cells checked against the parameters the ids make."""
    dot = [e.name for e in experiments if e.model == "dot_product"]
    for exp in experiments:
        if exp.model != "dot_product":
            problems.append(Problem(cells[exp.name].get("model", name_cells.get(exp.name, tab)),
                                    f"{exp.name}: model {exp.model} reads x and y, but the data tab holds ratings for "
                                    f"the dot_product experiment{'s' if len(dot) > 1 else ''} {', '.join(dot)}; "
                                    "train it in a workbook of its own"))
    if dataset is None:
        return experiments
    from ..engine.loop.spec import check_table_settings

    out = []
    for exp in experiments:
        where = (lambda key, c=cells[exp.name], n=name_cells.get(exp.name, tab): c.get(key, n))
        try:  # what the table model cannot do yet, at the setting's cell rather than after reading
            check_table_settings(exp)
        except SettingError as e:
            problems.append(Problem(where(e.setting), f"{exp.name}: {e.setting}: {e.problem}"))
        problems += init_problems(exp, dataset.ids, where)
        out.append(exp.with_init(own_init(exp, dataset.ids)))
    return out


# ---------------------------------------------------------------------------------------------
# class labels


def _text_labels(cells: list) -> bool:
    """y holds class names ('cat', 'dog'): some cell is text that does not read as a number."""
    return any(isinstance(v, str) and v.strip() and not NUMBER_LIKE.match(v.strip()) for v in cells)


def _label(v) -> str | None:
    if isinstance(v, str):
        return v.strip() or None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        return None
    return f"{v:g}"


def _read_labels(cells: list, out: np.ndarray, col: int, tab: str, problems: list[Problem]) -> list[str]:
    """Class indices into `out`, classes numbered in order of first appearance."""
    index: dict[str, int] = {}
    for i, v in enumerate(cells):
        label = _label(v)
        if label is None:
            problems.append(Problem(a1(1 + i, col, tab), f"expected a class label (y holds text labels), "
                                    f"found {describe_non_number(v).split('found ')[-1]}"))
            continue
        out[i] = index.setdefault(label, len(index))
    return list(index)


def y_problems(dataset: Dataset, experiments: list[Experiment]) -> list[Problem]:
    """Text in y: class labels when an experiment is a softmax model, else cells that are not
    numbers (the messages a regression sheet has always had)."""
    from ..engine.labels import head

    if any(head(e) == "softmax" for e in experiments):
        return dataset.text_y["labels"]
    dataset.classes = []
    return dataset.text_y["numbers"]


def label_problems(experiments: list[Experiment], dataset: Dataset, tab: str = EXPERIMENTS_TAB,
                   setting_cells: dict[str, dict[str, str]] | None = None) -> list[Problem]:
    """y values an experiment's model cannot take as class labels, at their cells."""
    from ..engine import labels

    problems: list[Problem] = []
    for exp in experiments:
        if dataset.classes and labels.head(exp) != "softmax":
            first = dataset.cell(0, "y")
            problems.append(Problem(first, f"{exp.name}: y holds text labels ({', '.join(dataset.classes[:3])}"
                                    f"{', …' if len(dataset.classes) > 3 else ''}); only a softmax model reads them "
                                    "(model softmax, or mlp with output softmax)"))
            continue
        if dataset.classes and exp.classes and exp.classes < len(dataset.classes):
            cell = (setting_cells or {}).get(exp.name, {}).get("classes", tab)
            problems.append(Problem(cell, f"{exp.name}: classes: {exp.classes} classes, but y holds "
                                    f"{len(dataset.classes)} labels ({', '.join(dataset.classes[:6])})"))
            continue
        for i, what in labels.label_problems(exp, dataset.y):
            problems.append(Problem(dataset.cell(i, "y"), f"{exp.name}: {what}"))
    return problems


_PLAIN_NUMBERS = {int, float}  # not bool, not text: what a number cell reads as


def _all_plain_numbers(cells: list) -> bool:
    if not set(map(type, cells)) <= _PLAIN_NUMBERS:  # map and set run in C: 100,000 cells in ~3 ms
        return False
    return bool(np.isfinite(np.asarray(cells, dtype=float)).all())


def _column(rows: list[list], col: int, start: int, stop: int) -> list:
    """Column `col` of rows[start:stop], None where a row is shorter (an itemgetter over the
    rows when none is: a big data tab's column without a Python step per cell)."""
    part = rows[start:stop]
    if part and min(map(len, part)) > col:
        return list(map(itemgetter(col), part))
    return [row[col] if col < len(row) else None for row in part]


def _cell_order(cell: str) -> tuple[int, str]:
    """Problems of the data tab in reading order: row by row, then column."""
    try:
        ref = parse_cell(cell)
    except A1Error:  # a problem of the whole tab
        return (0, cell)
    return (ref.row, ref.letters.rjust(3))


def _data_headers(header_row: list, tab: str, problems: list[Problem]) -> dict[str, int] | None:
    """header -> column, for x/x1../y; problems for anything else."""
    columns: dict[str, int] = {}
    bad = False
    width = _first_blank(header_row)  # headers end at the first empty cell; notes may follow
    for col in range(width):
        raw = header_row[col]
        where = a1(0, col, tab)
        name = str(raw).strip().lower()
        if name in columns:
            problems.append(Problem(where, f"duplicate header {name!r} (also in "
                                    f"{a1(0, columns[name], tab)})"))
            bad = True
        elif not re.fullmatch(r"x|y|x[1-9]\d*", name):
            problems.append(Problem(where, f"unexpected header {str(raw)!r}; expected x, x1, x2, … "
                                    f"or y{closest(name, ['x', 'y', 'x1', 'x2'])}"))
            bad = True
        else:
            columns[name] = col
    if bad:
        return None
    xs = [c for c in columns if c != "y"]
    if "y" not in columns:
        problems.append(Problem(a1(0, width, tab), "missing header y (the value to predict; the "
                                "headers end at the first empty cell of row 1)"))
    if not xs:
        problems.append(Problem(a1(0, width, tab), "missing header x (or x1, x2, …)"))
    if "y" not in columns or not xs:
        return None
    if "x" in xs and len(xs) > 1:
        problems.append(Problem(a1(0, columns["x"], tab), "use either one input x or x1, x2, …, not both"))
        return None
    if "x" not in xs:
        expected = [f"x{i}" for i in range(1, len(xs) + 1)]
        if sorted(xs, key=lambda s: int(s[1:])) != expected:
            missing = [e for e in expected if e not in xs]
            problems.append(Problem(a1(0, width, tab), f"inputs must be numbered x1, x2, … without gaps; "
                                    f"missing {', '.join(missing)}"))
            return None
        xs = expected
    return {name: columns[name] for name in xs + ["y"]}


def _first_blank(row: list) -> int:
    for i, v in enumerate(row):
        if is_blank(v):
            return i
    return len(row)


def _last_data_row(rows: list[list], cols) -> int:
    """0-based index of the last row before the first row empty in every data column."""
    cols = list(cols)
    if any(set(map(type, _column(rows, c, 1, len(rows)))) <= _PLAIN_NUMBERS for c in cols):
        return len(rows) - 1  # a column of numbers all the way down: no row is empty
    last = 0
    for r in range(1, len(rows)):
        row = rows[r]
        for c in cols:  # a loop, not all(...): 100,000 rows of numbers should cost little
            v = row[c] if c < len(row) else None
            if type(v) is float or not is_blank(v):
                break  # the row holds data
        else:
            break
        last = r
    return last


def _warn_rows_after_gap(rows, last, cols, tab, warnings) -> None:
    cols = list(cols)
    for r in range(last + 2, len(rows)):
        if any(not is_blank(rows[r][c] if c < len(rows[r]) else None) for c in cols):
            warnings.append(f"{tab}: data stops at the empty row {last + 2}; "
                            f"rows from {r + 1} on are ignored")
            return


# ---------------------------------------------------------------------------------------------
# experiments


def _parse_experiments(snapshot: Snapshot, tab: str, n_inputs: int, problems: list[Problem],
                       warnings: list[str], input_tabs=(DATA_TAB, EXPERIMENTS_TAB),
                       ) -> tuple[list[Experiment], dict[str, dict[str, str]], dict[str, str]]:
    """The experiments, each one's setting cells (setting -> A1) and each one's name cell."""
    rows = _tab_values(snapshot, tab, problems,
                       "setting names in column A and experiment names in row 1")
    if rows is None:
        return [], {}, {}
    setting_rows = _setting_rows(rows, tab, problems)
    names = _experiment_names(rows, tab, problems, input_tabs)
    experiments, cells = [], {}
    for col, name in names:
        exp_cells = {key: a1(r, col, tab) for key, r in setting_rows.items()}
        values = {key: _cell(rows, r, col) for key, r in setting_rows.items()}
        exp = build_experiment(name, values, lambda key, c=exp_cells, n=a1(0, col, tab): c.get(key, n),
                               n_inputs, problems)
        if exp is not None:
            experiments.append(exp)
            cells[name] = {_canonical(k): ref for k, ref in exp_cells.items()}
            warnings += [f"{cells[name][k]}: {name}: {k} is ignored by {exp.flavour} {exp.optimizer}"
                         for k in exp.unused()]
    return experiments, cells, {name: a1(0, col, tab) for col, name in names}


def _setting_rows(rows: list[list], tab: str, problems: list[Problem]) -> dict[str, int]:
    """Normalised setting name ('lr', 'init a') -> 0-based row."""
    found: dict[str, int] = {}
    for r in range(1, len(rows)):
        raw = _cell(rows, r, 0)
        if is_blank(raw):
            if any(not is_blank(v) for v in rows[r][1:]):
                problems.append(Problem(a1(r, 0, tab), "values without a setting name in column A"))
            continue
        key = setting_key(raw)
        where = a1(r, 0, tab)
        if key in found:
            problems.append(Problem(where, f"duplicate setting {key!r} (also in {a1(found[key], 0, tab)})"))
            continue
        problem = setting_name_problem(raw)
        if problem:
            problems.append(Problem(where, problem))
            continue
        found[key] = r
    return found


def setting_name_problem(raw) -> str | None:
    """What is wrong with a setting's name (a row of column A, a key of an experiment file)."""
    key = setting_key(raw)
    if key.startswith("init "):
        if not re.fullmatch(r"init [a-z][a-z0-9_]*", key):
            return f"expected 'init <parameter>' such as 'init a', found {raw!r}"
    elif key.replace(" ", "_") not in SETTINGS:
        return f"unknown setting {str(raw).strip()!r}{suggest_setting(raw)}"
    return None


def _canonical(key: str) -> str:
    """'batch size' -> 'batch_size' (the Experiment's name); 'init a' stays."""
    return key if key.startswith("init ") else key.replace(" ", "_")


def setting_key(raw) -> str:
    """'Init A' -> 'init a'; 'Batch Size' -> 'batch size' (underscores become spaces here)."""
    key = " ".join(str(raw).strip().lower().split())
    if key == "init" or key.startswith("init "):
        return key + " " if key == "init" else key
    return key.replace("_", " ")


def _experiment_names(rows: list[list], tab: str, problems: list[Problem],
                      input_tabs=(DATA_TAB, EXPERIMENTS_TAB)) -> list[tuple[int, str]]:
    width = max((_row_width(r) for r in rows), default=0)
    names: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    before = len(problems)
    for col in range(1, width):
        raw = _cell(rows, 0, col)
        where = a1(0, col, tab)
        if is_blank(raw):
            if any(not is_blank(_cell(rows, r, col)) for r in range(1, len(rows))):
                problems.append(Problem(where, "settings without an experiment name in row 1"))
            continue
        name = str(raw).strip()
        problem = tab_name_problem(name)
        if problem:
            problems.append(Problem(where, problem))
            continue
        if name.lower() in seen:
            problems.append(Problem(where, f"duplicate experiment name {name!r} (also in "
                                    f"{a1(0, seen[name.lower()], tab)}; tab names ignore case)"))
            continue
        taken = reserved_clash(name, input_tabs)
        if taken:
            problems.append(Problem(where, f"experiment name {name!r} would make the tab {taken!r}, "
                                    "which is an input or sheetsync tab; rename the experiment"))
            continue
        seen[name.lower()] = col
        names.append((col, name))
    if not names and len(problems) == before:
        problems.append(Problem(a1(0, 1, tab), "no experiment: put an experiment name in B1 and its "
                                "settings below it"))
    return names


def reserved_clash(name: str, input_tabs) -> str | None:
    """The tab name `name` would take that is already an input or fixed tab, if any."""
    reserved = {t.lower() for t in (*FIXED_TABS, *input_tabs)}
    for suffix in TAB_SUFFIXES:
        if f"{name}{suffix}".lower() in reserved:
            return f"{name}{suffix}"
    return None


def tab_name_problem(name: str) -> str | None:
    """Why `name` cannot prefix sheetsync's tab names (``NAME steps``), or None."""
    if len(name) > MAX_EXPERIMENT_NAME:
        return (f"experiment name {name!r} is {len(name)} characters; at most "
                f"{MAX_EXPERIMENT_NAME} fit in a tab name such as '{name[:8]}… epochs'")
    bad = forbidden_in_tab_name(name)
    if bad:
        return f"experiment name {name!r} contains {' '.join(bad)}, which tab names cannot hold"
    if name.startswith("'") or name.endswith("'"):
        return f"experiment name {name!r} cannot start or end with an apostrophe (a tab name rule)"
    return None


def build_experiment(name: str, values: dict[str, object], where: Callable[[str], str],
                     n_inputs: int | None, problems: list[Problem], named: bool = True) -> Experiment | None:
    """Validate one experiment, reporting every bad setting (not just the first): the one check
    behind the experiments tab and push's experiment files.

    `values`: setting key as `setting_key` gives it ('lr', 'batch size', 'init a') -> value, names
    already checked (`setting_name_problem`); `where(key)`: the cell (or file and table) a problem
    of that setting is reported at; `n_inputs` None skips the check of init parameter names;
    `named` False leaves the experiment's name out of messages (`where` already says it)."""
    label = f"{name}: " if named else ""
    settings = {k.replace(" ", "_"): v for k, v in values.items() if not k.startswith("init ")}
    init_raw = {k[5:]: v for k, v in values.items() if k.startswith("init ") and not is_blank(v)}
    before = len(problems)
    for key, v in list(settings.items()):
        marker = _marker_problem(v) or _text_number_problem(v)
        if marker:
            problems.append(Problem(where(key.replace("_", " ")), f"{label}{key}: {marker}"))
            del settings[key]
    init: dict[str, float] = {}
    for param, v in init_raw.items():
        number, problem = number_or_problem(v)
        if problem:
            problems.append(Problem(where(f"init {param}"), f"{label}init {param}: {problem}"))
        else:
            init[param] = number
    exp = None
    dropped = set()
    for _ in range(len(SETTINGS) + 1):  # drop each bad setting and retry, to find them all
        try:
            exp = Experiment(name, init=init, **settings)
            break
        except SettingError as e:
            key = str(e.setting).strip().lower().replace(" ", "_")
            problems.append(Problem(where(key.replace("_", " ")),
                                    f"{label}{e.setting}: {e.problem}"))
            if key not in settings:
                break
            del settings[key]
            dropped.add(key)
    if exp is not None and n_inputs is not None and not dropped & {"model", "hidden"}:
        _check_init_names(exp, init, where, n_inputs, problems)  # (else the params are unknown)
    return exp if len(problems) == before else None


def _text_number_problem(value) -> str | None:
    """'0.0001 ' or '1,5' in a setting: a number stored as text, refused as in the data tab (a
    cell that only looks like a number is a surprise waiting in the next spreadsheet program)."""
    if isinstance(value, str) and NUMBER_LIKE.match(value.strip()):
        return describe_non_number(value)
    return None


def _marker_problem(value) -> str | None:
    """Dates, error values and uncomputed formulas are never valid settings."""
    from ..backends.base import CellError, DateCell, Uncomputed

    if isinstance(value, (CellError, DateCell, Uncomputed)):
        return describe_non_number(value)
    return None


def _check_init_names(exp: Experiment, init: dict[str, float], where: Callable[[str], str], n_inputs: int,
                      problems: list[Problem]) -> None:
    from ..engine.labels import head

    if head(exp) == "softmax" and not exp.classes:
        return  # the class count comes from y: the engine checks the names when it knows it
    try:
        params = model_params(exp, n_inputs)
    except ValueError as e:  # e.g. two_relu with several inputs
        problems.append(Problem(where("model"), f"{exp.name}: model: {e}"))
        return
    for p in init:
        if p not in params:
            problems.append(Problem(where(f"init {p}"), f"{exp.name}: the {exp.model} model has no "
                                    f"parameter {p!r}; its parameters are {', '.join(params[:12])}"
                                    f"{closest(p, params)}"))


def model_params(exp: Experiment, n_inputs: int, y: np.ndarray | None = None, ids=None) -> list[str]:
    """The experiment's parameter names (a softmax model's class count from `classes`, else
    from y when given; a dot_product model's from the ratings' `ids`)."""
    from ..engine import param_names  # the engine owns the model definitions
    from ..engine.labels import classes_of

    if exp.model == "dot_product":
        from ..engine import embeddings

        return embeddings.param_names(ids, exp.factors, exp.bias)

    classes = classes_of(exp, y) if y is not None else (exp.classes or 2)
    return list(param_names(exp.model, n_inputs, exp.hidden, exp.output, classes))


def _select(experiments: list[Experiment], only: list[str], tab: str,
            problems: list[Problem]) -> list[Experiment]:
    by_name = {e.name.lower(): e for e in experiments}
    chosen = []
    for name in only:
        exp = by_name.get(name.strip().lower())
        if exp is None:
            problems.append(Problem(tab, f"no experiment named {name!r}; the sheet has "
                                    f"{', '.join(e.name for e in experiments) or 'none'}"
                                    f"{closest(name, [e.name for e in experiments])}"))
        else:
            chosen.append(exp)
    return chosen


# ---------------------------------------------------------------------------------------------
# budgets


def steps_per_epoch(exp: Experiment, n_rows: int) -> int:
    batch = exp.batch_size or n_rows
    return -(-n_rows // batch)


def budget_problems(experiments: list[Experiment], dataset: Dataset, previous_epochs: dict[str, int],
                    tab: str = EXPERIMENTS_TAB, setting_cells: dict[str, dict[str, str]] | None = None,
                    name_cells: dict[str, str] | None = None) -> list[Problem]:
    """Refuse, before training, a run that would not fit the documented budgets.

    Each problem names the `epochs` cell of the experiment that takes the largest share (its name
    cell when epochs is left at the default), so the learner knows which number to lower."""
    problems = []
    work: dict[str, int] = {}
    history_cells: dict[str, int] = {}
    for exp in experiments:
        n_params = len(model_params(exp, dataset.x.shape[1], dataset.y, dataset.ids))
        if exp.model == "dot_product":  # a row works on its slots, and a dense update on the whole table
            work[exp.name] = exp.epochs * _table_work(exp, dataset, n_params)
            n_params = 0  # its epochs tab holds no column per parameter
        else:
            work[exp.name] = exp.epochs * dataset.n_rows * n_params * (2 if exp.gradient != "analytic" else 1)
        history = previous_epochs.get(exp.name, 0) + exp.epochs
        history_cells[exp.name] = history * (n_params + budgets.EPOCHS_FIXED_COLS)

    def culprit(shares: dict[str, int]) -> str:
        name = max(shares, key=shares.get)
        cell = (setting_cells or {}).get(name, {}).get("epochs") or (name_cells or {}).get(name, tab)
        return cell

    if sum(work.values()) > budgets.COMPUTE_BUDGET:
        problems.append(Problem(culprit(work), f"this run would take {sum(work.values()):,.0f} row-steps × "
                                f"parameters, over the budget of {budgets.COMPUTE_BUDGET:,}; lower epochs or "
                                "run fewer experiments at once (--experiment NAME)"))
    if sum(history_cells.values()) > budgets.EPOCHS_CELL_BUDGET:
        problems.append(Problem(culprit(history_cells), f"the epochs history would need "
                                f"{sum(history_cells.values()):,} cells, over the budget of "
                                f"{budgets.EPOCHS_CELL_BUDGET:,}; lower epochs or reset"))
    return problems


def _table_work(exp: Experiment, dataset: Dataset, n_params: int) -> int:
    """One epoch's row-steps × parameters of a table model: each rating's slots, plus every table
    entry per step when the update moves untouched entries too (optimizer state, weight decay)."""
    from ..engine.loop.spec import build_spec

    spec = build_spec(exp, dataset.n_rows, 2)
    dense = 0 if spec.sparse_update else n_params * steps_per_epoch(exp, dataset.n_rows)
    return dataset.n_rows * len(spec.params) + dense


def memory_problems(experiments: list[Experiment], dataset: Dataset, setting_cells: dict[str, dict[str, str]],
                    tab: str = EXPERIMENTS_TAB) -> list[Problem]:
    """Refuse, before training, a run whose recorded steps would not fit `budgets.MEMORY_BUDGET`:
    train() holds every step line (lines × step columns × 8 bytes), all experiments together,
    except for a run recorded sampled (engine/record.py `held_bytes`: one kernel call's lines and
    at most the cell budget's). The problem names the `epochs` cell of the experiment holding
    the most."""
    from ..engine.labels import classes_of
    from ..engine.loop.spec import Spec
    from ..engine.models import build_model
    from ..engine.optimizers import build_update
    from ..engine.record import held_bytes

    held: dict[str, int] = {}
    for exp in experiments:
        if exp.model == "dot_product":
            from ..engine.loop.spec import build_spec

            held[exp.name] = held_bytes(build_spec(exp, dataset.n_rows, 2), dataset.n_rows, exp.epochs,
                                        budgets.CELL_BUDGET)
            continue
        try:
            model = build_model(exp.model, dataset.x.shape[1], exp.hidden, exp.output,
                                classes_of(exp, dataset.y))
            spec = Spec(model, build_update(exp), exp.loss, exp.gradient, exp.grad_method, 0, False)
        except (ValueError, KeyError):
            continue  # reported by the settings checks
        held[exp.name] = held_bytes(spec, dataset.n_rows, exp.epochs, budgets.CELL_BUDGET)
    total = sum(held.values())
    if total <= budgets.MEMORY_BUDGET:
        return []
    worst = max(held, key=held.get)
    cell = setting_cells.get(worst, {}).get("epochs", tab)
    return [Problem(cell, f"{worst}: the steps of this run would take {total / (1 << 30):,.1f} GiB of "
                    f"memory, over the budget of {budgets.MEMORY_BUDGET / (1 << 30):,.0f} GiB; lower "
                    "epochs or run fewer experiments at once (--experiment NAME)")]


# ---------------------------------------------------------------------------------------------
# helpers


def _tab_values(snapshot: Snapshot, tab: str, problems: list[Problem], expected: str):
    if snapshot.tab(tab) is None:
        titles = [t.title for t in snapshot.tabs]
        problems.append(Problem(tab, f"missing tab {tab!r}; expected {expected}{closest(tab, titles)}"))
        return None
    if snapshot.tab(tab).kind != "worksheet":
        problems.append(Problem(tab, f"{tab} is a {snapshot.tab(tab).kind}, not a worksheet; expected {expected}"))
        return None
    rows = snapshot.values.get(tab) or []
    if not rows or _row_width(rows[0]) == 0:
        problems.append(Problem(a1(0, 0, tab), f"the tab is empty; expected {expected}"))
        return None
    return rows


def _row_width(row: list) -> int:
    """Number of cells up to the last non-blank one."""
    for i in range(len(row) - 1, -1, -1):
        if not is_blank(row[i]):
            return i + 1
    return 0


def _cell(rows: list[list], r: int, c: int):
    if r < len(rows) and c < len(rows[r]):
        return rows[r][c]
    return None
