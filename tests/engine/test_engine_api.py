"""The engine's Python API: settings validation, table shapes, Run/Reset, diagnostics, sweeps."""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sheetsync import Experiment, SettingError, State, sweep, train
from sheetsync.engine.expr import evaluate
from sheetsync.engine.train import prepare

X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8, 64, 99, 70, 27, 17, 8]
Y = [2 * x + 30 for x in X]
XS = np.array(X, float) / 100.0  # a well-scaled copy for the non-workbook flavours
YS = 2 * XS + 0.3


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("settings_, message", [
    ({"optimzer": "adam"}, "optimzer: unknown setting.*did you mean 'optimizer'"),
    ({"flavour": "pytorch", "optimizer": "adma"}, "expected one of .*found 'adma'.*did you mean 'adam'"),
    ({"flavour": "fastai", "optimizer": "adagrad"}, "the fastai flavour has no 'adagrad'"),
    ({"model": "lineer"}, "model: .*did you mean 'linear'"),
    ({"lr": 0}, "lr: expected a number > 0, found 0"),
    ({"lr": "fast"}, "lr: expected a number, found 'fast'"),
    ({"epochs": 0}, "epochs: expected a whole number from 1"),
    ({"epochs": 2.5}, "epochs: expected a whole number, found 2.5"),
    ({"optimizer": "adam", "beta1": 1.0}, r"beta1: expected a number in \[0, 1\), found 1.0"),
    ({"optimizer": "adam", "beta2": -0.1}, r"beta2: expected a number in \[0, 1\)"),
    ({"model": "mlp", "hidden": 0}, "hidden: expected a whole number from 1"),
    ({"flavour": "pytorch", "optimizer": "sgd", "nesterov": True}, "nesterov: Nesterov momentum needs momentum > 0"),
    ({"flavour": "pytorch", "shuffle": "maybe"}, "shuffle: expected true or false, found 'maybe'"),
])
def test_bad_settings_are_named_with_what_was_expected(settings_, message):
    with pytest.raises(SettingError, match=message):
        Experiment(**settings_)


def test_setting_names_are_case_insensitive_and_blank_means_default():
    e = Experiment(Optimizer="Adam", LR="", Beta1=" 0.8 ")
    assert (e.optimizer, e.lr, e.beta1) == ("adam", 1.0, 0.8)


def test_unknown_init_parameter_is_named():
    with pytest.raises(SettingError, match="init c: linear has no parameter 'c'; its parameters are a, b"):
        train(Experiment(init={"c": 1}), X, Y)


def test_data_shape_errors_are_clear():
    with pytest.raises(SettingError, match="expected x of shape"):
        train(Experiment(), [1, 2, 3], [1, 2])
    with pytest.raises(SettingError, match="finite"):
        train(Experiment(), [1, float("nan")], [1, 2])


def test_flavour_details_name_the_variant():
    r = train(Experiment(flavour="pytorch", optimizer="adam", epochs=1), XS, YS)
    assert r.details["eps_placement"] == "after bias correction" and r.details["bias_correction"] is True
    assert train(Experiment(optimizer="rmsprop", epochs=1), X, Y).details["eps_placement"] == "none"


def test_unused_settings_are_reported_not_fatal():
    assert Experiment(optimizer="sgd", eps=1e-3).unused() == ["eps"]


# --- tables ---------------------------------------------------------------------------------


def test_steps_columns_in_the_documented_order():
    r = train(Experiment(flavour="pytorch", optimizer="adam", epochs=1), XS, YS)
    assert list(r.steps.columns) == ["epoch", "step", "row", "x", "y", "a", "b", "pred", "err", "loss",
                                     "de/da", "de/db", "m_a", "m_b", "v_a", "v_b", "new a", "new b"]
    assert list(r.epochs.columns[:5]) == ["epoch", "loss", "a", "b", "lr"]
    assert len(r.steps) == 29 and r.steps["step"].tolist() == list(range(1, 30))


def test_several_inputs_and_numeric_estimates():
    x = np.column_stack([XS, XS ** 2])
    r = train(Experiment(flavour="pytorch", gradient="both", epochs=1), x, YS)
    assert list(r.steps.columns[:11]) == ["epoch", "step", "row", "x1", "x2", "y", "a1", "a2", "b", "pred", "err"]
    assert "de/da2 est" in r.steps.columns


def test_mini_batches_step_once_per_batch_with_the_mean_gradient():
    """Each line of a batch shows its row's share of the gradient, (1/k)·(row gradient), as
    autograd computes the gradient of a mean; the step adds the shares in torch's order."""
    from sheetsync.engine.reduction import evaluate as add_up, sum_tree

    r = train(Experiment(flavour="pytorch", batch_size=10, lr=0.1, epochs=1), XS, YS)
    steps = r.steps
    assert steps["step"].tolist() == [1] * 10 + [2] * 10 + [3] * 9
    first = steps.iloc[:10]
    assert (first["de/db"] == (1.0 / 10) * (2.0 * first["err"])).all()
    assert (first["de/da"] == first["x"] * first["de/db"]).all()
    g = add_up(sum_tree(10), list(first["de/da"]))
    assert steps.iloc[9]["new a"] == 1.0 + (-0.1) * g
    assert g == pytest.approx(first["de/da"].sum(), rel=1e-14)
    assert first["new a"].iloc[:9].isna().all()  # only the batch's last line carries the update
    last = steps.iloc[20:]
    assert (last["de/db"] == (1.0 / 9) * (2.0 * last["err"])).all()  # the short last batch: 1/9


def test_batch_gradients_add_up_in_torchs_order():
    """torch.sum does not add left to right; sheetsync's batch sum follows it exactly."""
    import torch

    from sheetsync.engine.numba_support import torch_sum
    from sheetsync.engine.reduction import evaluate as add_up, sum_tree

    rng = np.random.default_rng(11)
    for n in list(range(1, 70)) + [257, 1000, 4099]:
        v = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, size=n)
        expected = torch.tensor(v, dtype=torch.float64).sum().item()
        assert add_up(sum_tree(n), list(v)) == expected
        assert torch_sum(v, n) == expected


def test_epoch_loss_is_the_mean_row_loss():
    r = train(Experiment(flavour="pytorch", epochs=2), XS, YS)
    for epoch, group in r.steps.groupby("epoch"):
        assert r.epochs.set_index("epoch").loc[epoch, "loss"] == pytest.approx(group["loss"].mean(), rel=1e-15)


def test_the_compiled_loop_is_the_expressions_operation_for_operation():
    """numba must not fuse or reorder: each recorded cell equals a plain-Python evaluation."""
    exp = Experiment(flavour="pytorch", optimizer="adam", model="two_relu", lr=0.01, epochs=1, gradient="both")
    job = prepare(exp, XS, YS)
    r = train(exp, XS, YS)
    cells = job.spec.model.row_cells("squared")
    for _, row in r.steps.iterrows():
        env = {"x": row["x"], "y": row["y"], **{q: row[q] for q in "abcd"}, "grad_step": 0.01}
        for name, e in cells:
            env[name] = evaluate(e, env)
        for q in "abcd":
            assert env[f"de/d{q}"] == row[f"de/d{q}"]
        assert env["loss"] == row["loss"]


# --- Run and Reset ----------------------------------------------------------------------------


EXPERIMENTS = [
    Experiment(flavour="pytorch", optimizer="adam", lr=0.05, epochs=7),
    Experiment(flavour="pytorch", optimizer="sgd", momentum=0.9, nesterov=True, lr=0.05, epochs=7),
    Experiment(flavour="pytorch", optimizer="rmsprop", centered=True, momentum=0.5, lr=0.01, epochs=7),
    Experiment(flavour="fastai", optimizer="adam", lr=0.05, epochs=7, batch_size=4, shuffle=True, seed=3),
    Experiment(flavour="pytorch", optimizer="adagrad", lr_decay=0.01, lr=0.1, epochs=7, model="two_relu"),
    Experiment(flavour="pytorch", optimizer="adamw", amsgrad=True, lr=0.05, epochs=7, model="mlp", hidden=3),
]


@pytest.mark.parametrize("exp", EXPERIMENTS, ids=lambda e: f"{e.flavour}-{e.optimizer}-{e.model}")
@given(split=st.integers(1, 6))
@settings(max_examples=6, deadline=None)
def test_runs_in_pieces_equal_one_long_run(exp, split):
    whole = train(exp, XS, YS)
    first = train(exp.replace(epochs=split), XS, YS)
    saved = State.from_dict(json.loads(json.dumps(first.state.to_dict())))
    rest = train(exp.replace(epochs=7 - split), XS, YS, saved)
    assert rest.params == whole.params
    later = whole.steps[whole.steps.epoch > split].reset_index(drop=True)
    assert rest.steps.equals(later)  # every cell of every later step, bit for bit
    assert rest.epochs["epoch"].tolist() == list(range(split + 1, 8))


def test_a_new_lr_takes_effect_on_the_next_run():
    first = train(Experiment(flavour="pytorch", lr=0.01, epochs=1), XS, YS)
    second = train(Experiment(flavour="pytorch", lr=0.02, epochs=1), XS, YS, first.state)
    row = second.steps.iloc[0]
    assert row["new a"] == row["a"] + (-0.02) * row["de/da"]
    assert second.epochs["lr"].tolist() == [0.02]


def test_continuing_a_state_of_another_model_is_refused():
    state = train(Experiment(flavour="pytorch", epochs=1), XS, YS).state
    with pytest.raises(Exception, match="reset it to start again"):
        train(Experiment(flavour="pytorch", model="two_relu", epochs=1), XS, YS, state)


# --- diagnostics ----------------------------------------------------------------------------


@pytest.mark.parametrize("x", [14.0, 50.0, 100.0])
def test_divergence_is_a_result_with_the_step_the_parameter_and_the_stable_lr(x):
    """docs/optimizers.md (the lr < 1/x² bound): per-row SGD on one x is stable just below the bound, diverges just above."""
    xs, ys = [x] * 10, [2 * x + 30] * 10
    bound = 1 / (x * x + 1)
    ok = train(Experiment(lr=0.99 * bound, epochs=300), xs, ys)
    assert ok.diagnostics.divergence is None and ok.params["a"] == pytest.approx(2, abs=3)
    bad = train(Experiment(lr=1.01 * bound, epochs=2000), xs, ys)
    d = bad.diagnostics.divergence
    assert d is not None and d.param == "a" and d.lr_bound == bound
    assert any(f"lr < {bound:.6g}" in n for n in bad.diagnostics.story)
    last = bad.steps.iloc[-1]
    assert (last["step"], last["row"], last["epoch"]) == (d.step, d.row, d.epoch)  # stopped at the bad step
    assert abs(last["new a"]) > 1e10 and len(bad.epochs) == d.epoch
    assert any("Diverged" in n for n in bad.diagnostics.notes)


def test_non_finite_loss_is_divergence_too():
    r = train(Experiment(flavour="pytorch", optimizer="sgd", lr=1e300, epochs=5), X, Y)
    assert r.diagnostics.divergence is not None and r.diagnostics.divergence.step <= 3


def test_dead_relu_parameters_and_when_they_died():
    exp = Experiment(flavour="pytorch", model="two_relu", init={"a": -1.0, "b": -1.0}, epochs=2)
    r = train(exp, XS, YS)
    assert r.diagnostics.dead_epochs == {"a": 1, "b": 1, "c": 1}
    dead = r.diagnostics.dead["u"]  # dead from the start: a·x + b <= 0 on every row at init
    assert dead.params == ["a", "b", "c"] and dead.step is None
    assert r.params["a"] == -1.0 and r.params["d"] != 1.0
    assert r.epochs["dead"].tolist() == ["a, b, c", "a, b, c"]


def test_two_linear_collapses_to_a_line():
    r = train(Experiment(flavour="pytorch", model="two_linear", lr=0.01, epochs=3), XS, YS)
    p = r.params
    assert r.diagnostics.collapsed_line == (p["a"] * p["c"], p["c"] * p["b"] + p["d"])


def test_forward_difference_gap_matches_the_theory_h_times_curvature_over_two():
    r = train(Experiment(epochs=1), X, Y)  # basic: both gradients, h = 0.01
    assert r.diagnostics.grad_gap["b"] == pytest.approx(0.01, rel=1e-6)
    assert r.diagnostics.grad_gap["a"] == pytest.approx(0.01 * 99 ** 2, rel=1e-6)
    assert r.diagnostics.grad_gap_theory == pytest.approx({"a": 0.01 * 99 ** 2, "b": 0.01}, rel=1e-12)


@given(h=st.sampled_from([1e-1, 1e-2, 1e-3]), model=st.sampled_from(["linear", "two_linear", "mlp"]))
@settings(max_examples=12, deadline=None)
def test_numeric_gradients_converge_to_analytic(h, model):
    if model == "mlp":
        h = h / 100  # ReLU kinks: a difference across a kink is not a derivative; keep h below them
    exp = Experiment(flavour="pytorch", model=model, gradient="both", grad_method="central", grad_step=h, epochs=1)
    steps = train(exp, XS, YS).steps
    for q in train(exp, XS, YS).param_names:
        analytic, est = steps[f"de/d{q}"], steps[f"de/d{q} est"]
        # central differences: error O(h^2) (exact for the quadratic linear model), plus rounding
        assert np.all(np.abs(est - analytic) <= 10 * h * h * (1 + np.abs(analytic)) + 1e-6)


def test_numeric_gradient_can_drive_the_update():
    r = train(Experiment(flavour="pytorch", gradient="numeric", epochs=1), XS, YS)
    row = r.steps.iloc[0]
    assert row["new b"] == row["b"] + (-0.001) * row["de/db est"]


# --- sweeps and memory --------------------------------------------------------------------


@given(lrs=st.lists(st.floats(1e-4, 0.2), min_size=2, max_size=6),
       optimizer=st.sampled_from(["sgd", "adam", "rmsprop", "adagrad"]))
@settings(max_examples=10, deadline=None)
def test_a_sweep_equals_separate_runs(lrs, optimizer):
    exps = [Experiment(f"e{i}", flavour="pytorch", optimizer=optimizer, lr=lr, epochs=3) for i, lr in enumerate(lrs)]
    together = sweep(exps, XS, YS, keep_steps=True)
    for exp, res in zip(exps, together):
        alone = train(exp, XS, YS)
        assert res.params == alone.params
        assert res.steps.equals(alone.steps)
        assert res.epochs.equals(alone.epochs)


def test_sweep_mixes_structures_and_workbook_macros():
    exps = [Experiment("b"), Experiment("ann", optimizer="adam_ann"), Experiment("t", flavour="pytorch", lr=1e-5)]
    results = sweep(exps, X, Y)
    assert [r.experiment.name for r in results] == ["b", "ann", "t"]
    assert results[1].params == train(exps[1], X, Y).params
    assert all(r.steps.empty for r in results)  # sweeps keep epochs only unless asked


def test_keep_steps_false_keeps_no_rows():
    r = train(Experiment(flavour="pytorch", epochs=20), XS, YS, keep_steps=False)
    assert r.steps.empty and len(r.epochs) == 20
    assert r.params == train(Experiment(flavour="pytorch", epochs=20), XS, YS).params


def test_progress_is_reported():
    seen = []
    train(Experiment(flavour="pytorch", epochs=3), XS, YS, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1] == (87, 87)


def test_fastai_rmsprop_ignores_eps_as_fastai_does():
    """fastai.optimizer.RMSProp accepts eps but never passes it on; its step uses 1e-8."""
    exp = Experiment(flavour="fastai", optimizer="rmsprop", eps=1e-3, lr=0.01, epochs=1)
    assert exp.unused() == ["eps"]
    same = train(Experiment(flavour="fastai", optimizer="rmsprop", lr=0.01, epochs=1), XS, YS)
    assert train(exp, XS, YS).params == same.params


def test_a_sweeps_diagnostics_equal_separate_runs():
    """A sweep works its diagnostics out when they are first read: the same as train's."""
    exps = [Experiment("ok", flavour="pytorch", lr=1e-3), Experiment("blows", flavour="pytorch", lr=5.0),
            Experiment("relu", flavour="pytorch", model="two_relu", lr=0.02, init={"b": -5.0}),
            Experiment("gap", flavour="pytorch", gradient="both", lr=0.01)]
    together = sweep(exps, XS, YS, keep_steps=True)
    assert [bool(r.diagnostics.divergence) for r in together] == [False, True, False, False]
    assert together[2].diagnostics.dead_epochs and together[2].diagnostics.notes
    assert together[3].diagnostics.grad_gap and together[3].diagnostics.grad_gaps
    for exp, res in zip(exps, together):
        alone = train(exp, XS, YS, find_safe_lr=False)
        assert res.diagnostics.notes == alone.diagnostics.notes
        assert res.diagnostics.divergence == alone.diagnostics.divergence
        assert res.diagnostics.dead_epochs == alone.diagnostics.dead_epochs
        assert res.diagnostics.grad_gap == alone.diagnostics.grad_gap
        assert res.state.to_dict() == alone.state.to_dict()
        assert res.epochs.equals(alone.epochs) and res.steps.equals(alone.steps)
    import pickle

    fresh = sweep(exps, XS, YS)[1]  # nothing read yet: pickling works the lazy fields out
    back = pickle.loads(pickle.dumps(fresh))
    assert back.diagnostics.notes == fresh.diagnostics.notes and back.epochs.equals(fresh.epochs)


def test_a_sweep_builds_no_table_and_imports_no_pandas_until_a_table_is_read():
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        from sheetsync import Experiment, sweep
        x = [0.14, 0.86, 0.28, 0.51]
        results = sweep([Experiment(f"e{i}", flavour="pytorch", lr=0.01 * (i + 1)) for i in range(3)],
                        x, [2 * v + 0.3 for v in x])
        print([round(r.params["a"], 6) for r in results], "pandas" in sys.modules)
        print(len(results[0].epochs), "pandas" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0].endswith("False"), out
    assert out[1] == f"{Experiment().epochs} True", out


def test_an_updates_state_and_hyperparameters_come_from_its_cells():
    from sheetsync.engine.expr import sym
    from sheetsync.engine.optimizers import Update, build_update, prev

    g, p = sym("g"), sym("p")
    upd = Update([("m", prev("m") * sym("beta1") + g), ("new", p - sym("lr") * sym("m"))], {"m": 3.0})
    assert (upd.state, upd.hyper, upd.init) == (["m"], ["lr", "beta1"], {"m": 3.0})
    with pytest.raises(ValueError, match="unknown names: \\['betta'\\]"):
        Update([("new", p - sym("betta") * g)])
    adam = build_update(Experiment(flavour="pytorch", optimizer="adam", amsgrad=True, weight_decay=0.1))
    assert adam.state == ["m", "v", "vmax"]
    assert adam.hyper == ["lr", "weight_decay", "beta1", "beta2", "eps", "half"]  # half: no setting, last
    ann = build_update(Experiment(optimizer="adagrad_ann"))
    assert ann.macro_sets == {"lr": "lr (set by the annealing macro)"} and ann.macro_pastes == ("n",)
    assert build_update(Experiment(optimizer="eve")).macro_sets.keys() == {"eve_d"}


def test_replace_adds_to_init_and_with_init_replaces_it():
    e = Experiment("a", flavour="pytorch", optimizer="adam", lr=0.5, batch_size="all", init={"a": 2.0, "b": "3"})
    added = e.replace(lr=0.25, init={"b": 4.0})
    assert (added.lr, added.init, added.batch_size, added.optimizer) == (0.25, {"a": 2.0, "b": 4.0}, 0, "adam")
    only = e.with_init({"b": "5"})
    assert (only.name, only.lr, only.init, only.batch_size) == ("a", 0.5, {"b": 5.0}, 0)
    with pytest.raises(SettingError, match="init b"):
        e.with_init({"b": "five"})
