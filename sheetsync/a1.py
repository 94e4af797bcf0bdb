"""Tab names and A1 geometry, defined once: the tabs sheetsync writes and what a tab name may
hold, column letters, quoting a tab name in a reference, and reading references back.

The ground floor: nothing here imports from the rest of sheetsync, so every room may use it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# ---------------------------------------------------------------------------------------------
# The grid

MAX_ROWS = 1_048_576  # rows of a tab (Excel and LibreOffice alike)
MAX_COLUMNS = 16_384  # columns A..XFD

# ---------------------------------------------------------------------------------------------
# Tab names

MAX_TAB_NAME = 31  # characters, Excel's limit
BAD_TAB_CHARS = frozenset("[]:*?/\\")
RESERVED_BY_EXCEL = "History"  # Excel keeps this name for its change tracking

# The input tabs' default names, and the tabs sheetsync writes once per sheet.
DATA_TAB = "data"
EXPERIMENTS_TAB = "experiments"
RUNS_TAB = "runs"
STATE_TAB = "sheetsync state"
COMPARE_TAB = "compare"
FIXED_TABS = (RUNS_TAB, STATE_TAB, COMPARE_TAB)

# The tabs written per experiment: `NAME steps` and the others keep the whole name, so an
# experiment's name may take what the longest of their suffixes leaves; `NAME landscape`
# shortens the name where it has to (`landscape_tab_name`).
STEPS_SUFFIX, EPOCHS_SUFFIX, MAP_SUFFIX, LANDSCAPE_SUFFIX = " steps", " epochs", " map", " landscape"
BOUNDARY_SUFFIX = " boundary"  # classifiers only
FACTORS_SUFFIX, SIMILAR_SUFFIX = " factors", " similar"  # dot_product (embeddings) only
TAB_SUFFIXES = (STEPS_SUFFIX, EPOCHS_SUFFIX, MAP_SUFFIX)
MAX_EXPERIMENT_NAME = MAX_TAB_NAME - max(len(s) for s in TAB_SUFFIXES)


def steps_tab_name(experiment: str) -> str:
    return experiment + STEPS_SUFFIX


def epochs_tab_name(experiment: str) -> str:
    return experiment + EPOCHS_SUFFIX


def map_tab_name(experiment: str) -> str:
    return experiment + MAP_SUFFIX


def landscape_tab_name(experiment: str) -> str:
    """`NAME landscape`, the name shortened (with a ~) where 31 characters would not hold it."""
    return _shortened(experiment, LANDSCAPE_SUFFIX)


def boundary_tab_name(experiment: str) -> str:
    """`NAME boundary`, shortened as `NAME landscape` is."""
    return _shortened(experiment, BOUNDARY_SUFFIX)


def factors_tab_name(experiment: str) -> str:
    """`NAME factors` (embeddings), shortened as `NAME landscape` is."""
    return _shortened(experiment, FACTORS_SUFFIX)


def similar_tab_name(experiment: str) -> str:
    """`NAME similar` (embeddings), shortened as `NAME landscape` is."""
    return _shortened(experiment, SIMILAR_SUFFIX)


def _shortened(experiment: str, suffix: str) -> str:
    name = experiment + suffix
    if len(name) <= MAX_TAB_NAME:
        return name
    return experiment[: MAX_TAB_NAME - len(suffix) - 1] + "~" + suffix


def experiment_tabs(experiment: str) -> tuple[str, ...]:
    """The tabs a run writes for one experiment."""
    return (steps_tab_name(experiment), epochs_tab_name(experiment), map_tab_name(experiment),
            landscape_tab_name(experiment), boundary_tab_name(experiment), factors_tab_name(experiment),
            similar_tab_name(experiment))


# Characters XML 1.0 cannot hold, and \r, which XML parsers turn into \n.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\r\x0e-\x1f\ufffe\uffff]")


def forbidden_in_tab_name(name: str) -> list[str]:
    """What `name` holds that no tab name may: the characters Excel refuses, sorted, and
    "control characters" (tab and newline included: Excel refuses them too)."""
    bad = sorted(BAD_TAB_CHARS & set(name))
    if CONTROL_CHARS.search(name) or "\t" in name or "\n" in name:
        bad.append("control characters")
    return bad


def tab_name_problem(name: str) -> str | None:
    """Why `name` cannot be a tab name in Excel (the end of a sentence), or None."""
    bad = forbidden_in_tab_name(name)
    if bad:
        return f"contains {' '.join(bad)}"
    if not name or len(name) > MAX_TAB_NAME or name.startswith("'") or name.endswith("'") \
            or name.casefold() == RESERVED_BY_EXCEL.casefold():
        return (f"must be 1-{MAX_TAB_NAME} characters, not start or end with ', and not be "
                f"{RESERVED_BY_EXCEL}")
    return None


# ---------------------------------------------------------------------------------------------
# Columns and cells


def col_letter(col: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA', 16383 -> 'XFD'."""
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


KNOWN_COLUMNS: dict[str, int] = {}  # letters -> index, as column_index fills it; hot loops read it


def column_index(letters: str) -> int:
    """'A' -> 0, 'AA' -> 26, 'xfd' and '$XFD' -> 16383; not checked against the last column
    (`parse_cell` does that)."""
    index = KNOWN_COLUMNS.get(letters)
    if index is None:
        index = 0
        for ch in letters.upper().replace("$", ""):
            index = index * 26 + ord(ch) - 64
        index -= 1
        KNOWN_COLUMNS[letters] = index
    return index


_CELL_LIKE = re.compile(r"[A-Za-z]{1,3}[0-9]+|[Rr][0-9]*[Cc][0-9]*")


def quote_tab(name: str, always: bool = False) -> str:
    """A tab name as it stands in a reference: as it is when it is a plain word (``data``),
    else quoted with its apostrophes doubled (``'basic steps'``, ``'Bob''s'``). A word that
    reads as a cell (``A1``, ``XFD3``, ``R1C1``) is quoted too. `always`: quoted whatever it is
    (as openpyxl and the Sheets API write ranges)."""
    plain = name.replace("_", "").isalnum() and not name[0].isdigit() and not _CELL_LIKE.fullmatch(name)
    if plain and not always:
        return name
    return "'" + name.replace("'", "''") + "'"


def unquote_tab(text: str) -> str:
    """The tab name of a reference's tab part: ``'Bob''s'`` -> ``Bob's``, ``data`` -> ``data``."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def a1(row: int, col: int, tab: str | None = None) -> str:
    """(0, 1, 'data') -> 'data!B1'. The tab is not quoted: this is for messages."""
    ref = f"{col_letter(col)}{row + 1}"
    return f"{tab}!{ref}" if tab else ref


def range_ref(tab: str, row0: int, col0: int, row1: int, col1: int, *, collapse: bool = True) -> str:
    """'basic steps', 1, 0, 30, 1 -> "'basic steps'!$A$2:$A$30": absolute, the tab always quoted
    (valid for any name); rows and columns as slices (`row0` included, `row1` not). A single
    cell is written as one (``'t'!$A$2``) unless `collapse` is False."""
    start = f"${col_letter(col0)}${row0 + 1}"
    if collapse and (row1 - row0, col1 - col0) == (1, 1):
        return f"{quote_tab(tab, always=True)}!{start}"
    return f"{quote_tab(tab, always=True)}!{start}:${col_letter(col1 - 1)}${row1}"


# ---------------------------------------------------------------------------------------------
# Reading references


class A1Error(ValueError):
    """A reference that is not one; the message names it and says what was expected."""


class CellRef(NamedTuple):
    tab: str | None
    letters: str  # upper case, without $
    row: int  # 1-based, as written

    @property
    def col(self) -> int:
        """0-based."""
        return column_index(self.letters)

    def __str__(self) -> str:
        return f"{quote_tab(self.tab)}!{self.letters}{self.row}" if self.tab else f"{self.letters}{self.row}"


_TAB_PART = r"(?:'((?:[^']|'')+)'|([^!]+))!"
_ADDRESS = r"\$?([A-Za-z]+)\$?([0-9]+)"
_CELL = re.compile(rf"\s*(?:{_TAB_PART})?{_ADDRESS}\s*")
_RANGE = re.compile(rf"\s*(?:{_TAB_PART})?{_ADDRESS}(?::{_ADDRESS})?\s*")
EXAMPLE = '"basic steps!H17"'

# A reference inside a formula: tab (quoted or a plain word) with its "!", "$" before the column,
# the column letters, "$" before the row, the row. Not a function name such as LOG10( .
FORMULA_REF = re.compile(r"((?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?(\$?)([A-Z]{1,3})(\$?)(\d+)(?![\w(])")
# A tab-qualified cell or range inside a formula: tab, first column and row, last column and row.
FORMULA_RANGE = re.compile(r"('(?:[^']|'')+'|[A-Za-z_][\w.]*)!\$?([A-Z]{1,3})\$?(\d+)(?::\$?([A-Z]{1,3})\$?(\d+))?")


def _cell(text: str, tab: str | None, letters: str, digits: str) -> CellRef:
    letters = letters.upper()
    if len(letters) > 3 or column_index(letters) >= MAX_COLUMNS:
        raise A1Error(f"{text.strip()!r}: column {letters} is beyond XFD, the last column of a tab")
    row = int(digits)
    if not 1 <= row <= MAX_ROWS:
        raise A1Error(f"{text.strip()!r}: row {row:,} is outside a tab's rows 1-{MAX_ROWS:,}")
    return CellRef(tab, letters, row)


def _tab(m: re.Match) -> str | None:
    if m.group(1) is not None:
        return m.group(1).replace("''", "'")
    return m.group(2).strip() if m.group(2) is not None else None


def parse_cell(text: str, *, need_tab: bool = False) -> CellRef:
    """``basic steps!H17``, ``'Bob''s'!$b$2`` or ``H17`` -> CellRef; A1Error names `text` and
    what was expected when it is not a cell (or lies beyond XFD or row 1,048,576)."""
    m = _CELL.fullmatch(text)
    if not m or (need_tab and _tab(m) is None):
        raise A1Error(f"{text!r}: expected a cell like {EXAMPLE} (tab name, '!', column, row)"
                      if need_tab else f"{text!r}: expected a cell like H17 or {EXAMPLE}")
    return _cell(text, _tab(m), m.group(3), m.group(4))


def parse_range(text: str) -> tuple[CellRef, CellRef]:
    """``data!A2:B30`` -> (first, last) cells, the tab on both; a single cell is its own range.
    A1Error when it is not a range or runs backwards."""
    m = _RANGE.fullmatch(text)
    if not m:
        raise A1Error(f"{text!r}: expected a range like data!A2:B30 (tab name, '!', first cell, ':', last cell)")
    tab = _tab(m)
    first = _cell(text, tab, m.group(3), m.group(4))
    last = _cell(text, tab, m.group(5), m.group(6)) if m.group(5) else first
    if last.row < first.row or last.col < first.col:
        raise A1Error(f"{text!r}: the range runs backwards; its first cell is the top left one")
    return first, last
