"""Generate tests/reference/graddesc_workbooks.json: cached values of the published graddesc.xlsm.

The workbooks themselves are not committed. They were read from git, each at the commit given
in the JSON, e.g.

    git --git-dir=<clone of fastai/course-v3> show 9da9cc55f8b93868eed962fdcbe3365f838e0ca1:files/xl/graddesc.xlsm

and opened with openpyxl (data_only=True: the values Excel cached when the file was saved).
The VBA (Reset, onestep, somesteps per tab) was read with oletools' olevba from the same
files; docs/graddesc-flavour.md describes it. Usage:

    python tests/reference/make_graddesc_reference.py COURSES_2016.xlsm COURSE_V3.xlsm COURSE22P2.xlsm
"""

import json
import sys
from pathlib import Path

import openpyxl

SOURCES = {
    "2016": ("fastai/courses", "31760fc1909c7ef61d81be5a147b19237fd45eaf", "deeplearning1/excel/graddesc.xlsm"),
    "2018": ("fastai/course-v3", "9da9cc55f8b93868eed962fdcbe3365f838e0ca1", "files/xl/graddesc.xlsm"),
    "2022": ("fastai/course22p2", "df9323235bc395b5c2f58a3d08b83761947b9b93", "xl/graddesc.xlsm"),
}

# tab -> (what the saved sheet is, single cells, row columns of the displayed pass 4..32)
TABS = {
    ("2016", "adagrad"): ("right after Reset: the displayed pass is epoch 1",
                          ["C1", "C2", "D2", "F1", "G1", "F2", "G2", "F33", "G33"], "CDFGHI"),
    ("2016", "adagrad_ann"): ("after Reset + 2 Runs: C1:C2, F1:G1 carry epoch 10 into the displayed "
                              "pass, epoch 11, whose test has set D2 and J1",
                              ["C1", "C2", "D2", "F1", "G1", "J1", "F2", "G2", "F33", "G33", "H33"], "CDFGHI"),
    ("2018", "adam_ann"): ("after Reset + 5 Runs: C1:C2, J33:M33 carry epoch 25 into the displayed "
                           "pass, epoch 26; D2 and N3 are as the 25th onestep's test left them",
                           ["C1", "C2", "D2", "N3", "J33", "K33", "L33", "M33", "N33", "F33", "G33"],
                           "CDFGHIJKLM"),
    ("2022", "adam_ann"): ("the same as 2018 (same formulas and macros)",
                           ["C1", "C2", "D2", "N3", "J33", "K33", "L33", "M33", "N33", "F33", "G33"],
                           "CDFGHIJKLM"),
}

COLUMNS = {"b": "b", "a": "a", "de/db": "de/db", "de/da": "de/da", "new b": "new b", "new a": "new a"}
STATE = {"J": "m_b", "K": "m_a", "L": "v_b", "M": "v_a"}


def main(paths: list[str]) -> None:
    books = dict(zip(["2016", "2018", "2022"], paths))
    out = {"sources": {k: {"repo": r, "commit": c, "path": p} for k, (r, c, p) in SOURCES.items()}, "tabs": {}}
    for (year, tab), (what, cells, cols) in TABS.items():
        ws = openpyxl.load_workbook(books[year], data_only=True)[tab]
        formulas = openpyxl.load_workbook(books[year])[tab]
        entry = {"workbook": year, "tab": tab, "state": what,
                 "cells": {c: ws[c].value for c in cells},
                 "formulas": {c: formulas[c].value for c in cells if str(formulas[c].value).startswith("=")},
                 "rows": {col: [ws[f"{col}{r}"].value for r in range(4, 33)] for col in cols},
                 # sheetsync's step column for each sheet column (J3:M3 are formulas in adam_ann)
                 "columns": {col: COLUMNS.get(ws[f"{col}3"].value, STATE.get(col)) for col in cols}}
        out["tabs"][f"{year} {tab}"] = entry
    target = Path(__file__).with_name("graddesc_workbooks.json")
    target.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
