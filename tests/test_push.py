"""push: an experiment file (TOML or YAML) and a CSV become the sheet's inputs, then a run."""

import pytest

from memory_backend import MemoryBackend
from sheetsync.demo import X, Y
from sheetsync.errors import InputError, OwnershipError
from sheetsync.push import load_experiments, push

TOML = """
[basic]
optimizer = "sgd"
lr = 0.0001
init = { a = 1, b = 1 }

[fast]
optimizer = "momentum"
"init a" = 2
"""

YAML = """
experiments:
  basic:
    optimizer: sgd
    init: {a: 1, b: 1}
  adam:
    optimizer: adam
    lr: 1
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "lab.toml").write_text(TOML)
    (tmp_path / "lab.yaml").write_text(YAML)
    (tmp_path / "data.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(X, Y)))
    return tmp_path


def test_toml_becomes_the_experiments_tab_column_by_column(files):
    rows = load_experiments(files / "lab.toml")
    assert rows[0] == ["setting", "basic", "fast"]
    assert ["init a", 1, 2] in rows and ["lr", 0.0001, None] in rows


def test_push_writes_inputs_and_results_in_one_write(files):
    backend = MemoryBackend({"about": [["mine"]]})
    report = push(files / "lab.yaml", files / "data.csv", "mem", backend=backend)
    assert [e.name for e in report.experiments] == ["basic", "adam"]
    assert len(backend.plans) == 1
    assert [t.name for t in backend.plans[0].tabs][:3] == ["data", "experiments", "basic steps"]
    assert backend.grids["basic steps"][3][7] == 15.0  # pred of the first step
    assert backend.grids["about"] == [["mine"]]


def test_a_second_push_replaces_the_inputs_push_created(files):
    backend = MemoryBackend()
    push(files / "lab.toml", files / "data.csv", "mem", backend=backend)
    (files / "data.csv").write_text("x,y\n1,2\n2,4\n3,6\n")
    report = push(files / "lab.toml", files / "data.csv", "mem", backend=backend)
    assert backend.grids["data"][1] == [1, 2]
    assert report.experiments[0].start.startswith("reset: the data changed")


def test_push_never_overwrites_the_users_own_different_inputs(files):
    backend = MemoryBackend({"data": [["x", "y"], [1, 2], [3, 4]]})
    with pytest.raises(OwnershipError, match="'data' holds your own inputs"):
        push(files / "lab.toml", files / "data.csv", "mem", backend=backend)
    assert backend.plans == []


def test_push_accepts_the_users_inputs_when_they_hold_the_same_values(files):
    backend = MemoryBackend({"data": [["x", "y"]] + [[float(x), y] for x, y in zip(X, Y)]})
    push(files / "lab.toml", files / "data.csv", "mem", backend=backend)
    assert "data" not in [t.name for t in backend.plans[0].tabs]


def test_bad_settings_in_the_file_are_all_named(files):
    (files / "bad.toml").write_text('[a]\nlr = -1\noptimiser = "sgd"\n[b]\nmodel = "linaer"\n')
    with pytest.raises(InputError) as info:
        load_experiments(files / "bad.toml")
    messages = [str(p) for p in info.value.problems]
    assert any("[a]" in m and "lr" in m and "> 0" in m for m in messages)
    assert any("[a]" in m and "optimiser" in m and "optimizer" in m for m in messages)
    assert any("[b]" in m and "did you mean 'linear'" in m for m in messages)


def test_bad_csv_values_are_named_by_their_file_and_line_and_nothing_is_written(files):
    (files / "bad.csv").write_text('x,y\n1,2\n2,abc\n3,"a\nb"\n4,"1,5"\n')
    backend = MemoryBackend()
    with pytest.raises(InputError) as info:
        push(files / "lab.toml", files / "bad.csv", "mem", backend=backend)
    assert [str(p) for p in info.value.problems] == [
        f"{files / 'bad.csv'}:3: column y: expected a number, found 'abc'",
        f"{files / 'bad.csv'}:4: column y: expected a number, found 'a\\nb'",
        f"{files / 'bad.csv'}:6: column y: a number stored as text ('1,5'); type it as a number (1.5) "
        "or format the cell as Number"]
    assert backend.plans == []
    (files / "short.csv").write_text("x,z\n1,2\n")
    with pytest.raises(InputError) as info:
        push(files / "lab.toml", files / "short.csv", "mem", backend=backend)
    assert [p.cell for p in info.value.problems] == [f"{files / 'short.csv'}:1"]
    assert backend.plans == []


def test_a_push_to_a_new_workbook_with_bad_inputs_creates_no_file(files):
    (files / "bad.csv").write_text("x,y\n1,2\n2,abc\n")
    target = files / "new.xlsx"
    with pytest.raises(InputError, match=r"bad.csv:3: column y"):
        push(files / "lab.toml", files / "bad.csv", str(target))
    assert not target.exists()


def test_a_budget_problem_names_the_experiment_file_table_and_setting(files):
    (files / "long.toml").write_text("[slow]\nepochs = 10000000\n")
    (files / "big.csv").write_text("x,y\n" + "".join(f"{i},{i}\n" for i in range(100)))
    with pytest.raises(InputError) as info:
        push(files / "long.toml", files / "big.csv", "mem", backend=MemoryBackend())
    assert info.value.problems[0].cell == f"{files / 'long.toml'} [slow] epochs"
    assert "over the budget" in info.value.problems[0].message


def test_experiment_files_are_checked_as_the_sheet_is(files):
    (files / "odd.yaml").write_text("a:\n  learning rate: 0.1\n  lr: nan\n  epochs: '1,5'\n"
                                    "b:\n  lr: 1e-4\n  divergence_bound: .inf\n  LR: 0.1\n")
    with pytest.raises(InputError) as info:
        load_experiments(files / "odd.yaml")
    where = str(files / "odd.yaml")
    assert sorted(str(p) for p in info.value.problems) == sorted([
        f"{where} [a]: unknown setting 'learning rate' (did you mean 'lr'?)",
        f"{where} [a]: lr: expected a finite number, found 'nan'",
        f"{where} [a]: epochs: a number stored as text ('1,5'); type it as a number (1.5) or format the "
        "cell as Number",
        f"{where} [b]: duplicate setting 'lr'",
        f"{where} [b]: divergence_bound: expected a finite number, found inf"])
    (files / "ok.yaml").write_text("b:\n  lr: 1e-4\n  epochs: '3'\n")  # YAML reads 1e-4 as text
    assert load_experiments(files / "ok.yaml")[1:] == [["lr", 0.0001], ["epochs", 3]]


def test_unreadable_files_are_input_errors(files):
    (files / "broken.toml").write_text("[a\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_experiments(files / "broken.toml")
    with pytest.raises(InputError, match="expected a .toml, .yaml or .yml"):
        load_experiments(files / "data.csv")
