"""Classifier heads and losses: hand-checkable values, gradients, settings, labels, accuracy.

Exactness against torch is tests/engine/test_classification_exact.py; this file checks the
pieces a learner can verify by hand, and that the two loop backends agree bit for bit.

Run:  python -m pytest tests/engine/test_classification.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from sheetsync import Experiment
from sheetsync.engine import train
from sheetsync.engine.expr import evaluate
from sheetsync.engine.losses import Loss
from sheetsync.engine.models import build_model
from sheetsync.errors import SettingError


def row(model_name: str, loss: Loss, inputs: dict, params: dict, y: float, **kw) -> dict:
    """Every cell of one row, evaluated in plain Python by the model's own expressions."""
    model = build_model(model_name, len(inputs), **kw)
    env = {**inputs, **params, "y": y}
    for name, e in model.row_cells(loss):
        env[name] = evaluate(e, env)
    return env


def ulps(a: float, b: float) -> float:
    return abs(a - b) / math.ulp(b)


# ---------------------------------------------------------------------------------------------
# Values a learner can check by hand (issue 14)


def test_bce_at_one_half():
    """z = 0 is p = 0.5: BCE(y=1) = ln 2 in base e, log10(2) in base 10."""
    cells = row("logistic", Loss("bce"), {"x": 1.0}, {"a": 0.0, "b": 0.0}, 1.0)
    assert cells["p"] == 0.5
    assert cells["loss"] == 0.69314718055994531
    ten = row("logistic", Loss("bce", log_base="10"), {"x": 1.0}, {"a": 0.0, "b": 0.0}, 1.0)["loss"]
    # base 10 is the natural loss / ln 10, as torch users write it: within an ulp of LOG(2)
    assert ulps(ten, 0.30102999566398120) <= 1


def test_focal_at_one_half():
    """γ = 2 at p_t = 0.5: ln 2 · (1 - 0.5)² = 0.17328679513998632 (base e)."""
    cells = row("logistic", Loss("focal", gamma=2.0), {"x": 1.0}, {"a": 0.0, "b": 0.0}, 0.0)
    assert cells["loss"] == 0.17328679513998632
    # α weights y = 1 by α, y = 0 by 1 - α
    weighted = row("logistic", Loss("focal", gamma=2.0, alpha=0.25), {"x": 1.0}, {"a": 0.0, "b": 0.0}, 0.0)
    assert weighted["loss"] == 0.75 * 0.17328679513998632


def test_cross_entropy_uniform():
    """Equal logits over K classes: p_k = 1/K and the loss is ln K whatever the label."""
    params = {"a1": 0.3, "a2": 0.3, "a3": 0.3, "b1": 0.1, "b2": 0.1, "b3": 0.1}
    cells = row("softmax", Loss("cross_entropy"), {"x": 2.0}, params, 2.0, classes=3)
    assert cells["loss"] == pytest.approx(math.log(3), rel=1e-15)
    assert [cells[f"p{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 3] * 3, rel=1e-15)
    assert cells["pred"] == 0.0  # a tie goes to the first class, as torch.argmax


def test_softmax_predicts_the_largest_logit():
    params = {"a1": 0.0, "a2": 0.0, "a3": 0.0, "b1": 0.1, "b2": 2.0, "b3": -1.0}
    cells = row("softmax", Loss("cross_entropy"), {"x": 1.0}, params, 1.0, classes=3)
    assert cells["pred"] == 1.0 and cells["err"] == 0.0 and cells["correct"] == 1.0
    assert cells["loss"] == pytest.approx(-math.log(math.exp(2.0) / (math.exp(0.1) + math.exp(2.0) + math.exp(-1.0))))


# ---------------------------------------------------------------------------------------------
# Gradients: the analytic cells agree with a central difference of the loss cell


GRADIENT_CASES = [
    ("logistic", Loss("bce"), {}, 1.0),
    ("logistic", Loss("bce", log_base="10"), {}, 0.0),
    ("logistic", Loss("focal", gamma=2.0), {}, 1.0),
    ("logistic", Loss("focal", gamma=0.5, alpha=0.3), {}, 0.0),
    ("logistic", Loss("squared"), {}, 1.0),
    ("softmax", Loss("cross_entropy"), {"classes": 3}, 2.0),
    ("softmax", Loss("cross_entropy", log_base="10"), {"classes": 4}, 0.0),
    ("mlp", Loss("bce"), {"hidden": 3, "output": "sigmoid"}, 1.0),
    ("mlp", Loss("cross_entropy"), {"hidden": 3, "output": "softmax", "classes": 3}, 1.0),
]


@pytest.mark.parametrize("name,loss,kw,y", GRADIENT_CASES, ids=lambda v: str(v))
def test_gradients_match_a_difference(name, loss, kw, y):
    model = build_model(name, 2, **kw)
    rng = np.random.default_rng(7)
    params = {q: float(rng.normal(0, 0.8)) for q in model.params}
    inputs = {"x1": 0.7, "x2": -1.3}
    cells = row(name, loss, inputs, params, y, **kw)
    for q in model.params:
        h = 1e-6
        up = row(name, loss, inputs, {**params, q: params[q] + h}, y, **kw)["loss"]
        down = row(name, loss, inputs, {**params, q: params[q] - h}, y, **kw)["loss"]
        assert cells[f"de/d{q}"] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9), q


# ---------------------------------------------------------------------------------------------
# Settings and labels


def test_default_losses_follow_the_model():
    assert Experiment(model="logistic").loss == "bce"
    assert Experiment(model="softmax").loss == "cross_entropy"
    assert Experiment(model="mlp", output="softmax").loss == "cross_entropy"
    assert Experiment(model="mlp").loss == "squared"


@pytest.mark.parametrize("settings,setting", [
    ({"model": "softmax", "loss": "bce"}, "loss"),
    ({"model": "linear", "loss": "cross_entropy"}, "loss"),
    ({"model": "logistic", "output": "softmax"}, "output"),
    ({"model": "logistic", "log_base": "2"}, "log_base"),
    ({"model": "logistic", "loss": "focal", "focal_alpha": 1.5}, "focal_alpha"),
])
def test_settings_refused(settings, setting):
    with pytest.raises(SettingError) as e:
        Experiment(**settings)
    assert e.value.setting == setting


def test_labels_are_checked():
    x = np.linspace(-1, 1, 10)
    with pytest.raises(SettingError, match="data row 4: logistic with loss bce expects y = 0 or 1, found 0.5"):
        train(Experiment(model="logistic"), x, np.array([0, 1, 0, 0.5, 1, 0, 1, 0, 1, 1.0]))
    with pytest.raises(SettingError, match="data row 2: .*3 classes expects y = a class 0 to 2.*found 3"):
        train(Experiment(model="softmax", classes=3), x, np.array([0, 3, 0, 1, 1, 2, 1, 0, 1, 1.0]))


# ---------------------------------------------------------------------------------------------
# Training: accuracy per epoch, the confusion table, the steps columns


def blobs(k: int, n: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centres = np.array([[np.cos(2 * np.pi * c / k), np.sin(2 * np.pi * c / k)] for c in range(k)]) * 2
    return centres[y] + rng.normal(0, 0.4, (n, 2)), y.astype(float)


def test_softmax_trains_with_accuracy_and_confusion():
    x, y = blobs(3)
    r = train(Experiment(model="softmax", flavour="pytorch", optimizer="adam", lr=0.1, epochs=30, batch_size=4), x, y)
    cols = list(r.steps.columns)
    assert cols[cols.index("b3") + 1: cols.index("loss") + 1] == ["z1", "z2", "z3", "p1", "p2", "p3", "pred", "err", "loss"]
    # accuracy = the rows predicted right as the epoch met them, from the loop's own count
    first = r.steps[r.steps["epoch"] == 1]
    assert r.epochs["accuracy"].iloc[0] == (first["pred"] == first["y"]).mean()
    assert r.epochs["accuracy"].iloc[-1] == 1.0
    assert r.classes == ["0", "1", "2"]
    assert r.confusion.tolist() == [[10, 0, 0], [0, 10, 0], [0, 0, 10]]


def test_logistic_steps_columns_and_loss():
    x, y = blobs(2)
    r = train(Experiment(model="logistic", flavour="pytorch", lr=0.5, epochs=3), x, y)
    s = r.steps
    assert {"z", "p", "pred"} <= set(s.columns)
    assert (s["p"] == s["pred"]).all()
    z = s["a1"] * s["x1"] + s["a2"] * s["x2"] + s["b"]
    assert np.array_equal(s["z"], z)
    expected = np.where(s["y"] == 1, -np.log(s["p"]), -np.log1p(-s["p"]))
    np.testing.assert_allclose(s["loss"], expected, rtol=1e-12)
    assert r.confusion.sum() == len(y)


@pytest.mark.parametrize("settings", [
    {"model": "logistic", "loss": "bce", "batch_size": 4, "log_base": "10"},
    {"model": "logistic", "loss": "focal", "focal_alpha": 0.25, "batch_size": 7},
    {"model": "softmax", "batch_size": 4, "classes": 3},
    {"model": "mlp", "output": "softmax", "hidden": 2, "classes": 3},
], ids=lambda s: "-".join(str(v) for v in s.values()))
def test_c_and_numba_loops_agree_bit_for_bit(settings, monkeypatch):
    x, y = blobs(settings.get("classes", 2))
    e = Experiment(flavour="pytorch", optimizer="adam", lr=0.05, epochs=3, **settings)
    monkeypatch.setenv("SHEETSYNC_KERNEL", "c")
    c = train(e, x, y).steps
    monkeypatch.setenv("SHEETSYNC_KERNEL", "numba")
    nb = train(e, x, y).steps
    assert c.shape == nb.shape
    np.testing.assert_array_equal(c.to_numpy(), nb.to_numpy())


# ---------------------------------------------------------------------------------------------
# The diagnosis speaks classification (engine/explain_classify.py)


def test_saturated_logits_and_log_of_zero_are_said():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 2)) * 10
    y = (x[:, 0] > 0).astype(float)
    r = train(Experiment(model="logistic", flavour="pytorch", lr=5.0, epochs=5), x, y)
    notes = " ".join(r.diagnostics.notes)
    s = r.steps
    first = int(np.flatnonzero(np.abs(s["z"].to_numpy()) >= 20)[0])
    assert f"Saturated logits: from step {s['step'].iat[first]} (data row {s['row'].iat[first]})" in notes
    zero = int(np.flatnonzero(((s["p"] == 0) | (s["p"] == 1)).to_numpy())[0])
    assert f"Log of 0 avoided: at step {s['step'].iat[zero]} " in notes
    assert np.isfinite(s["loss"]).all()


def test_a_class_never_predicted_is_said():
    x, y = blobs(3)
    init = {"b1": 5.0, "b2": 0.0, "b3": -5.0}
    r = train(Experiment(model="softmax", flavour="pytorch", lr=1e-4, epochs=1, init=init), x, y)
    assert r.confusion.tolist() == [[10, 0, 0]] * 3  # the biases outvote the weights at this lr
    assert "Never predicted: classes 1 (10 rows), 2 (10 rows) are predicted for no data row" in r.diagnostics.notes[-1]


@pytest.mark.parametrize("settings", [{"model": "logistic", "loss": "focal"}, {"model": "softmax"}],
                         ids=lambda s: s["model"])
def test_a_diverged_classifier_is_explained_not_crashed(settings):
    x, y = blobs(3 if settings["model"] == "softmax" else 2)
    r = train(Experiment(flavour="pytorch", optimizer="sgd", lr=1e12, epochs=2, **settings), x * 1e3, y)
    assert r.diagnostics.divergence is not None
    assert r.diagnostics.story[0].startswith("Diverged at epoch 1")


def test_a_classifier_setting_that_changes_the_loop_changes_the_grouping_key():
    """The classifier settings (output, loss, log_base, gamma, focal_alpha, classes) reach the
    Spec's key whenever they change the generated loop (test_loop_structure.py's rule)."""
    from sheetsync.engine.loop import numba_printer, program
    from sheetsync.engine.train import prepare, structure

    x, y2 = blobs(2)
    _, y3 = blobs(3)
    probes = {"output": ["linear", "sigmoid", "softmax"], "loss": ["bce", "focal", "squared", "cross_entropy"],
              "log_base": ["e", "10"], "gamma": [0.0, 0.5, 2.0, 3.0], "focal_alpha": [None, 0.25, 0.5],
              "classes": [0, 3, 4]}
    bases = [({"model": "logistic", "loss": "focal"}, y2), ({"model": "softmax"}, y3),
             ({"model": "mlp", "output": "sigmoid", "loss": "focal"}, y2), ({"model": "mlp", "output": "softmax"}, y3)]
    differed = 0
    for base, y in bases:
        job = prepare(Experiment(flavour="pytorch", batch_size=4, **base), x, y)
        text = numba_printer.source(program.build(job.spec))
        for name, values in probes.items():
            for value in values:
                try:
                    other = prepare(Experiment(flavour="pytorch", batch_size=4, **{**base, name: value}), x, y)
                except SettingError:
                    continue
                changed = numba_printer.source(program.build(other.spec)) != text
                assert not changed or structure(other) != structure(job), (base, name, value)
                differed += changed
    assert differed >= 12


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "rmsprop", "adam", "adam_ann", "adagrad", "eve",
                                       "adagrad_ann"])
def test_the_graddesc_flavour_trains_classifiers_with_its_own_optimizers(optimizer):
    """The workbook's optimizers (and their macros) drive the classifier cells unchanged: the
    gradient columns are the loss's, the updates the workbook's (its eps-less rmsprop, ...)."""
    x, y2 = blobs(2)
    _, y3 = blobs(3)
    lr = {"sgd": 0.05, "momentum": 0.05, "adagrad": 0.5, "adagrad_ann": 0.5}.get(optimizer, 0.01)
    for settings, y in (({"model": "logistic"}, y2), ({"model": "logistic", "loss": "focal"}, y2),
                        ({"model": "softmax"}, y3)):
        r = train(Experiment(optimizer=optimizer, lr=lr, epochs=4, **settings), x, y)
        assert r.experiment.flavour == "graddesc" and r.diagnostics.divergence is None
        losses = r.epochs["loss"].to_numpy()
        assert np.isfinite(losses).all(), (settings, losses)
        if settings["model"] == "logistic":  # (softmax on these cycling labels: the annealing
            assert losses[-1] < losses[0], (settings, losses)  # macros need more than 4 epochs)
        # each step's update reads the row's own analytic gradient
        s = r.steps
        q = r.param_names[0]
        assert np.isfinite(s[f"de/d{q}"]).all()


def test_the_result_says_which_log_base_the_loss_uses():
    x, y = blobs(2)
    ten = train(Experiment(model="logistic", log_base="10", epochs=1), x, y).details["loss"]
    assert ten.startswith("binary cross-entropy") and "base-10 log (LOG" in ten
    e = train(Experiment(model="logistic", loss="focal", focal_alpha=0.25, epochs=1), x, y).details["loss"]
    assert e == "focal loss (γ = 2, α = 0.25), natural log (LN); mean over the batch"
