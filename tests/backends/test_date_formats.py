"""Reading decides which number formats show dates without openpyxl, exactly as openpyxl
decides it (`is_date_format` is the oracle here, in tests only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format

from sheetsync.backends.xlsx.reading import shows_a_date

CUSTOM = ["yyyy-mm-dd", "[$-409]mmmm d, yyyy", "[Red]0.00", "[h]:mm:ss", "[mm]:ss", "[ss].0",
          '"days"0', '0 "d"', "0_d", "0\\d", "General;yyyy", "#,##0;[Red]-#,##0", "[>=100]0;0.00",
          "hh:mm AM/PM", "@", "", '"unclosed', "[unclosed", "0.00E+00", "D/M/Y", "[hhh]0", "e"]


@pytest.mark.parametrize("code", sorted(set(BUILTIN_FORMATS.values())) + CUSTOM)
def test_known_formats_as_openpyxl_decides(code):
    assert shows_a_date(code) == is_date_format(code)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='dmhysDMHYS0#.,;:"[]\\_$-/ @ErRe>=h', max_size=14))
def test_generated_formats_as_openpyxl_decides(code):
    assert shows_a_date(code) == is_date_format(code)


def test_reading_a_workbook_of_plain_cells_does_not_import_openpyxl(tmp_path):
    book = tmp_path / "demo.xlsx"
    code = ("import sys; from sheetsync.backends.xlsx import XlsxBackend; "
            f"XlsxBackend({str(book)!r}).read(['data', 'experiments']); "
            "print('openpyxl' in sys.modules)")
    from sheetsync.demo import write_demo

    write_demo(book)
    root = Path(__file__).resolve().parents[2]  # this tree's sheetsync, not an installed one
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(root)))
    assert out.stdout.strip() == "False"
