"""The outputs lab: fast.ai's entropy sheets reproduced, checked three ways.

1. against numbers computed independently (PyTorch's softmax, log_softmax, sigmoid,
   binary_cross_entropy, cross_entropy, torchvision's focal-loss definition) and the hand values
   of issue 14;
2. against the cached values of fast.ai's own `entropy_example.xlsx` (all three course
   versions), read from the local mirrors when they are there — nothing of theirs is copied here
   but the inputs the tabs start from;
3. LibreOffice's recalculation of the tabs' formulas against the values written beside them.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F

from sheetsync.backends.base import Plan, TabPlan
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.labs import entropy as E

ROOT = Path(__file__).resolve().parent.parent
REL = 1e-12
MIRRORS = {  # course version -> (mirror git dir, path of entropy_example.xlsx in it)
    "course22": ("/work/.mirror/fastai+course22/repo", "xl/entropy_example.xlsx"),
    "course-v3": ("/work/.mirror/fastai+course-v3/repo", "files/xl/entropy_example.xlsx"),
    "courses": ("/work/.mirror/fastai+courses/repo", "deeplearning1/excel/entropy_example.xlsx"),
}
# (our tab, our range) <-> (course version, their tab, their range): cells that mean the same.
CORRESPONDING = [
    (E.TAB_SOFTMAX, "C4:C8", "course22", "softmax", "C2:C6"),  # exp
    (E.TAB_SOFTMAX, "E4:E8", "course22", "softmax", "D2:D6"),  # softmax
    (E.TAB_SOFTMAX, "C9", "course22", "softmax", "C7"),  # sum of exp
    (E.TAB_SOFTMAX, "D4", "course22", "softmax", "C7"),
    (E.TAB_SOFTMAX, "E9", "course22", "softmax", "D7"),  # sum of softmax
    (E.TAB_CROSS, "B4:B8", "course22", "entropy", "B2:B6"),
    (E.TAB_CROSS, "D4:D8", "course22", "entropy", "D2:D6"),  # actual * LOG(softmax)
    (E.TAB_CROSS, "D9", "course22", "entropy", "D7"),  # the loss, base 10
    (E.TAB_BINARY, "B4:B8", "course22", "entropy", "C27:C31"),  # 1 - y
    (E.TAB_BINARY, "D4:D8", "course22", "entropy", "E27:E31"),  # 1 - p
    (E.TAB_BINARY, "G4:G8", "course22", "entropy", "F27:F31"),
    (E.TAB_BINARY, "H4:H8", "course22", "entropy", "G27:G31"),
    (E.TAB_SHIFT, "C4:C8", "course-v3", "softmax", "C3:C7"),
    (E.TAB_SHIFT, "D4:D8", "course-v3", "softmax", "D3:D7"),
    (E.TAB_SHIFT, "E4:E8", "course-v3", "softmax", "K3:K7"),  # binary: exp/(1+exp)
    (E.TAB_SHIFT, "G4:G8", "course-v3", "softmax", "H3:H7"),
    (E.TAB_SHIFT, "H4:H8", "course-v3", "softmax", "I3:I7"),
    (E.TAB_SHIFT, "I4:I8", "course-v3", "softmax", "L3:L7"),
    (E.TAB_SHIFT, "C9", "course-v3", "softmax", "C8"),
    (E.TAB_SHIFT, "D9", "course-v3", "softmax", "D8"),
    (E.TAB_SHIFT, "G9", "course-v3", "softmax", "H8"),
    (E.TAB_SHIFT, "H9", "course-v3", "softmax", "I8"),
    (E.TAB_BINARY, "G4:G8", "course-v3", "entropy", "D2:D6"),
    (E.TAB_BINARY, "H4:H8", "course-v3", "entropy", "E2:E6"),
    (E.TAB_BINARY, "E4:E8", "course-v3", "log_entropy", "E2:E6"),
    (E.TAB_BINARY, "F4:F8", "course-v3", "log_entropy", "F2:F6"),
    (E.TAB_BINARY, "G4:G8", "course-v3", "log_entropy", "G2:G6"),
    (E.TAB_BINARY, "G4:G8", "courses", "entropy", "D2:D6"),
    (E.TAB_BINARY, "H4:H8", "courses", "entropy", "E2:E6"),
]


def cells(a1_range: str) -> list[tuple[int, int]]:
    """'C4:C8' -> [(3, 2), …] (0-based row, col), row by row."""
    def one(ref):
        m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
        col = 0
        for ch in m.group(1):
            col = col * 26 + ord(ch) - 64
        return int(m.group(2)) - 1, col - 1
    a, _, b = a1_range.partition(":")
    (r0, c0), (r1, c1) = one(a), one(b or a)
    return [(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]


def grid(tab: TabPlan) -> dict[tuple[int, int], object]:
    """What the tab puts in each cell (values mode): tables, then texts over them."""
    out = {}
    for t in tab.tables:
        for j, col in enumerate(t.columns):
            out[(t.row, t.col + j)] = col.header
            for i, v in enumerate(col.values):
                out[(t.row + 1 + i, t.col + j)] = v
    for x in tab.texts:
        out[(x.row, x.col)] = x.value
    return out


TABS = {t.name: t for t in E.entropy_tabs()}
VALUES = {name: grid(t) for name, t in TABS.items()}


def close(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=REL, abs_tol=0.0) or float(a) == float(b)


def column(tab: str, a1_range: str) -> np.ndarray:
    return np.array([VALUES[tab][rc] for rc in cells(a1_range)], dtype=np.float64)


# --- 1. independent numbers

def test_issue_14_hand_values():
    b = E.binary_tab()
    row = cells("G4")[0]  # y = 1, p = 0.5
    assert grid(b)[row] == pytest.approx(0.30102999566398120, rel=REL)
    assert grid(b)[cells("I4")[0]] == pytest.approx(0.69314718055994531, rel=REL)
    i = E.FOCAL_PT.index(0.5)
    assert E.focal(np.array([0.5]), 2)[0] == pytest.approx(0.17328679513998632, rel=REL)
    assert VALUES[E.TAB_FOCAL][(E.HEADER_ROW + 1 + i, 1 + E.GAMMAS.index(2))] == pytest.approx(0.17328679513998632, rel=REL)


def assert_close(ours, theirs):
    ours, theirs = np.atleast_1d(np.asarray(ours, dtype=np.float64)), np.atleast_1d(np.asarray(theirs, dtype=np.float64))
    assert ours.shape == theirs.shape
    bad = [(o, t) for o, t in zip(ours.ravel(), theirs.ravel()) if not close(o, t)]
    assert not bad, bad[:3]


def test_softmax_steps_equal_torch():
    z = torch.tensor(E.COURSE22_LOGITS, dtype=torch.float64)
    assert_close(column(E.TAB_SOFTMAX, "E4:E8"), torch.softmax(z, 0))
    assert_close(column(E.TAB_SOFTMAX, "F4:F8"), torch.log_softmax(z, 0))
    assert_close(column(E.TAB_SOFTMAX, "C4:C8"), torch.exp(z))
    assert_close(column(E.TAB_CROSS, "E10"), F.cross_entropy(z[None], torch.tensor([E.COURSE22_TRUE])))
    assert_close(column(E.TAB_CROSS, "E9"), F.cross_entropy(z[None], torch.tensor([E.COURSE22_TRUE])))
    assert_close(column(E.TAB_CROSS, "D9"), F.cross_entropy(z[None], torch.tensor([E.COURSE22_TRUE])) / math.log(10))


def test_softmax_ignores_the_shift_and_the_sigmoid_does_not():
    z1, z2 = (torch.tensor(z, dtype=torch.float64) for z in E.COURSE_V3_IMAGES)
    assert_close(column(E.TAB_SHIFT, "D4:D8"), torch.softmax(z1, 0))
    assert_close(column(E.TAB_SHIFT, "H4:H8"), torch.softmax(z2, 0))
    assert_close(column(E.TAB_SHIFT, "E4:E8"), torch.sigmoid(z1))
    assert_close(column(E.TAB_SHIFT, "I4:I8"), torch.sigmoid(z2))
    shift = column(E.TAB_SHIFT, "J4:J8")
    assert np.ptp(shift) < 1e-15 * 4 and abs(shift[0]) > 1  # one constant, and not a small one
    assert np.max(np.abs(column(E.TAB_SHIFT, "D4:D8") - column(E.TAB_SHIFT, "H4:H8"))) < 1e-15
    assert np.min(np.abs(column(E.TAB_SHIFT, "E4:E8") - column(E.TAB_SHIFT, "I4:I8"))) > 0.05


def test_binary_cross_entropy_in_both_bases_equals_torch():
    y = torch.tensor([c[0] for c in E.BINARY_CASES], dtype=torch.float64)
    p = torch.tensor([c[1] for c in E.BINARY_CASES], dtype=torch.float64)
    ln = F.binary_cross_entropy(p, y, reduction="none")
    assert_close(column(E.TAB_BINARY, "I4:I8"), ln)
    assert_close(column(E.TAB_BINARY, "G4:G8"), ln / math.log(10))
    assert_close(column(E.TAB_BINARY, "H4:H8"), ln / math.log(10))
    assert_close(column(E.TAB_BINARY, "I9"), F.binary_cross_entropy(p, y))
    assert_close(column(E.TAB_BINARY, "G9"), F.binary_cross_entropy(p, y) / math.log(10))
    assert_close(column(E.TAB_BINARY, "J4:J8"), np.full(5, math.log(10)))


def test_focal_loss_follows_torchvisions_definition():
    pt = torch.tensor(E.FOCAL_PT, dtype=torch.float64)
    logits = torch.log(pt / (1 - pt))  # the logit whose sigmoid is p_t, target 1
    for j, g in enumerate(E.GAMMAS):
        # torchvision.ops.sigmoid_focal_loss with alpha < 0 (no weighting), reduction none
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
        p_t = p * 1 + (1 - p) * 0
        reference = ce * ((1 - p_t) ** g)
        ours = [VALUES[E.TAB_FOCAL][(E.HEADER_ROW + 1 + i, 1 + j)] for i in range(len(pt))]
        np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-12)


def test_the_focal_chart_draws_every_gamma_over_lin_et_al_s_axes():
    chart = TABS[E.TAB_FOCAL].charts[0]
    assert [s.name for s in chart.series] == [f"γ = {g}" for g in E.GAMMAS]
    assert (chart.x_min, chart.x_max, chart.y_min, chart.y_max) == (0, 1, 0, 5)


# --- 2. the sheets' own cached values

def course_book(version: str, tmp_path_factory) -> openpyxl.Workbook:
    git_dir, path = MIRRORS[version]
    if not Path(git_dir).exists():
        pytest.skip(f"fast.ai's {version} mirror is not on this machine ({git_dir}); the independent "
                    "checks above still run")
    out = tmp_path_factory.mktemp("fastai") / f"{version}.xlsx"
    out.write_bytes(subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"], check=True,
                                   capture_output=True).stdout)
    return openpyxl.load_workbook(out, data_only=True)


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    return {v: (lambda v=v: course_book(v, tmp_path_factory)) for v in MIRRORS}


def their(book, tab: str, a1_range: str) -> np.ndarray:
    return np.array([book[tab].cell(r + 1, c + 1).value for r, c in cells(a1_range)], dtype=np.float64)


@pytest.mark.parametrize("version", list(MIRRORS))
def test_tabs_equal_the_fastai_sheets_cached_values(courses, version):
    book = courses[version]()
    checked = 0
    for tab, ours, v, their_tab, theirs in CORRESPONDING:
        if v == version:
            assert_close(column(tab, ours), their(book, their_tab, theirs))
            checked += 1
    assert checked >= 2


def test_the_2017_sheets_random_logits_go_through_the_same_arithmetic(courses):
    """courses (2017) draws its logits with RAND(): its cached logits through our softmax steps."""
    book = courses["courses"]()
    s = E.softmax_steps(their(book, "softmax", "B2:B6"))
    assert_close(s["exp"], their(book, "softmax", "C2:C6"))
    assert_close(s["softmax"], their(book, "softmax", "D2:D6"))
    assert_close([s["sum"]], their(book, "softmax", "C7"))


def test_inputs_are_the_sheets_inputs(courses):
    book = courses["course22"]()
    assert list(their(book, "softmax", "B2:B6")) == E.COURSE22_LOGITS
    assert [book["softmax"].cell(r, 1).value for r in range(2, 7)] == E.CLASSES
    assert list(their(book, "softmax", "E2:E6")) == [float(i == E.COURSE22_TRUE) for i in range(5)]
    assert [tuple(r) for r in zip(their(book, "entropy", "B27:B31"), their(book, "entropy", "D27:D31"))] == E.BINARY_CASES


# --- 3. LibreOffice recalculates the formulas to the values written beside them

def recalculate(path: Path, tabs: list[str]) -> dict:
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(path), *tabs],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def recalculated(tmp_path_factory):
    path = tmp_path_factory.mktemp("lab") / "entropy.xlsx"
    XlsxBackend.create(str(path), {"data": [["x", "y"], [1, 2], [3, 4]]})
    XlsxBackend(str(path)).apply(Plan(E.entropy_tabs()))
    return recalculate(path, list(TABS))


def lo_number(v):
    return float(v) if isinstance(v, str) else v


def test_every_formula_recalculates_to_its_value(recalculated):
    checked = 0
    for name, tab in TABS.items():
        sheet = recalculated[name]
        assert sheet["errors"] == {}, name
        formula_cells = {(t.row + 1 + i, t.col + j) for t in tab.tables for j, c in enumerate(t.columns)
                         for i in range(len(c.values)) if c.formulas and c.formulas[i]}
        formula_cells |= {(x.row, x.col) for x in tab.texts if x.formula}
        assert formula_cells, name
        for (r, c) in sorted(formula_cells):
            lo, ours = lo_number(sheet["values"][r][c]), VALUES[name][(r, c)]
            assert close(lo, ours), (name, r, c, lo, ours)
            checked += 1
    assert checked > 500  # the focal grid alone has 495


@pytest.mark.parametrize("version", ["course22", "course-v3", "courses"])
def test_libreoffice_recalculation_equals_the_fastai_sheets(recalculated, courses, version):
    book = courses[version]()
    for tab, ours, v, their_tab, theirs in CORRESPONDING:
        if v == version:
            lo = [lo_number(recalculated[tab]["values"][r][c]) for r, c in cells(ours)]
            assert_close(lo, their(book, their_tab, theirs))


def test_values_only_tabs_hold_the_same_numbers_without_formulas():
    for tab in E.entropy_tabs(formulas=False):
        assert not any(c.formulas for t in tab.tables for c in t.columns)
        assert not any(x.formula for x in tab.texts)
        assert grid(tab) == VALUES[tab.name]


# --- the labs' data

from sheetsync.labs import datasets as D  # noqa: E402


@pytest.mark.parametrize("name", D.TOYS)
def test_toys_are_seeded_balanced_and_two_dimensional(name):
    X, y = D.toy(name, n=200, seed=3)
    X2, y2 = D.toy(name, n=200, seed=3)
    assert X.shape == (200, 2) and set(np.unique(y)) == {0, 1}
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert not np.array_equal(X, D.toy(name, n=200, seed=4)[0])
    assert 0.4 < y.mean() < 0.6
    assert 0 < np.sum(y[:100]) < 100  # shuffled: the first half holds both classes


def test_toys_follow_the_playgrounds_definitions():
    X, y = D.toy("circle", 400)
    r = np.hypot(*X.T)
    assert np.array_equal(y == 1, r < 2.5) and not np.any((r > 2.5) & (r < 3.5)) and r.max() <= 5
    X, y = D.toy("xor", 400)
    assert np.array_equal(y == 1, X[:, 0] * X[:, 1] >= 0) and np.abs(X).min() >= 0.3
    X, y = D.toy("gauss", 4000)
    np.testing.assert_allclose(X[y == 1].mean(0), [2, 2], atol=0.1)
    np.testing.assert_allclose(X[y == 0].std(0), [math.sqrt(0.5)] * 2, atol=0.05)
    X, y = D.toy("spiral", 400)
    assert np.hypot(*X.T).max() < 5
    X, y = D.toy("circle", 400, noise=0.5)
    assert not np.array_equal(y == 1, np.hypot(*X.T) < 2.5)  # noise moves the label's point, not the point


def test_an_unknown_toy_is_named():
    with pytest.raises(ValueError, match="expected one of circle, xor, gauss, spiral, found 'moons'"):
        D.toy("moons")


def test_penguins_are_the_palmer_penguins_with_bills_measured():
    X, species = D.penguins()
    assert X.shape == (342, 2)
    assert {s: species.count(s) for s in set(species)} == {"Adelie": 151, "Chinstrap": 68, "Gentoo": 123}
    assert 32 <= X[:, 0].min() and X[:, 0].max() <= 60 and 13 <= X[:, 1].min() and X[:, 1].max() <= 22


def test_data_rows_make_a_data_tab():
    rows = D.data_rows(np.array([[1.0, 2.0], [3.0, 4.0]]), ["Adelie", "Gentoo"])
    assert rows == [["x1", "x2", "y"], [1.0, 2.0, "Adelie"], [3.0, 4.0, "Gentoo"]]


# --- the lab workbook: `sheetsync demo --lab outputs`

from sheetsync import cli  # noqa: E402
from workbooks import rows_of  # noqa: E402


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "lab.xlsx"
    assert cli.main(["demo", str(path), "--lab", "outputs"]) == 0
    return path


def test_the_lab_holds_the_entropy_sheets_and_both_trained_classifiers(lab):
    names = openpyxl.load_workbook(lab, read_only=True).sheetnames
    assert names[:4] == ["data", "experiments", "penguin data", "penguin experiments"]
    for tab in list(TABS) + ["toy steps", "toy epochs", "toy boundary", "toy focal boundary",
                             "penguins steps", "penguins epochs", "penguins boundary"]:
        assert tab in names, tab


def test_the_lab_writes_the_entropy_tabs_with_their_formulas_and_values(lab):
    formulas = openpyxl.load_workbook(lab)[E.TAB_SOFTMAX]
    values = openpyxl.load_workbook(lab, data_only=True)[E.TAB_SOFTMAX]
    assert formulas["C4"].value == "=EXP(B4)" and formulas["E4"].value == "=C4/D4"
    for r, c in cells("C4:F8"):
        assert values.cell(r + 1, c + 1).value == VALUES[E.TAB_SOFTMAX][(r, c)]


def rows(book, tab):
    return rows_of(book, tab, read_only=True)


def test_classifier_epochs_hold_accuracy_and_the_confusion_table_by_species(lab):
    sheet = rows(lab, "penguins epochs")
    header = sheet[1]
    assert header[:3] == ["epoch", "loss", "accuracy"]
    acc = [r[2] for r in sheet[2:12]]
    assert all(0 < a <= 1 for a in acc) and acc[-1] > acc[0]
    c = header.index("true ↓ / predicted →")
    assert header[c + 1:c + 5] == ["Adelie", "Gentoo", "Chinstrap", "rows"]
    table = {r[c]: r[c + 1:c + 5] for r in sheet[2:5]}
    X, species = D.penguins()
    assert {k: v[3] for k, v in table.items()} == {s: species.count(s) for s in set(species)}
    assert sum(table[s][i] for i, s in enumerate(["Adelie", "Gentoo", "Chinstrap"])) > 0.8 * len(species)
    assert "predicts" in sheet[0][0] and "accuracy" in sheet[0][0]


def test_the_toy_learns_its_two_clouds(lab):
    sheet = rows(lab, "toy epochs")
    header = sheet[1]
    last = sheet[1 + 10]
    assert last[header.index("accuracy")] > 0.9
    c = header.index("true ↓ / predicted →")
    assert [r[c] for r in sheet[2:4]] == ["0", "1"]


def test_epochs_chart_loss_and_accuracy_together():
    from sheetsync.layout.epochs import render_epochs

    X, y = D.toy("gauss", 40, 0.3, 0)
    result = sheetsync_train_toy(X, y)
    tab = render_epochs(result, result.epochs, X, y.astype(float), [])
    chart = tab.charts[0]
    assert chart.title == "Loss and accuracy per epoch" and [s.name for s in chart.series] == ["loss", "accuracy"]
    table = next(t for t in tab.tables if t.columns[0].header == "true ↓ / predicted →")
    counts = np.array([c.values for c in table.columns[1:3]]).T
    np.testing.assert_array_equal(counts, result.confusion)
    assert list(table.columns[3].values) == list(result.confusion.sum(axis=1))
    assert not any(c.title.startswith("Fit") for c in tab.charts)  # the boundary tab is its picture


def test_a_class_never_predicted_is_named():
    from sheetsync.layout.epochs import render_epochs

    X, y = D.toy("gauss", 40, 0.3, 0)
    result = sheetsync_train_toy(X, y)
    result.confusion = np.array([[20, 0], [20, 0]])
    tab = render_epochs(result, result.epochs, X, y.astype(float), [])
    assert "Class 1 is never predicted." in tab.texts[0].value


def sheetsync_train_toy(X, y):
    import sheetsync

    return sheetsync.train(sheetsync.Experiment("toy", model="logistic", flavour="pytorch", lr=0.1, epochs=3),
                           X, y.astype(float))
