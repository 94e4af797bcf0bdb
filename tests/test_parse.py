"""Parsing the input tabs: what a learner's sheet may hold, and the message for each mistake."""

import time

import numpy as np
import pytest

from sheetsync.backends.base import CellError, DateCell, Snapshot, TabInfo, Uncomputed
from sheetsync.errors import InputError
from sheetsync.parse.inputs import parse_inputs

X = [14, 86, 28, 51]


def snapshot(data=None, experiments=None, **extra):
    values = {}
    if data is not None:
        values["data"] = data
    if experiments is not None:
        values["experiments"] = experiments
    values.update(extra)
    tabs = [TabInfo(title, i, owned=False) for i, title in enumerate(values)]
    return Snapshot("test.xlsx", tabs, values)


def good_data():
    return [["x", "y"]] + [[x, 2 * x + 30] for x in X]


def good_experiments():
    return [["setting", "basic", "fast"],
            ["optimizer", "sgd", "momentum"],
            ["LR", None, 0.001],
            ["Init A", 1, 2],
            ["init b", 1, None]]


def problems_of(snap, **kw):
    with pytest.raises(InputError) as info:
        parse_inputs(snap, **kw)
    return {p.cell: p.message for p in info.value.problems}


def test_good_sheet_gives_dataset_and_experiments_with_defaults():
    inputs = parse_inputs(snapshot(good_data(), good_experiments()))
    assert inputs.dataset.input_names == ["x"]
    np.testing.assert_array_equal(inputs.dataset.train_x(), X)
    np.testing.assert_array_equal(inputs.dataset.y, [2 * x + 30 for x in X])
    assert inputs.dataset.cell(2, "y") == "data!B4"
    basic, fast = inputs.experiments
    assert (basic.name, basic.optimizer, basic.lr, basic.init) == ("basic", "sgd", 1e-4, {"a": 1.0, "b": 1.0})
    assert (fast.optimizer, fast.lr, fast.init) == ("momentum", 0.001, {"a": 2.0})
    assert inputs.setting_cells["fast"]["lr"] == "experiments!C3"


def test_columns_after_an_empty_header_are_the_users_notes():
    data = [["x", "y", None, "notes"], [1, 2, None, "anything"], [2, 4], [3, 6]]
    inputs = parse_inputs(snapshot(data, good_experiments()))
    np.testing.assert_array_equal(inputs.dataset.y, [2, 4, 6])


def test_several_inputs_and_data_ending_at_the_first_empty_row():
    data = [["x1", "x2", "y"], [1, 2, 3], [4, 5, 6], [7, 8, 9], [None, None, None], [1, 1, 1]]
    inputs = parse_inputs(snapshot(data, [["", "e"], ["model", "linear"]]))
    assert inputs.dataset.x.shape == (3, 2)
    assert inputs.dataset.input_names == ["x1", "x2"]
    assert any("rows from 6 on are ignored" in w for w in inputs.warnings)


def test_every_bad_data_cell_is_reported_with_its_address_in_one_pass():
    data = [["x", "y"], [1, "abc"], ["1,5", 2], [" 3 ", 4], ["12%", 5], [DateCell(45000, "2023-03-15"), 6],
            [CellError("#DIV/0!"), 7], [Uncomputed("=A1*2"), 8], [9, None], [True, 10]]
    found = problems_of(snapshot(data, good_experiments()))
    assert found["data!B2"] == "expected a number, found 'abc'"
    assert "a number stored as text ('1,5')" in found["data!A3"] and "1.5" in found["data!A3"]
    assert "a number stored as text (' 3 ')" in found["data!A4"]
    assert "0.12" in found["data!A5"]
    assert "date (2023-03-15)" in found["data!A6"]
    assert "#DIV/0!" in found["data!A7"]
    assert "=A1*2" in found["data!A8"] and "no computed value" in found["data!A8"]
    assert found["data!B9"] == "expected a number, found an empty cell"
    assert "TRUE" in found["data!A10"]
    assert len(found) == 9


@pytest.mark.parametrize("headers, cell, words", [
    (["x", "x"], "data!B1", "duplicate header 'x'"),
    (["x", "z"], "data!B1", "unexpected header 'z'"),
    (["x", None, "y"], "data!B1", "missing header y"),
    (["x"], "data!B1", "missing header y"),
    (["y"], "data!B1", "missing header x"),
    (["x1", "x3", "y"], "data!D1", "missing x2"),
    (["x", "x1", "y"], "data!A1", "not both"),
])
def test_header_problems(headers, cell, words):
    data = [headers] + [[1] * len(headers)] * 3
    found = problems_of(snapshot(data, good_experiments()))
    assert words in found[cell]


def test_missing_tabs_and_too_few_rows():
    found = problems_of(snapshot(None, None, Data=[["x"]]))
    assert "missing tab 'data'" in found["data"] and "did you mean 'Data'" in found["data"]
    assert "missing tab 'experiments'" in found["experiments"]
    found = problems_of(snapshot([["x", "y"], [1, 2]], good_experiments()))
    assert "at least 2 data rows" in found["data!A2"]


def test_setting_problems_name_their_cell_and_suggest_the_closest():
    experiments = [["", "a", "b"],
                   ["optimiser", "sgd", "sgd"],
                   ["lr", "fast", -1],
                   ["lr", 1, 1],
                   ["model", "linaer", "two_relu"],
                   ["flavour", "graddesc", "pytroch"],
                   ["epochs", 1e9, 5],
                   ["init c", 1, 1],
                   ["init q", None, 2]]
    found = problems_of(snapshot(good_data(), experiments))
    assert "unknown setting 'optimiser'" in found["experiments!A2"] and "'optimizer'" in found["experiments!A2"]
    assert "duplicate setting 'lr'" in found["experiments!A4"]
    assert "expected a number" in found["experiments!B3"]
    assert "> 0" in found["experiments!C3"]
    assert "did you mean 'linear'" in found["experiments!B5"]
    assert "did you mean 'pytorch'" in found["experiments!C6"]
    assert "1 to 10,000,000" in found["experiments!B7"]
    assert "no parameter 'q'" in found["experiments!C9"]
    assert "experiments!B8" not in found  # model 'linaer' is unknown, so its parameters are too


@pytest.mark.parametrize("name, words", [
    ("a" * 25, "at most 24"),
    ("what?", "contains ?"),
    ("a/b", "contains /"),
    ("'quoted'", "apostrophe"),
])
def test_experiment_names_must_make_valid_tab_names(name, words):
    found = problems_of(snapshot(good_data(), [["", name], ["lr", 0.1]]))
    assert words in found["experiments!B1"]


def test_duplicate_experiment_names_ignore_case():
    found = problems_of(snapshot(good_data(), [["", "Basic", "basic"], ["lr", 0.1, 0.2]]))
    assert "duplicate experiment name 'basic'" in found["experiments!C1"]


def test_a_huge_run_is_refused_at_once():
    start = time.perf_counter()
    data = [["x", "y"]] + [[i, i] for i in range(1000)]
    found = problems_of(snapshot(data, [["", "big"], ["epochs", 10_000_000]]))
    assert "over the budget" in found["experiments!B2"]
    found = problems_of(snapshot(data, [["", "huge"], ["epochs", 1_000_000_000]]))
    assert "1 to 10,000,000" in found["experiments!B2"]
    assert time.perf_counter() - start < 10  # never attempted: a billion epochs would take hours


def test_only_selects_experiments_and_names_a_missing_one():
    inputs = parse_inputs(snapshot(good_data(), good_experiments()), only=["FAST"])
    assert [e.name for e in inputs.experiments] == ["fast"]
    found = problems_of(snapshot(good_data(), good_experiments()), only=["basik"])
    assert "did you mean 'basic'" in found["experiments"]


def test_ignored_settings_become_warnings():
    inputs = parse_inputs(snapshot(good_data(), [["", "e"], ["beta2", 0.5]]))
    assert inputs.warnings == ["experiments!B2: e: beta2 is ignored by graddesc sgd"]


def test_an_experiment_name_may_not_make_an_input_tabs_name():
    snap = snapshot(None, [["", "raw", "ok"], ["lr", 0.1, 0.1]], **{"raw steps": good_data()})
    with pytest.raises(InputError) as info:
        parse_inputs(snap, data_tab="raw steps")
    (problem,) = info.value.problems
    assert problem.cell == "experiments!B1" and "'raw steps'" in problem.message


def test_a_setting_typed_with_a_decimal_comma_says_how_to_fix_it():
    found = problems_of(snapshot(good_data(), [["", "e"], ["lr", "0,001"], ["momentum", 0.5]]))
    assert found == {"experiments!B2": "e: lr: a number stored as text ('0,001'); type it as a number "
                                       "(0.001) or format the cell as Number"}


def test_a_number_stored_as_text_in_a_setting_is_refused_as_in_the_data_tab():
    data = good_data()
    data[2][1] = "0.0001 "
    experiments = [["", "e", "f"], ["lr", "0.0001 ", 0.1], ["epochs", 5, "1,5"], ["init a", "2", 1]]
    found = problems_of(snapshot(data, experiments))
    same = "a number stored as text ('0.0001 '); type it as a number (0.0001) or format the cell as Number"
    assert found["data!B3"] == same
    assert found["experiments!B2"] == f"e: lr: {same}"
    assert found["experiments!C3"] == ("f: epochs: a number stored as text ('1,5'); type it as a number "
                                       "(1.5) or format the cell as Number")
    assert "a number stored as text ('2')" in found["experiments!B4"]


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", " NaN "])
def test_non_finite_settings_are_refused_with_their_cell(text):
    found = problems_of(snapshot(good_data(), [["", "e", "f"], ["lr", text, 0.1],
                                               ["divergence_bound", 1e10, text]]))
    assert found == {"experiments!B2": f"e: lr: expected a finite number, found {text!r}",
                     "experiments!C3": f"f: divergence_bound: expected a finite number, found {text!r}"}


@pytest.mark.parametrize("typed, meant", [
    ("learning_rate", "lr"), ("learning rate", "lr"), ("Step Size", "lr"), ("stepsize", "lr"),
    ("eta", "lr"), ("n_epochs", "epochs"), ("num_epochs", "epochs"), ("batchsize", "batch_size"),
    ("bs", "batch_size"), ("beta_1", "beta1"), ("beta_2", "beta2"), ("mom", "momentum"),
    ("wd", "weight_decay"), ("weight-decay", "weight_decay"), ("epsilon", "eps"),
    ("optimiser", "optimizer"), ("flavor", "flavour"), ("momentun", "momentum"),
])
def test_common_spellings_of_a_setting_get_the_setting_it_means(typed, meant):
    found = problems_of(snapshot(good_data(), [["", "e"], [typed, 1]]))
    assert found == {"experiments!A2": f"unknown setting {typed!r} (did you mean {meant!r}?)"}


def test_every_budget_names_the_cell_that_makes_the_run_too_big(monkeypatch):
    from sheetsync import budgets
    from sheetsync.engine import record

    # recorded whole (a run over the cell budget is otherwise recorded sampled, and holds little)
    monkeypatch.setattr(record, "RECORD_ALL", True)
    data = [["x", "y"]] + [[i, i] for i in range(1000)]
    experiments = [["", "small", "big"], ["epochs", 5, 400_000]]
    with pytest.raises(InputError) as info:
        parse_inputs(snapshot(data, experiments))
    compute, history, memory = [str(p) for p in info.value.problems]
    assert compute.startswith("experiments!C2: this run would take 1,600,020,000 row-steps")
    assert memory.startswith("experiments!C2: big: the steps of this run would take")
    assert history.startswith("experiments!C2: the epochs history would need 3,200,040 cells")
    # epochs at its default: the experiment's name cell; a long history counts against the run
    found = problems_of(snapshot(good_data(), [["", "a", "b"], ["lr", 0.1, 0.1]]),
                        previous_epochs={"b": 200_000})
    assert found == {"experiments!C1": "the epochs history would need 1,600,080 cells, over the budget "
                                       "of 1,000,000; lower epochs or reset"}
    monkeypatch.setattr(budgets, "MAX_DATA_ROWS", 3)
    found = problems_of(snapshot(good_data(), good_experiments()))
    assert found == {"data!A5": "4 data rows; the limit is 3 (rows 2 to 4)"}


def test_multi_word_settings_are_found_by_their_experiment_name():
    inputs = parse_inputs(snapshot(good_data(), [["", "e"], ["Weight Decay", 0.1], ["batch_size", 1]]))
    assert inputs.setting_cells["e"] == {"weight_decay": "experiments!B2", "batch_size": "experiments!B3"}
    assert inputs.warnings == ["experiments!B2: e: weight_decay is ignored by graddesc sgd"]


@pytest.mark.parametrize("settings", [{"lr": "nan"}, {"lr": float("inf")}, {"divergence_bound": "inf"},
                                      {"epochs": "inf"}, {"init": {"a": "nan"}}])
def test_the_python_api_refuses_non_finite_settings(settings):
    from sheetsync.errors import SettingError
    from sheetsync.settings import Experiment

    with pytest.raises(SettingError, match="expected a finite number"):
        Experiment("e", **settings)


def test_the_python_api_suggests_settings_by_meaning_too():
    from sheetsync.errors import SettingError
    from sheetsync.settings import Experiment

    with pytest.raises(SettingError, match=r"unknown setting.*\(did you mean 'lr'\?\)$"):
        Experiment("e", learning_rate=0.1)
    with pytest.raises(SettingError, match=r"\(did you mean 'batch_size'\?\)$"):
        Experiment("e", bs=4)
