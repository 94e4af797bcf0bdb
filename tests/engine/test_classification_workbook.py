"""Classifiers through the whole sheet path: an .xlsx written as a learner would (numbers or
text labels in y), `sheetsync.runner.run`, and the steps/epochs tabs read back; bad labels are
cell-addressed errors.

Run:  python -m pytest tests/engine/test_classification_workbook.py -q
"""

from __future__ import annotations


import numpy as np
import pytest

from workbooks import rows_of, sheet_names, write_book

from sheetsync.errors import InputError
from sheetsync.runner import run


def points(k: int, n: int = 24, seed: int = 3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = np.array([[np.cos(2 * np.pi * c / k), np.sin(2 * np.pi * c / k)] for c in range(k)]) * 2
    return centres[y] + rng.normal(0, 0.5, (n, 2)), y


def book(path, labels, x, settings: dict[str, list]):
    data = [["x1", "x2", "y"]] + [[float(a), float(b), lab] for (a, b), lab in zip(x, labels)]
    names = list(settings)
    keys = list(next(iter(settings.values())))
    experiments = [["setting", *names]] + [[k, *[settings[n][k] for n in names]] for k in keys]
    return write_book(path, {"data": data, "experiments": experiments})


def header_and_rows(path, tab):
    rows = [r for r in rows_of(path, tab) if any(v is not None for v in r)]
    for i, r in enumerate(rows):
        if "epoch" in r:
            return r, rows[i + 1:]
    raise AssertionError(f"no header row in {tab}")


def test_logistic_and_softmax_run_on_an_xlsx(tmp_path):
    x, y = points(3)
    settings = {"soft": {"model": "softmax", "flavour": "pytorch", "optimizer": "adam", "lr": 0.1, "epochs": 8,
                         "batch size": 4},
                "logi": {"model": "logistic", "flavour": "pytorch", "optimizer": "sgd", "lr": 0.5, "epochs": 8,
                         "batch size": 4}}
    labels = ["cat", "dog", "bird"]
    path = book(tmp_path / "classes.xlsx", [labels[k] for k in y], x, {"soft": settings["soft"]})
    report = run(str(path))
    assert {"soft steps", "soft epochs"} <= set(sheet_names(path))
    header, rows = header_and_rows(path, "soft steps")
    for col in ("z1", "z2", "z3", "p1", "p2", "p3", "pred", "loss"):
        assert col in header
    assert len(rows) == 8 * 24
    eh, erows = header_and_rows(path, "soft epochs")
    assert "loss" in eh
    assert report is not None

    binary = book(tmp_path / "binary.xlsx", [int(k == 0) for k in y], x, {"logi": settings["logi"]})
    run(str(binary))
    header, rows = header_and_rows(binary, "logi steps")
    z, p = header.index("z"), header.index("p")
    assert all(abs(1 / (1 + np.exp(-r[z])) - r[p]) <= 1e-15 for r in rows)


def test_label_errors_name_their_cells(tmp_path):
    x, y = points(2, n=12)
    labels: list = [int(k) for k in y]
    labels[4] = 0.5
    path = book(tmp_path / "bad.xlsx", labels, x, {"logi": {"model": "logistic"}})
    with pytest.raises(InputError) as e:
        run(str(path))
    text = str(e.value)
    assert "data!C6" in text and "logi: logistic with loss bce expects y = 0 or 1, found 0.5" in text

    # text in y is class labels only where a softmax model reads it: a regression sheet keeps its
    # messages, a mixed one is told which experiment cannot read labels
    words = book(tmp_path / "words.xlsx", ["yes", "no"] * 6, x, {"lin": {"model": "linear"}})
    with pytest.raises(InputError) as e:
        run(str(words))
    assert "data!C2" in str(e.value) and "expected a number, found 'yes'" in str(e.value)
    mixed = book(tmp_path / "mixed.xlsx", ["yes", "no"] * 6, x, {"lin": {"model": "linear"},
                                                                  "soft": {"model": "softmax"}})
    with pytest.raises(InputError) as e:
        run(str(mixed))
    assert "data!C2" in str(e.value) and "lin: y holds text labels (yes, no); only a softmax model reads them" \
        in str(e.value)

    blank = book(tmp_path / "blank.xlsx", ["yes", "no", "maybe", None, "yes", "no"] * 2, x,
                 {"soft": {"model": "softmax"}})
    with pytest.raises(InputError) as e:
        run(str(blank))
    assert "data!C5" in str(e.value) and "expected a class label" in str(e.value)


def test_trace_follows_the_classifier_columns_to_the_data(tmp_path):
    """`sheetsync trace` of a softmax step's loss and of a new parameter ends at the data and the
    settings, every node's value the sheet's (tests/formulas/test_trace_and_map.py's check)."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    from sheetsync.trace import parse_cell, trace

    x, y = points(3, n=12)
    path = book(tmp_path / "trace.xlsx", [int(k) for k in y], x,
                {"soft": {"model": "softmax", "flavour": "pytorch", "optimizer": "adam", "lr": 0.1, "epochs": 2,
                          "batch size": 4}})
    run(str(path))
    wb = openpyxl.load_workbook(path, data_only=True)
    ws = wb["soft steps"]
    header_row = next(r for r in range(1, 40) if ws.cell(r, 1).value == "epoch")
    header = [c.value for c in ws[header_row]]
    for column, line in (("loss", 7), ("p2", 9), ("new a2_1", 8)):
        cell = f"soft steps!{get_column_letter(header.index(column) + 1)}{header_row + line}"
        tree = trace(str(path), cell)["tree"]
        nodes = list(_walk(tree))
        assert len(nodes) > 3
        for node in nodes:
            if node["kind"] in ("line", "data", "setting"):
                tab, letters, row = parse_cell(node["cell"].replace("(carried in) ", ""))
                assert wb[tab][f"{letters}{row}"].value == pytest.approx(node["value"], rel=0, abs=0), node
        assert "data" in {n["kind"] for n in nodes}


def _walk(node):
    yield node
    for child in node.get("children", []):
        yield from _walk(child)
