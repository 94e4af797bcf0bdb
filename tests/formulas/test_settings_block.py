"""Formula mode with settings left blank: every formula reads a cell holding the value in force.

The steps tab carries a settings block right of its table (sheet row 3 down): one row per
setting the formulas read, its value cell `=IF(ISBLANK(experiments!B5), default, experiments!B5)`.
One workbook holds, for each flavour and optimizer, one experiment per setting its formulas read,
with that setting blank and the others typed; sheetsync writes it in formula mode, LibreOffice
recalculates it once, and every cell must equal values mode (the engine with the default).
"""

import subprocess
import json
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from sheetsync import Experiment, run, train
from sheetsync.layout.formulas import StepFormulas



def write_book(path, tabs):
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in tabs.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(list(row))
    wb.save(path)
    return path

ROOT = Path(__file__).resolve().parents[2]
X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8, 64, 99, 70, 27, 17, 8]
XS = [x / 100 for x in X]
YS = [round(2 * v + 0.3, 6) for v in XS]

BASES = {  # short name -> settings typed for it besides the one left blank
    "gd_sgd": dict(optimizer="sgd"), "gd_mom": dict(optimizer="momentum"), "gd_rms": dict(optimizer="rmsprop"),
    "gd_adam": dict(optimizer="adam"), "gd_aann": dict(optimizer="adam_ann"), "gd_eve": dict(optimizer="eve"),
    "gd_ada": dict(optimizer="adagrad"), "gd_adann": dict(optimizer="adagrad_ann"),
    "pt_sgd": dict(flavour="pytorch", optimizer="sgd", momentum=0.9, dampening=0.1, weight_decay=0.01),
    "pt_ada": dict(flavour="pytorch", optimizer="adagrad", lr_decay=0.01, initial_accumulator_value=0.1),
    "pt_rms": dict(flavour="pytorch", optimizer="rmsprop", centered=True, momentum=0.5),
    "pt_adam": dict(flavour="pytorch", optimizer="adam", amsgrad=True, weight_decay=0.01),
    "pt_adamw": dict(flavour="pytorch", optimizer="adamw"),
    "fa_mom": dict(flavour="fastai", optimizer="momentum", weight_decay=0.1),
    "fa_rms": dict(flavour="fastai", optimizer="rmsprop", momentum=0.9),
    "fa_adam": dict(flavour="fastai", optimizer="adam"),
}
NO_ROW = "eps"  # the experiments tab has no row at all for this one: the block holds its default


def used_settings(settings):
    result = train(Experiment(epochs=1, **settings), XS, YS)
    return StepFormulas(result, lambda i, n: f"data!A{i + 2}", {}, 4, settings_block=True).used_settings()


def cases():
    """name -> (settings typed in the sheet, the setting left blank)."""
    out = {}
    for base, settings in BASES.items():
        exp = Experiment(**settings)
        for blank in used_settings(settings):
            typed = {k: v for k, v in settings.items() if k != blank}
            for name in used_settings(settings):
                if name not in (blank, NO_ROW):
                    # lr typed at half its default, so the typed and default branches differ
                    typed[name] = exp.values[name] / 2 if name == "lr" else exp.values[name]
            out[f"{base}-{blank}"] = (typed, blank)
    return out


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    book = cases()
    rows = ["model", "flavour", "optimizer", "epochs", "mode"]
    for typed, _ in book.values():
        rows += [k for k in typed if k not in rows]
    rows += [k for _, blank in book.values() for k in [blank] if k not in rows and k != NO_ROW]
    grid = [["setting"] + list(book)]
    for r in rows:
        line = [r]
        for typed, blank in book.values():
            value = {"epochs": 2, "mode": "formulas"}.get(r, typed.get(r))
            line.append(None if r == blank else (str(value).lower() if isinstance(value, bool) else value))
        grid.append(line)
    path = write_book(tmp_path_factory.mktemp("block") / "book.xlsx",
                      {"data": [["x", "y"]] + [[a, b] for a, b in zip(XS, YS)], "experiments": grid})
    run(str(path))
    tabs = [f"{name} steps" for name in book]
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(path), *tabs],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return book, path, json.loads(proc.stdout)


@pytest.mark.parametrize("name", list(cases()))
def test_a_blank_setting_recalculates_to_values_mode(recalculated, name):
    book, path, sheets = recalculated
    typed, blank = book[name]
    expected = train(Experiment(name, epochs=2, **typed), XS, YS).steps  # values mode, blank = default
    sheet = sheets[f"{name} steps"]
    assert sheet["errors"] == {}
    values = sheet["values"]
    header = [str(v) for v in values[2]]  # the header sits in sheet row 3
    flavour = Experiment(**typed).flavour
    checked = 0
    for c in expected.columns:
        j = header.index(c)
        scale = np.nanmax(np.abs(expected[c].to_numpy())) or 1.0
        for i in range(len(expected)):
            want, got = expected[c].iat[i], float(values[3 + i][j])
            if flavour == "graddesc":
                assert got == want, f"{name} {c} line {i}: LibreOffice {got!r}, values mode {want!r}"
            else:
                assert abs(got - want) <= 1e-12 * max(abs(want), scale), f"{name} {c} line {i}: {got!r} vs {want!r}"
            checked += 1
    assert checked == expected.size
    # the block lists the blank setting if the formulas read it (a default 0 weight decay, say,
    # drops its term altogether), with the default as the value in force
    block = {str(row[header.index("setting")]): float(row[header.index("value in force")])
             for row in values[3:] if row[header.index("setting")]}
    if blank in used_settings(typed):
        assert block[blank] == Experiment(**typed).values[blank]


def test_the_block_shows_each_setting_its_value_and_source(tmp_path):
    grid = [["setting", "e"], ["optimizer", "momentum"], ["lr", None], ["momentum", 0.8], ["mode", "formulas"],
            ["epochs", 1]]
    path = write_book(tmp_path / "b.xlsx", {"data": [["x", "y"]] + [[a, b] for a, b in zip(XS, YS)],
                                            "experiments": grid})
    run(str(path))
    ws = openpyxl.load_workbook(path)["e steps"]
    header = [c.value for c in ws[3]]
    col = header.index("setting") + 1
    assert header[col - 2] is None  # one blank column between the table and the block
    rows = {ws.cell(r, col).value: (ws.cell(r, col + 1).value, ws.cell(r, col + 2).value) for r in range(4, 6)}
    where = {ws.cell(r, col).value: f"${openpyxl.utils.get_column_letter(col + 1)}${r}" for r in range(4, 6)}
    assert rows["lr"] == ("=IF(ISBLANK(experiments!$B$3),0.0001,experiments!$B$3)", "default (experiments!B3 is blank)")
    assert rows["momentum"] == ("=IF(ISBLANK(experiments!$B$4),0.9,experiments!$B$4)", "set in experiments!B4")
    new_a = ws.cell(4, header.index("new a") + 1).value
    assert f"'e steps'!{where['lr']}" in new_a and "experiments" not in new_a
