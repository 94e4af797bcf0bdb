"""Many input columns: sums built flat (no recursion n deep), a documented limit on inputs
refused at the header cell past it, and the limit itself trains."""

from __future__ import annotations

import math

import numpy as np
import openpyxl
import pytest

import sheetsync
from sheetsync import budgets
from sheetsync.engine.expr import NESTED_SUM_TERMS, evaluate, sym, to_c, to_formula, to_python, total
from sheetsync.engine.models import build_model
from sheetsync.errors import InputError, SettingError


def book(path, n_inputs, rows=4):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "data"
    ws.append([f"x{i}" for i in range(1, n_inputs + 1)] + ["y"])
    for r in range(rows):
        ws.append([(r + i) % 7 for i in range(n_inputs)] + [r])
    experiments = wb.create_sheet("experiments")
    experiments.append(["setting", "basic"])
    wb.save(path)
    return path


@pytest.mark.parametrize("n_inputs", [budgets.MAX_INPUTS + 1, 1000, 16_383])
def test_inputs_past_the_limit_are_refused_at_the_first_header_past_it(tmp_path, n_inputs):
    path = book(tmp_path / "wide.xlsx", n_inputs)
    with pytest.raises(InputError) as raised:
        sheetsync.run(str(path))
    [problem] = raised.value.problems
    assert problem.cell == "data!CW1"  # x101
    assert f"{n_inputs:,} input columns; the limit is {budgets.MAX_INPUTS}" in problem.message


def test_the_python_api_refuses_too_many_inputs_too():
    x = np.ones((3, budgets.MAX_INPUTS + 1))
    with pytest.raises(SettingError, match="input columns; the limit is"):
        sheetsync.train(sheetsync.Experiment("wide"), x, np.ones(3))


def test_a_long_sum_is_one_flat_node_adding_left_to_right():
    terms = [sym(f"t{i}") for i in range(5000)]
    e = total(terms)
    assert e.op == "sum" and len(e.args) == 5000
    env = {f"t{i}": v for i, v in enumerate([1e16, 1.0, -1e16] + [0.1] * 4997)}
    left_to_right = 0.0
    for i in range(5000):
        left_to_right = left_to_right + env[f"t{i}"] if i else env["t0"]
    assert evaluate(e, env) == left_to_right  # not math.fsum: the order is the sheet's
    assert left_to_right != math.fsum(env.values())
    assert to_python(e, str).count("(") == 1 and to_c(e, str).count("(") == 1
    assert to_formula(e, str).startswith("(t0+t1+t2+")


def test_short_sums_stay_the_binary_chain_they_were():
    e = total([sym(f"t{i}") for i in range(NESTED_SUM_TERMS)])
    assert e.op == "+" and e.args[0].op == "+"
    assert to_python(e, str).startswith("(" * (NESTED_SUM_TERMS - 1) + "t0 + t1)")


def test_the_limit_trains_and_matches_plain_sgd():
    n = budgets.MAX_INPUTS
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, n))
    y = x @ rng.normal(size=n) + 0.5
    exp = sheetsync.Experiment("wide", flavour="pytorch", optimizer="sgd", lr=0.01, epochs=1)
    result = sheetsync.train(exp, x, y)
    a, b = np.ones(n), 1.0
    for xi, yi in zip(x, y):  # batch size 1: one step a row
        pred = sum((a[i] * xi[i] for i in range(n)), 0.0) + b
        grad = 2 * (pred - yi)
        a, b = a - 0.01 * grad * xi, b - 0.01 * grad
    params = result.params
    assert np.allclose([params[f"a{i}"] for i in range(1, n + 1)], a, rtol=1e-9, atol=1e-12)
    assert math.isclose(params["b"], b, rel_tol=1e-9)
    assert len(build_model("mlp", n, 2).params) == 2 * n + 5
