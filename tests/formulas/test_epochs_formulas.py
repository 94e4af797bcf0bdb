"""Formula mode's `NAME epochs` tab: this Run's rows are formulas over the steps tab.

One workbook is run twice (two Runs) in formula mode and the same workbook twice in values
mode. LibreOffice recalculates the formula-mode one: this Run's epochs rows must equal values
mode (bit for bit in the graddesc flavour, 1e-12 relative in the others), the earlier Run's rows
stay the values they were, and a new `lr` typed in `experiments` changes this Run's rows.
"""

import json
import re
import subprocess
import zipfile
from pathlib import Path

import openpyxl
import pytest

from sheetsync import run
from sheetsync.layout.epochs import HEADER_ROW

ROOT = Path(__file__).resolve().parents[2]
X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8, 64, 99, 70, 27, 17, 8]
XS = [x / 100 for x in X]
YS = [round(2 * v + 0.3, 6) for v in XS]
EXPERIMENTS = {  # name -> settings (each with epochs 2, so each Run adds two rows)
    "g_sgd": {"optimizer": "sgd", "gradient": "both", "lr": 0.05},
    "g_mom": {"optimizer": "momentum", "lr": 0.05},
    "g_ada": {"optimizer": "adagrad", "lr": 0.01},
    "g_ann": {"optimizer": "adam_ann", "lr": 0.05},
    "t_adam": {"flavour": "pytorch", "optimizer": "adam", "lr": 0.05, "batch_size": 4},
    "f_mom": {"flavour": "fastai", "optimizer": "momentum", "lr": 0.05, "model": "two_relu"},
}
SETTINGS = ["model", "flavour", "optimizer", "lr", "batch_size", "gradient", "epochs", "mode"]
FIRST = HEADER_ROW + 2  # 1-based sheet row of the first epoch


def book(path, mode):
    wb = openpyxl.Workbook()
    d = wb.active
    d.title = "data"
    d.append(["x", "y"])
    for a, b in zip(XS, YS):
        d.append([a, b])
    e = wb.create_sheet("experiments")
    e.append(["setting"] + list(EXPERIMENTS))
    for s in SETTINGS:
        e.append([s] + [{"epochs": 2, "mode": mode}.get(s, v.get(s)) for v in EXPERIMENTS.values()])
    wb.save(path)
    run(str(path))
    run(str(path))
    return path


def type_lr(path, out, lr):
    """A copy of the workbook with a new lr typed for every experiment. Edited in the file's
    XML, so no other cell is re-encoded (openpyxl would write numbers with fewer digits)."""
    row = SETTINGS.index("lr") + 2
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet2.xml":  # `experiments`, the second tab
                text = data.decode()
                edited = re.sub(rf'(<c r="[B-Z]{row}" t="n"><v>)[^<]*(</v>)', rf"\g<1>{lr}\g<2>", text)
                assert edited.count(f"<v>{lr}</v>") == len(EXPERIMENTS), text[:500]
                data = edited.encode()
            dst.writestr(item, data)
    return out


def recalculate(path, tabs):
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(path), *tabs],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def numbers(ws, header):
    """The epochs table as written: column -> list of cell contents (numbers or formulas)."""
    cols = [c.value for c in ws[HEADER_ROW + 1]]
    return {h: [ws.cell(r, cols.index(h) + 1).value for r in range(FIRST, FIRST + 4)] for h in header}


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("epochs")
    values = openpyxl.load_workbook(book(tmp / "values.xlsx", "values"))
    formulas = book(tmp / "formulas.xlsx", "formulas")
    edited = type_lr(formulas, tmp / "edited.xlsx", 0.02)
    tabs = [f"{n} epochs" for n in EXPERIMENTS]
    return values, openpyxl.load_workbook(formulas), recalculate(formulas, tabs), recalculate(edited, tabs)


def header(sheet):
    return [str(v) for v in sheet["values"][HEADER_ROW]]


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_this_runs_epochs_rows_recalculate_to_values_mode(books, name):
    values, written, recalculated, _ = books
    sheet = recalculated[f"{name} epochs"]
    assert sheet["errors"] == {}
    cols = header(sheet)
    expected = numbers(values[f"{name} epochs"], cols[:cols.index("dead")])
    cells = numbers(written[f"{name} epochs"], expected)
    graddesc = not name.startswith(("t_", "f_"))
    live = 0
    for c, want in expected.items():
        for k in range(4):
            if k < 2:  # the earlier Run: values, as values mode wrote them
                assert cells[c][k] == want[k], (name, c, k)
                continue
            if not (isinstance(cells[c][k], str) and cells[c][k].startswith("=")):
                assert c in ("epoch", "lr") and cells[c][k] == want[k], (name, c, cells[c][k])
                continue
            live += 1
            got = float(sheet["values"][FIRST - 1 + k][cols.index(c)])
            if graddesc:
                assert got == want[k], f"{name} {c} epoch {k + 1}: LibreOffice {got!r}, values mode {want[k]!r}"
            else:
                assert abs(got - want[k]) <= 1e-12 * abs(want[k]), f"{name} {c} epoch {k + 1}: {got!r} vs {want[k]!r}"
    assert live >= 2 * (len(expected) - 2)  # loss, the parameters, sqrt(sum err^2) (and lr, gaps)


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_a_new_lr_changes_this_runs_rows_and_not_the_earlier_ones(books, name):
    _, _, before, after = books
    b, a = before[f"{name} epochs"], after[f"{name} epochs"]
    assert a["errors"] == {}
    cols = header(b)
    loss, param = cols.index("loss"), cols.index("a")
    rows_b, rows_a = b["values"][FIRST - 1:FIRST + 3], a["values"][FIRST - 1:FIRST + 3]
    assert [r[loss] for r in rows_a[:2]] == [r[loss] for r in rows_b[:2]]  # earlier Run untouched
    if name == "g_ann":  # the annealing macro sets lr itself (a value it pasted): nothing moves
        assert rows_a == rows_b
        return
    for k in (2, 3):
        assert float(rows_a[k][param]) != float(rows_b[k][param]), (name, k)
        assert float(rows_a[k][loss]) != float(rows_b[k][loss]), (name, k)
    assert float(rows_a[3][cols.index("lr")]) == 0.02


def test_the_tab_says_which_rows_are_formulas(books):
    _, written, _, _ = books
    text = written["g_sgd epochs"]["A1"].value
    assert ("Formula mode: rows 5-6 (this Run's epochs) are formulas over 'g_sgd steps', so editing a setting "
            "updates them and the charts; rows 3-4 (earlier Runs) are values.") in text


def test_the_map_shows_the_formula_written_in_the_epochs_tab(books):
    _, written, _, _ = books
    ws = written["g_mom map"]
    rows = {ws.cell(r, 2).value: ws.cell(r, 4).value for r in range(4, ws.max_row + 1)
            if ws.cell(r, 1).value == "g_mom epochs"}
    epochs = written["g_mom epochs"]
    cols = [c.value for c in epochs[HEADER_ROW + 1]]
    for c in ("loss", "a", "b", "lr", "sqrt(sum err^2)"):
        assert rows[c] == epochs.cell(FIRST + 2, cols.index(c) + 1).value, c
