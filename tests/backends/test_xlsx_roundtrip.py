"""Whatever a plan holds (odd tab names, XML-special or control characters, huge and tiny
numbers, NaN), it reads back as written, through our reader and through openpyxl."""

from __future__ import annotations

import math
import re

import openpyxl
from hypothesis import HealthCheck, given, settings, strategies as st

from sheetsync.backends.base import Column, Plan, Table, TabPlan, Text
from sheetsync.backends.xlsx import XlsxBackend

from xlsx_builders import plain_workbook

tab_names = st.text(st.characters(blacklist_characters="[]:*?/\\'\ufffe\uffff", blacklist_categories=("Cs", "Cc")),
                    min_size=1, max_size=31).filter(lambda n: n.casefold() not in ("history", "data"))
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
cells = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53),
                  st.floats(allow_nan=True, allow_infinity=True), texts)


def expected(value):
    """What a cell reads back as: blanks for None/NaN/inf/empty text."""
    if value is None or value == "" or isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=tab_names, values=st.lists(cells, min_size=1, max_size=20), header=texts, note=texts)
def test_any_values_read_back_as_written(tmp_path_factory, name, values, header, note):
    path = tmp_path_factory.mktemp("rt") / "book.xlsx"
    plain_workbook(path)
    plan = Plan([TabPlan(name, tables=[Table([Column(header or "h", values, note=note or None)])],
                         texts=[Text(0, 2, header, note=note or None)])])
    XlsxBackend(path).apply(plan)
    rows = XlsxBackend(path).read([name]).values[name]
    column = [r[0] if r else None for r in rows[1:]] + [None] * (len(values) - len(rows) + 1)
    assert column == [expected(v) for v in values]
    assert [type(c) for c in column] == [type(expected(v)) for v in values]
    assert rows[0][0] == (header or "h") and (rows[0] + [None] * 3)[2] == expected(header)
    if not CONTROL.search(header + note):  # openpyxl does not decode Excel's _xHHHH_ escapes
        ws = openpyxl.load_workbook(path)[name]
        assert ws.cell(row=1, column=1).value == (header or "h")
        assert ws.cell(row=1, column=3).value == expected(header)
        if note:
            assert ws.cell(row=1, column=1).comment.text == note


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\r\x0e-\x1f\ufffe\uffff]")
