"""The embeddings lab (`sheetsync demo --lab embeddings`) and the collab_filter proof of issue 15.

1. The ratings are seeded: the same seed gives the same crosstab; the demo workbook is laid out
   as docs/embeddings.md says, trains end to end and its RMSE falls; the factors find the genres.
2. The proof: on a crosstab laid out like fast.ai's `collab_filter.xlsx` (its `dotprod` sheet,
   cell for cell, with Jeremy's MMULT prediction formulas and his RMSE cell), the RMSE of the
   starting factors that sheetsync trains from equals what LibreOffice computes for the sheet's
   own formula `SQRT(SUMXMY2(actual, predicted)/COUNT(actual))` on the same cells, ≤ 1e-12.
   It is made on Jeremy's own numbers (his ratings and factors, read from the course mirrors;
   nothing of his is copied here) and on the lab's generated ones.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import openpyxl
import pytest

import sheetsync
from sheetsync import cli, runner
from sheetsync.engine import embeddings as engine_embeddings
from sheetsync.labs import embeddings as E
from workbooks import rows_of

ROOT = Path(__file__).resolve().parent.parent
REL = 1e-12
COLLAB = {  # course version -> (mirror git dir, path of collab_filter.xlsx in it)
    "course22": ("/work/.mirror/fastai+course22/repo", "xl/collab_filter.xlsx"),  # starting factors
    "course-v3": ("/work/.mirror/fastai+course-v3/repo", "files/xl/collab_filter.xlsx"),  # after Solver
}


# --- 1. the ratings

def test_the_same_seed_gives_the_same_ratings():
    R, taste = E.ratings(seed=0)
    R2, taste2 = E.ratings(seed=0)
    assert np.array_equal(R, R2, equal_nan=True) and np.array_equal(taste, taste2)
    assert not np.array_equal(R, E.ratings(seed=1)[0], equal_nan=True)
    assert R.shape == (len(E.USERS), len(E.TITLES)) == (15, 15)


def test_ratings_are_half_stars_with_blanks_and_enough_per_user_and_film():
    R, _ = E.ratings()
    rated = ~np.isnan(R)
    assert np.all(R[rated] * 2 == np.round(R[rated] * 2)) and R[rated].min() >= 0.5 and R[rated].max() <= 5
    assert 0.1 < 1 - rated.mean() < 0.3  # about a fifth unrated, as MovieLens's crosstab
    assert rated.sum(axis=1).min() >= E.MIN_RATINGS and rated.sum(axis=0).min() >= E.MIN_RATINGS


def test_the_genres_are_in_the_ratings_not_in_the_columns():
    R, _ = E.ratings()
    genre = np.array([E.GENRES.index(g) for _, g in E.FILMS])
    assert len(set(genre[:3])) == 3  # interleaved: neighbouring columns are of different genres
    # Films of one genre are rated alike: their columns correlate more than films of different genres.
    C = np.ma.corrcoef(np.ma.masked_invalid(R), rowvar=False).filled(np.nan)
    same = genre[:, None] == genre[None, :]
    off = ~np.eye(len(genre), dtype=bool)
    assert np.nanmean(C[same & off]) > np.nanmean(C[~same]) + 0.3


def test_the_dotprod_layout_is_jeremys_for_his_sizes():
    L = E.DotprodLayout(15, 15, 5)
    assert (L.ratings(), L.item_factors(), L.user_factors(), L.predictions(), L.rmse_cell()) == \
        ("H2:V16", "H19:V23", "B25:F39", "H25:V39", "V41")
    assert L.user_factors("dotprod") == "dotprod!B25:F39"


# --- the demo workbook

def rows(book, tab):
    return rows_of(book, tab, read_only=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "lab.xlsx"
    assert cli.main(["demo", str(path), "--lab", "embeddings"]) == 0
    return path


def test_the_lab_writes_the_crosstab_jeremys_sheet_and_the_experiments(lab):
    names = openpyxl.load_workbook(lab, read_only=True).sheetnames
    assert names[:3] == ["data", "experiments", "dotprod"]
    data = rows(lab, "data")
    assert data[0] == ["userId", *E.TITLES]
    assert [r[0] for r in data[1:]] == E.USERS
    R, _ = E.ratings()
    got = np.array([[np.nan if v is None else v for v in r[1:]] for r in data[1:]], dtype=float)
    assert np.array_equal(got, R, equal_nan=True)  # blanks unrated
    settings = {r[0]: r[1:] for r in rows(lab, "experiments")}
    assert settings["setting"] == ["sgd", "adam"]
    assert settings["user_factors_from"][0] == "dotprod!B25:F39" and settings["item_factors_from"][0] == "dotprod!H19:V23"
    formulas = openpyxl.load_workbook(lab)["dotprod"]
    assert formulas["H25"].value == '=IF(H2="",0,MMULT($B25:$F25,H$19:H$23))'
    assert formulas["V39"].value == '=IF(V16="",0,MMULT($B39:$F39,V$19:V$23))'
    assert formulas["V41"].value == "=SQRT(SUMXMY2(H2:V16,H25:V39)/COUNT(H2:V16))"
    for tab in ("sgd steps", "sgd epochs", "sgd factors", "sgd similar", "adam steps", "adam epochs"):
        assert tab in names, tab


def test_the_demo_prints_each_runs_rmse_and_what_to_look_at(tmp_path, capsys):
    assert cli.main(["demo", str(tmp_path / "lab.xlsx"), "--lab", "embeddings"]) == 0
    out = capsys.readouterr().out
    assert "sgd: first run; 20 epochs" in out and ", rmse 0.244" in out and "sqrt(sum err^2)" not in out
    assert E.WHAT_TO_LOOK_AT in out and "sheetsync run" in out


def test_the_lab_trains_and_its_rmse_falls(lab):
    for name, epochs in (("sgd", 20), ("adam", 10)):
        sheet = rows(lab, f"{name} epochs")
        header_row = next(i for i, r in enumerate(sheet) if r and r[0] == "epoch")
        header = sheet[header_row]
        rmse = [r[header.index("rmse")] for r in sheet[header_row + 1:header_row + 1 + epochs]]
        assert all(isinstance(v, float) for v in rmse), rmse
        assert rmse[-1] < 0.5 * rmse[0] and rmse[-1] < 0.5, (name, rmse)


@pytest.fixture(scope="module")
def trained():
    """The lab's workbook trained by sheetsync.run: each experiment's Result."""
    return run_capturing(write_lab(E.SEED))


def write_lab(seed):
    import tempfile

    path = Path(tempfile.mkdtemp()) / "lab.xlsx"
    from sheetsync.backends.xlsx import XlsxBackend

    XlsxBackend.create(str(path), E.input_tabs(seed))
    return path


def run_capturing(book: Path) -> dict:
    """sheetsync.run on the workbook, keeping the Result each experiment's training returned."""
    results = {}
    real_train = runner.train

    def train(experiment, *args, **kwargs):
        results[experiment.name] = real_train(experiment, *args, **kwargs)
        return results[experiment.name]

    runner.train = train
    try:
        sheetsync.run(str(book))
    finally:
        runner.train = real_train
    return results


GENRE = dict(E.FILMS)


def test_the_similar_tab_finds_the_genres_the_ratings_hid(lab):
    """adam's factors: every film's four nearest films are the other four of its genre (cosine
    similarity, as `adam similar` ranks them), though nothing in the ratings names a genre."""
    sheet = rows(lab, "adam similar")
    header_row = next(i for i, r in enumerate(sheet) if r and r[0] == "item")
    header = sheet[header_row]
    nearest = [header.index(f"nearest {k}") for k in range(1, 5)]
    films = [r for r in sheet[header_row + 1:] if r and r[0] in GENRE]
    assert sorted(r[0] for r in films) == sorted(E.TITLES)
    for r in films:
        assert [GENRE[r[c]] for c in nearest] == [GENRE[r[0]]] * 4, r[:12]


def test_sgd_from_the_sheets_start_finds_them_too(trained):
    result = trained["sgd"]
    F = engine_embeddings.tables_of(result).item_factors
    F = F / np.linalg.norm(F, axis=1, keepdims=True)
    similarity = F @ F.T
    np.fill_diagonal(similarity, -np.inf)
    genre = np.array([GENRE[t] for t in E.TITLES])
    assert np.all(genre[similarity.argmax(axis=1)] == genre)  # each film's nearest is of its genre


@pytest.mark.parametrize("optimizer, weight_decay, moves", [
    ("sgd", 0, False), ("rmsprop", 0, False), ("sgd", 0.1, True), ("momentum", 0, True), ("adam", 0, True),
    ("adamw", 0.01, True)])
def test_which_rows_a_step_moves_as_docs_embeddings_says(optimizer, weight_decay, moves):
    """Dense gradients: a row the rating does not touch gets a zero gradient; whether it moves is
    the optimizer's (docs/embeddings.md, "Which rows a step moves")."""
    x, y = np.array([[0, 0], [1, 1], [2, 2]]), np.array([3.0, 4.0, 5.0])
    experiment = sheetsync.Experiment("rows", model="dot_product", flavour="pytorch", optimizer=optimizer, lr=0.1,
                                      epochs=1, factors=2, weight_decay=weight_decay)
    result = sheetsync.train(experiment, x, y, ids=engine_embeddings.Ids(("a", "b", "c"), ("p", "q", "r")))
    after_its_step = result.steps.iloc[0][["new u1", "new u2"]].to_numpy(dtype=float)  # user a: rating 1 only
    at_the_end = engine_embeddings.tables_of(result).user_factors[0]  # after the ratings of b and c
    assert (not np.array_equal(after_its_step, at_the_end)) == moves


# --- 2. the proof: the start RMSE is the sheet's own RMSE cell, as LibreOffice computes it

def recalculate(path: Path, tabs: list[str]) -> dict:
    proc = subprocess.run(["/usr/bin/python3", str(ROOT / "tests/support/lo_recalc.py"), str(path), *tabs],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def lo_cell(recalculated: dict, tab: str, a1: str) -> float:
    from sheetsync.a1 import parse_cell

    cell = parse_cell(a1)
    sheet = recalculated[tab]
    assert sheet["errors"] == {}, sheet["errors"]
    return float(sheet["values"][cell.row - 1][cell.col])


def close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=0.0)


def course_book(version: str, tmp_path_factory):
    """(formulas, cached values) of fast.ai's collab_filter.xlsx, read from the local mirror.
    read_only: openpyxl's full reader stops at the workbook's pivot caches."""
    git_dir, path = COLLAB[version]
    if not Path(git_dir).exists():
        pytest.skip(f"fast.ai's {version} mirror is not on this machine ({git_dir}); the proof on the "
                    "lab's own numbers still runs")
    out = tmp_path_factory.mktemp("fastai") / f"collab-{version}.xlsx"
    out.write_bytes(subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{path}"], check=True,
                                   capture_output=True).stdout)
    return (openpyxl.load_workbook(out, read_only=True)["dotprod"],
            openpyxl.load_workbook(out, read_only=True, data_only=True)["dotprod"])


def block(sheet, a1_range: str) -> list[list]:
    return [[c.value for c in row] for row in sheet[a1_range]]


def jeremys_numbers(values):
    """His ratings (NaN blank), user ids, movie ids, user factors, item factors and cached RMSE."""
    R = np.array([[np.nan if v is None else v for v in row] for row in block(values, "H2:V16")], dtype=float)
    users = [row[0] for row in block(values, "G2:G16")]
    items = block(values, "H1:V1")[0]
    U = np.array(block(values, "B25:F39"), dtype=float)
    M = np.array(block(values, "H19:V23"), dtype=float)
    return R, users, items, U, M, float(values["V41"].value)


def proof_book(path: Path, R, users, items, U, M) -> Path:
    """A workbook to train: the crosstab on `data`, Jeremy's dotprod sheet holding the same ratings
    and the starting factors, one experiment that trains from dotprod's factor cells."""
    from sheetsync.backends.xlsx import XlsxBackend

    layout = E.DotprodLayout(len(users), len(items), U.shape[1])
    experiments = [["setting", "solver"], ["model", "dot_product"], ["flavour", "pytorch"],
                   ["optimizer", "sgd"], ["lr", 0.01], ["epochs", 1], ["factors", U.shape[1]],
                   ["bias", False],  # his dotprod sheet has none (his `bias` sheet adds them)
                   ["user_factors_from", layout.user_factors(E.DOTPROD)],
                   ["item_factors_from", layout.item_factors(E.DOTPROD)]]
    XlsxBackend.create(str(path), {E.DATA: E.data_rows(R, users, items), E.EXPERIMENTS: experiments,
                                   E.DOTPROD: E.dotprod_rows(R, users, items, U, M)})
    return path


@pytest.mark.parametrize("version", list(COLLAB))
def test_our_dotprod_formulas_are_jeremys_cell_for_cell(version, tmp_path_factory):
    formulas, values = course_book(version, tmp_path_factory)
    R, users, items, U, M, _ = jeremys_numbers(values)
    ours = E.dotprod_rows(R, users, items, U, M)
    checked = 0
    for row in formulas.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                assert ours[cell.row - 1][cell.column - 1] == cell.value, cell.coordinate
                checked += 1
    assert checked == 15 * 15 + 1  # every prediction and the RMSE cell
    for a1_range in ("H2:V16", "G2:G16", "H1:V1", "B25:F39", "H19:V23", "H24:V24", "G25:G39"):
        theirs = block(values, a1_range)
        mine = [[ours[c.row - 1][c.column - 1] for c in row] for row in formulas[a1_range]]
        assert mine == theirs, a1_range


@pytest.mark.parametrize("version", list(COLLAB))
def test_start_rmse_is_jeremys_rmse_cell_on_his_own_numbers(version, tmp_path_factory):
    """course22 holds the sheet's random starting factors (RMSE 2.81), course-v3 the factors after
    Solver (RMSE 0.39): trained from either, the start RMSE is his cell's value."""
    _, values = course_book(version, tmp_path_factory)
    R, users, items, U, M, cached = jeremys_numbers(values)
    book = proof_book(tmp_path_factory.mktemp("proof") / "collab.xlsx", R, users, items, U, M)
    lo = lo_cell(recalculate(book, [E.DOTPROD]), E.DOTPROD, "V41")
    result = run_capturing(book)["solver"]
    start = engine_embeddings.start_rmse(result)
    assert close(start, lo), (start, lo)
    assert close(start, cached), (start, cached)  # and Excel's own value, cached in his file
    # It trained from the cells the workbook holds (openpyxl keeps 16 significant digits of his 17).
    tables = engine_embeddings.start_tables(result)
    held = openpyxl.load_workbook(book, read_only=True, data_only=True)[E.DOTPROD]
    assert np.array_equal(tables.user_factors, np.array(block(held, "B25:F39"), dtype=float))
    assert np.array_equal(tables.item_factors, np.array(block(held, "H19:V23"), dtype=float).T)
    np.testing.assert_allclose(tables.user_factors, U, rtol=1e-15)


def test_start_rmse_is_the_lab_sheets_rmse_cell(lab, trained):
    result = trained["sgd"]
    lo = lo_cell(recalculate(lab, [E.DOTPROD]), E.DOTPROD, "V41")
    start = engine_embeddings.start_rmse(result)
    assert close(start, lo), (start, lo)
    assert 1.5 < start < 3  # uniform [0, 1) factors predict about 1.25 for ratings about 3.3
