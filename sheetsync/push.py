"""`push`: an experiment file (TOML or YAML) and a CSV of data become a workbook, then run.

The experiment file holds the same settings as the sheet's `experiments` tab, one table per
experiment (``[basic]``, ``lr = 0.0001``, ``init = {a = 1, b = 1}`` or ``"init a" = 1``),
optionally under a top-level ``experiments`` key. The CSV has the headers of the `data` tab.

Which input tabs push may write (the promise: never overwrite the user's work):

- a new workbook, or one without `data`/`experiments` tabs: push creates them, as tabs sheetsync
  owns, so a later push replaces them;
- tabs a previous push created (owned): replaced;
- input tabs the user made: used as they are when they already hold exactly the pushed values,
  otherwise refused with an `OwnershipError` — push never overwrites a tab it did not create.

Inputs and results land in one atomic write.
"""

from __future__ import annotations

import csv
import math
import re
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

from .backends.base import Column, Plan, Snapshot, Table, TabInfo, TabPlan
from .errors import InputError, OwnershipError, Problem
from .parse import DATA_TAB, EXPERIMENTS_TAB
from .parse.cells import NUMBER_LIKE, is_blank
from .parse.inputs import build_experiment, parse_inputs, setting_key, setting_name_problem

ABOUT_TAB = "about"


class PushInputError(InputError):
    """Bad pushed inputs, found before the target was opened: no file was written at all."""

    written = "nothing was written"


def load_experiments(path: str | Path) -> list[list[Any]]:
    """The experiments tab (rows) an experiment file describes; problems name file and setting."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError([Problem(str(path), f"cannot read the experiment file ({e.strerror})")]) from None
    try:
        doc = _parse_document(path, text)
    except ValueError as e:
        raise InputError([Problem(str(path), f"not valid {path.suffix.lstrip('.').upper()}: {e}")]) from None
    experiments = doc.get("experiments", doc) if isinstance(doc, dict) else None
    if not isinstance(experiments, dict) or not experiments or not all(
            isinstance(v, dict) for v in experiments.values()):
        raise InputError([Problem(str(path), "expected one table of settings per experiment, "
                                  "e.g. [basic] with lr = 0.0001 below it")])
    columns = {str(name): _flatten(settings) for name, settings in experiments.items()}
    _validate(path, columns)
    keys = list(dict.fromkeys(k for settings in columns.values() for k in settings))
    rows = [["setting"] + list(columns)]
    rows += [[k] + [columns[n].get(k) for n in columns] for k in keys]
    return rows


def _parse_document(path: Path, text: str) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(str(e)) from None
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(str(e).replace("\n", " ")) from None
    raise ValueError("expected a .toml, .yaml or .yml file")


def _flatten(settings: dict[str, Any]) -> dict[str, Any]:
    """{'init': {'a': 1}} -> {'init a': 1}; other keys as written; numbers written as strings
    (YAML reads `lr: 1e-4` as the text '1e-4') become numbers: a file has no cell format."""
    flat = {}
    for key, value in settings.items():
        if str(key).strip().lower() == "init" and isinstance(value, dict):
            flat.update({f"init {p}": _file_value(v) for p, v in value.items()})
        else:
            flat[str(key)] = _file_value(value)
    return flat


def _file_value(value: Any) -> Any:
    if isinstance(value, str) and NUMBER_LIKE.match(value.strip()):
        number = _number(value.strip())
        if isinstance(number, (int, float)) and math.isfinite(number):
            return number
    return value


def _validate(path: Path, columns: dict[str, dict[str, Any]]) -> None:
    """The sheet's own checks (`parse.inputs.build_experiment`), named by file and table."""
    problems: list[Problem] = []
    for name, settings in columns.items():
        where = f"{path} [{name}]"
        values: dict[str, Any] = {}
        for raw, value in settings.items():
            key = setting_key(raw)
            problem = setting_name_problem(raw)
            if problem is None and key in values:
                problem = f"duplicate setting {key!r}"
            if problem:
                problems.append(Problem(where, problem))
            else:
                values[key] = value
        build_experiment(name, values, lambda key, w=where: w, None, problems, named=False)
    if problems:
        raise InputError(problems)


def load_csv(path: str | Path) -> list[list[Any]]:
    """The data tab (rows) a CSV describes: numbers as numbers, anything else as written, so the
    sheet's own checks find a bad value (`push` names it by the CSV's line)."""
    return _load_csv(path)[0]


def _load_csv(path: str | Path) -> tuple[list[list[Any]], list[int]]:
    """The rows, and the line of the CSV each row starts on (a quoted field may span lines)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows, lines, line = [], [], 0
            for row in reader:
                rows.append(row)
                lines.append(line + 1)
                line = reader.line_num
    except OSError as e:
        raise InputError([Problem(str(path), f"cannot read the data file ({e.strerror})")]) from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError([Problem(str(path), f"not a readable CSV file: {e}")]) from None
    if not rows:
        raise InputError([Problem(str(path), "the CSV is empty; expected headers x and y in line 1")])
    return [rows[0]] + [[_number(v) for v in row] for row in rows[1:]], lines


def _number(text: str) -> Any:
    if is_blank(text):
        return None
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def input_tab_plans(tabs: dict[str, list[list[Any]]]) -> list[TabPlan]:
    """The input tabs as owned tabs: row 1 is the header, as the sheet expects."""
    plans = []
    for name, rows in tabs.items():
        width = max(len(r) for r in rows)
        padded = [list(r) + [None] * (width - len(r)) for r in rows]
        columns = [Column("" if padded[0][j] is None else str(padded[0][j]),
                          [r[j] for r in padded[1:]], None, 12 if j else 16) for j in range(width)]
        plans.append(TabPlan(name, [Table(columns)], frozen_rows=1, kind="inputs"))
    return plans


class PushBackend:
    """A backend seen through pushed inputs: reads see them, the one write carries them."""

    def __init__(self, backend, inputs: dict[str, list[list[Any]]]):
        self.backend = backend
        self.inputs = inputs
        self.to_write: dict[str, list[list[Any]]] | None = None

    def read(self, tabs, heads=()):
        snapshot = self.backend.read(list(tabs), heads=list(heads)) if heads else self.backend.read(list(tabs))
        if self.to_write is None:  # the first read round sees the input tabs
            self.to_write = _inputs_to_write(snapshot, self.inputs)
        from .backends.base import TabInfo

        for name, rows in self.inputs.items():
            if snapshot.tab(name) is None:
                snapshot.tabs.append(TabInfo(name, len(snapshot.tabs), owned=True))
            if name in tabs:
                snapshot.values[name] = [list(r) for r in rows]
        return snapshot

    def apply(self, plan: Plan) -> None:
        plan.tabs = input_tab_plans(self.to_write or {}) + plan.tabs
        self.backend.apply(plan)

    def __getattr__(self, name: str):  # the one-writer session and the rest: the backend's own
        return getattr(self.backend, name)


def _inputs_to_write(snapshot, pushed: dict[str, list[list[Any]]]) -> dict[str, list[list[Any]]]:
    """The pushed tabs that must be written; refuse to replace a different tab of the user's."""
    write = {}
    for name, rows in pushed.items():
        info = snapshot.tab(name)
        if info is None or info.owned:
            write[name] = rows
        elif name in snapshot.values and not _same(snapshot.values[name], rows):
            raise OwnershipError(f"{snapshot.target}: the tab {name!r} holds your own inputs, which differ "
                                 "from the pushed ones; push will not overwrite a tab it did not create. "
                                 "Push to a new workbook, or edit that tab and use 'sheetsync run'")
    return write


def _same(existing: list[list[Any]], pushed: list[list[Any]]) -> bool:
    def norm(rows):
        out = [[None if is_blank(v) else (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                                          else str(v).strip()) for v in r] for r in rows]
        out = [r[:max([i + 1 for i, v in enumerate(r) if v is not None], default=0)] for r in out]
        while out and not out[-1]:
            out.pop()
        return out

    return norm(existing) == norm(pushed)


def push(experiment_file: str | Path, data_csv: str | Path, target: str, *, backend=None,
         progress=None, credentials: str | None = None, force: bool = False):
    """Write the file's experiments and the CSV's data into `target` (new or existing), then run."""
    from .runner import run

    try:
        data, lines = _load_csv(data_csv)
        inputs = {DATA_TAB: data, EXPERIMENTS_TAB: load_experiments(experiment_file)}
    except InputError as e:
        raise PushInputError(e.problems) from None
    in_files = _FileNames(str(data_csv), lines, str(experiment_file), inputs)
    try:  # checked before the target is opened: bad inputs create or change no file
        parse_inputs(Snapshot(target, [TabInfo(DATA_TAB, 0, owned=True), TabInfo(EXPERIMENTS_TAB, 1, owned=True)],
                              inputs))
    except InputError as e:
        raise PushInputError([in_files.problem(p) for p in e.problems]) from None
    if backend is None:
        backend = _open_or_create(target, credentials)
    try:
        return run(target, backend=PushBackend(backend, inputs), progress=progress, action="run", force=force)
    except InputError as e:  # e.g. a budget counting the target's history
        raise InputError([in_files.problem(p) for p in e.problems]) from None


class _FileNames:
    """A problem found in the pushed tabs, named by the file it came from: ``data!B3`` becomes
    ``data.csv:3: column y: …``, ``experiments!C6`` becomes ``lab.toml [relu] epochs: …``."""

    def __init__(self, data_csv: str, lines: list[int], experiment_file: str, inputs: dict):
        self.data_csv, self.lines, self.experiment_file = data_csv, lines, experiment_file
        self.data, self.experiments = inputs[DATA_TAB], inputs[EXPERIMENTS_TAB]

    def problem(self, p: Problem) -> Problem:
        m = re.fullmatch(r"(.+)!([A-Z]+)(\d+)", p.cell)
        tab = m.group(1) if m else p.cell
        if tab not in (DATA_TAB, EXPERIMENTS_TAB):
            return p
        if not m:
            return Problem(self.data_csv if tab == DATA_TAB else self.experiment_file, p.message)
        col = 0
        for ch in m.group(2):
            col = col * 26 + ord(ch) - 64
        col, row = col - 1, int(m.group(3)) - 1  # 0-based, as the rows
        if tab == DATA_TAB:
            line = self.lines[row] if row < len(self.lines) else self.lines[-1] + row - len(self.lines) + 1
            header = self.data[0]
            about_the_cell = p.message.startswith(("expected a", "a number", "the cell", "the formula")) \
                and not p.message.startswith("expected at least")
            if row >= 1 and col < len(header) and about_the_cell:
                return Problem(f"{self.data_csv}:{line}", f"column {str(header[col]).strip()}: {p.message}")
            return Problem(f"{self.data_csv}:{line}", p.message)
        names, rows = self.experiments[0], self.experiments
        name = names[col] if 0 < col < len(names) else None
        key = rows[row][0] if 0 < row < len(rows) else None
        where = self.experiment_file + (f" [{name}]" if name else "") + (f" {key}" if key else "")
        return Problem(where, p.message)


def _open_or_create(target: str, credentials: str | None):
    from .backends import is_local, open_backend

    if is_local(target) and not Path(target).exists():
        from .backends.xlsx import XlsxBackend

        XlsxBackend.create(target, {ABOUT_TAB: [["This workbook was made by 'sheetsync push'."],
                                                ["Its data and experiments tabs belong to sheetsync: "
                                                 "the next push replaces them."]]})
    return open_backend(target, credentials)


class _Callable(types.ModuleType):
    """`sheetsync.push(...)` is the function even once this module has been imported (importing a
    submodule binds the package's name `push` to the module)."""

    def __call__(self, *args, **kwargs):
        return push(*args, **kwargs)


sys.modules[__name__].__class__ = _Callable
