"""Turning one sheet cell into a number, or saying exactly what is wrong with it.

Spreadsheets hide many things behind a cell that looks like a number: text that reads '1,5' or
'12%', a date, an error value, a formula the file never computed. Each gets its own message with
a fix, because "expected a number" alone does not tell a learner what to do.
"""

from __future__ import annotations

import math
import re

from ..backends.base import CellError, DateCell, Uncomputed

NUMBER_LIKE = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?%?$")


def is_blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def number_or_problem(value) -> tuple[float | None, str | None]:
    """(number, None) for a usable number, else (None, what is wrong and how to fix it)."""
    if isinstance(value, bool):
        return None, f"expected a number, found the logical value {str(value).upper()}"
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return None, f"expected a finite number, found {value!r}"
        return float(value), None
    return None, describe_non_number(value)


def describe_non_number(value) -> str:
    if is_blank(value):
        return "expected a number, found an empty cell"
    if isinstance(value, DateCell):
        shown = value.text or f"serial {value.serial:g}"
        return f"expected a number, found a date ({shown}); format the cell as Number"
    if isinstance(value, CellError):
        return f"the cell holds the error value {value.code}; fix the formula or the cells it uses"
    if isinstance(value, Uncomputed):
        return (f"the formula {value.formula} has no computed value in the file; open and save the "
                "workbook in Excel or LibreOffice so it is calculated")
    if isinstance(value, str) and NUMBER_LIKE.match(value.strip()):
        return (f"a number stored as text ({value!r}); type it as a number"
                f" ({text_to_number_hint(value)}) or format the cell as Number")
    return f"expected a number, found {value!r}"


def text_to_number_hint(text: str) -> str:
    """'1,5' -> '1.5', '12%' -> '0.12', ' 3 ' -> '3': what the user probably meant."""
    s = text.strip().replace(",", ".")
    percent = s.endswith("%")
    try:
        v = float(s.rstrip("%"))
    except ValueError:
        return text.strip()
    return f"{v / 100:g}" if percent else f"{v:g}"
