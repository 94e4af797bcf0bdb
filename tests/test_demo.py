"""`sheetsync demo`: the example workbook, written and run offline in seconds."""

import time

import numpy as np

from sheetsync import Experiment, cli, train
from sheetsync.demo import EXPERIMENTS, X, Y
from test_cli import sheetsync
from workbooks import record, rows_of, sheet_names


def test_demo_writes_and_runs_the_workbook_and_says_what_to_open(tmp_path):
    start = time.perf_counter()
    done = sheetsync("demo", str(tmp_path / "lab.xlsx"))
    assert done.returncode == 0, done.stderr
    assert time.perf_counter() - start < 30
    book = tmp_path / "lab.xlsx"
    assert str(book.resolve()) in done.stdout and "basic steps" in done.stdout
    assert sheet_names(book)[:2] == ["data", "experiments"]
    for name in ("basic", "momentum", "adam", "relu"):
        assert f"{name} steps" in sheet_names(book)
    assert record(book, "basic steps", 3, 4)["loss"] == 1849


def test_demo_data_is_the_workbooks_29_samples():
    assert len(X) == 29 and Y == [2 * x + 30 for x in X]
    assert EXPERIMENTS[0] == ["setting", "basic", "momentum", "adam", "relu"]


def test_demo_refuses_to_replace_a_file_unless_forced(tmp_path, capsys):
    book = tmp_path / "lab.xlsx"
    book.write_bytes(b"mine")
    assert cli.main(["demo", str(book)]) == 4
    assert book.read_bytes() == b"mine"
    assert "--force" in capsys.readouterr().err
    assert cli.main(["demo", str(book), "--force", "--json"]) == 0
    assert "relu epochs" in sheet_names(book)


def test_demo_relu_bends_and_does_not_diverge(tmp_path):
    assert cli.main(["demo", str(tmp_path / "lab.xlsx")]) == 0
    rows = rows_of(tmp_path / "lab.xlsx", "relu epochs")[1:]  # from the header row (row 2)
    header = rows[0]
    gx, model = header.index("grid x"), header.index("model")
    grid = np.array([r[gx] for r in rows[1:] if r[gx] is not None])
    pred = np.array([r[model] for r in rows[1:] if r[model] is not None])
    slopes = np.diff(pred) / np.diff(grid)
    assert slopes.min() == 0 and slopes.max() > 1.5  # flat left of the elbow, steep right of it
    column = {name: [r[i] for r in rows[1:6]] for i, name in enumerate(header[:8])}
    assert all(np.isfinite(column["loss"])) and column["loss"][-1] < column["loss"][0]
    relu = Experiment("relu", model="two_relu", flavour="pytorch", lr=0.00003,
                      init={"a": 1, "b": -40, "c": 1.5, "d": 80}, epochs=50)
    assert train(relu, np.array(X, float), np.array(Y, float)).diagnostics.divergence is None
