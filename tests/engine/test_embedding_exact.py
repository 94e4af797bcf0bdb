"""The dot_product model in the pytorch flavour equals torch to 1e-12 relative after every step.

The reference (tests/engine/embed_torch.py) is fastai's EmbeddingDotBias forward on dense
float64 nn.Embedding tables (without the bias tables when bias is off, through sigmoid_range
with y_range), nn.MSELoss, torch.optim, rows in order. On seeded random ratings (9 users x 7
items, 40 ratings, so batches of 7 and the full batch hold several ratings of one user and of
one item), for every torch optimizer and its options (weight decay, dampening, nesterov,
lr_decay, centered, amsgrad, adamw) with batch sizes 1, 7 and all and with and without bias
and y_range (0, 5.5) (every option with each batch size and each structure, every optimizer
family with each pair of them: a cover of the product, SHEETSYNC_FULL_MATRIX=1 runs all of it),
sheetsync's steps table (every column of every row: the rows' table entries
before the step, pred, err, loss, gradients, new entries), its final tables
(`embeddings.tables_of`), `result.params` and the RMSE per epoch must agree with torch; and a
second Run continued from the first's state must equal one torch loop over both.

The first tests check the harness itself against arithmetic done by hand (one SGD step, a
batch with a repeated user, y_range's chain rule, Adam moving rows a batch did not touch).

Run:  python -m pytest tests/engine/test_embedding_exact.py -q
"""

from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from embed_torch import (Start, close, random_ratings, random_start, reference_run, step_columns, steps_mismatches,
                         tables_mismatches)
from exactness import greedy_cover, torch_family

N_USERS, N_ITEMS, N_RATINGS, FACTORS = 9, 7, 40, 3
Y_RANGE = (0.0, 5.5)
BATCHES = {"bs1": 1, "bs7": 7, "all": "all"}
MIN_STEPS = {"bs1": 80, "bs7": 36, "all": 30}  # 2 epochs, 6 epochs, 30 epochs


# ---------------------------------------------------------------------------------------------
# The harness against hand arithmetic.


def test_one_sgd_step_by_hand():
    start = Start(np.array([[0.5, -1.0]]), np.array([[2.0, 0.25]]), np.array([0.125]), np.array([-0.5]))
    ref = reference_run(np.array([[0, 0]]), np.array([3.0]), start, optimizer="sgd", hp={"lr": 0.1})
    row = ref.steps.iloc[0]
    pred = 0.5 * 2.0 + -1.0 * 0.25 + 0.125 - 0.5  # 0.375
    err = pred - 3.0
    assert (row.pred, row.err, row.loss) == (pred, err, err * err)
    assert (row["de/du1"], row["de/du2"], row["de/dm1"], row["de/dm2"]) == (2 * err * 2.0, 2 * err * 0.25,
                                                                            2 * err * 0.5, 2 * err * -1.0)
    assert row["de/dbu"] == row["de/dbm"] == 2 * err
    assert row["new u1"] == 0.5 - 0.1 * (2 * err * 2.0) and row["new m2"] == 0.25 - 0.1 * (2 * err * -1.0)
    assert row["new bu"] == 0.125 - 0.1 * 2 * err
    assert ref.final[0][0, 0] == row["new u1"]
    assert list(ref.steps.columns) == step_columns(2, True)


def test_a_batch_adds_a_repeated_users_rows_into_its_gradient():
    start = Start(np.array([[1.0], [2.0]]), np.array([[0.5], [-1.0], [3.0]]))
    x = np.array([[0, 0], [1, 1], [0, 2]])  # user 0 twice in one batch
    y = np.array([1.0, 2.0, 4.0])
    ref = reference_run(x, y, start, optimizer="sgd", hp={"lr": 0.01}, batch_size=0)
    errs = [1.0 * 0.5 - 1.0, 2.0 * -1.0 - 2.0, 1.0 * 3.0 - 4.0]
    shares = [2 / 3 * e * m for e, m in zip(errs, (0.5, -1.0, 3.0))]
    assert ref.steps["de/du1"].tolist() == shares
    assert ref.final[0][0, 0] == 1.0 - 0.01 * (shares[0] + shares[2])
    assert ref.steps["new u1"].tolist() == [ref.final[0][0, 0], ref.final[0][1, 0], ref.final[0][0, 0]]
    assert ref.step_loss == [sum(e * e for e in errs) / 3]


def test_y_range_is_fastais_sigmoid_range_with_its_chain_rule():
    start = Start(np.array([[0.3]]), np.array([[0.7]]), np.array([0.1]), np.array([0.2]))
    ref = reference_run(np.array([[0, 0]]), np.array([4.0]), start, hp={"lr": 0.1}, y_range=Y_RANGE)
    row = ref.steps.iloc[0]
    res = 0.3 * 0.7 + 0.1 + 0.2
    s = 1 / (1 + math.exp(-res))
    assert row.pred == s * 5.5 + 0.0
    g_res = 2 * (row.pred - 4.0) * 5.5 * (1 - s) * s
    assert close(row["de/du1"], g_res * 0.7) and close(row["de/dbu"], g_res)


def test_dense_adam_moves_rows_a_step_did_not_touch():
    start = Start(np.array([[1.0], [2.0]]), np.array([[0.5]]))
    ref = reference_run(np.array([[0, 0], [0, 0]]), np.array([1.0, 1.0]), start, optimizer="adam", hp={"lr": 0.1})
    assert ref.tables[0][0][1, 0] == 2.0  # user 1: gradient 0 and no state yet
    user0 = [t[0][0, 0] for t in ref.tables]
    assert user0[1] != user0[0]
    sgd = reference_run(np.array([[0, 0], [1, 0]]), np.array([1.0, 1.0]), start, optimizer="adam", hp={"lr": 0.1})
    # Step 2 touches user 1 only; Adam's first moment still moves user 0 (a sparse update would not).
    assert sgd.tables[1][0][0, 0] != sgd.tables[0][0][0, 0]


# ---------------------------------------------------------------------------------------------
# sheetsync against torch: the matrix.


def log_uniform(rng, low, high):
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _draw(optimizer, **options):
    """A configuration: rng -> sheetsync settings (torch_runs.torch_optimizer maps them to torch)."""
    def draw(rng):
        hp = {"optimizer": optimizer}
        hp["lr"] = log_uniform(rng, *{"sgd": (0.02, 0.1), "momentum": (0.01, 0.05), "nesterov": (0.01, 0.05),
                                      "adagrad": (0.05, 0.3), "rmsprop": (2e-3, 1e-2), "adam": (5e-3, 3e-2),
                                      "adamw": (5e-3, 3e-2)}[optimizer])
        if "momentum" in options:
            hp["momentum"] = float(rng.uniform(0.3, 0.9))
        for name in ("dampening",):
            if name in options:
                hp[name] = float(rng.uniform(0.05, 0.9))
        if "weight_decay" in options:
            hp["weight_decay"] = log_uniform(rng, 1e-3, 0.1)
        if "eps" in options:
            hp["eps"] = log_uniform(rng, 1e-10, 1e-6)
        if "lr_decay" in options:
            hp["lr_decay"] = log_uniform(rng, 1e-3, 0.1)
        if "initial_accumulator_value" in options:
            hp["initial_accumulator_value"] = float(rng.uniform(0.01, 1.0))
        if "alpha" in options:
            hp["alpha"] = float(rng.uniform(0.8, 0.99))
        if "betas" in options:
            hp.update(beta1=float(rng.uniform(0.5, 0.95)), beta2=float(rng.uniform(0.9, 0.9999)))
        for flag in ("nesterov", "centered", "amsgrad"):
            if flag in options:
                hp[flag] = True
        return hp
    return draw


CONFIGS = {
    "sgd": _draw("sgd"),
    "sgd_weight_decay": _draw("sgd", weight_decay=1),
    "sgd_momentum_dampening_weight_decay": _draw("sgd", momentum=1, dampening=1, weight_decay=1),
    "momentum": _draw("momentum"),
    "nesterov_weight_decay": _draw("nesterov", momentum=1, nesterov=1, weight_decay=1),
    "adagrad_all_options": _draw("adagrad", lr_decay=1, initial_accumulator_value=1, weight_decay=1, eps=1),
    "rmsprop": _draw("rmsprop", alpha=1),
    "rmsprop_centered_momentum_weight_decay_eps": _draw("rmsprop", alpha=1, centered=1, momentum=1,
                                                        weight_decay=1, eps=1),
    "adam": _draw("adam", betas=1, eps=1),
    "adam_amsgrad_weight_decay": _draw("adam", betas=1, amsgrad=1, weight_decay=1),
    "adamw": _draw("adamw", betas=1, weight_decay=1),
    "adamw_amsgrad": _draw("adamw", betas=1, amsgrad=1, weight_decay=1),
}
STRUCTURES = {"bias-yrange": (True, Y_RANGE), "bias": (True, None), "nobias-yrange": (False, Y_RANGE),
              "nobias": (False, None)}


@dataclass(frozen=True)
class Case:
    config: str
    batch: str
    structure: str

    def __str__(self) -> str:
        return f"{self.config}-{self.batch}-{self.structure}"

    @property
    def bias(self) -> bool:
        return STRUCTURES[self.structure][0]

    @property
    def y_range(self):
        return STRUCTURES[self.structure][1]

    @property
    def batch_size(self) -> int:
        return 0 if BATCHES[self.batch] == "all" else BATCHES[self.batch]

    @property
    def epochs(self) -> int:
        per_epoch = math.ceil(N_RATINGS / (self.batch_size or N_RATINGS))
        return math.ceil(MIN_STEPS[self.batch] / per_epoch)


def ratings() -> tuple[np.ndarray, np.ndarray]:
    return random_ratings(np.random.default_rng(zlib.crc32(b"embedding ratings")), N_USERS, N_ITEMS, N_RATINGS)


def test_the_ratings_put_a_user_twice_into_batches():
    x, _ = ratings()
    for size in (7, N_RATINGS):
        repeats = [len(b) - len(set(b)) for b in (x[i:i + size, 0].tolist() for i in range(0, N_RATINGS, size))]
        assert max(repeats) >= 2, size
    assert len(set(x[:, 0])) == N_USERS and len(set(x[:, 1])) == N_ITEMS


def stable_reference(case: Case):
    """Hyperparameters, start tables and torch's run; lr shrinks until torch stays in a sane range."""
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))
    hp = CONFIGS[case.config](rng)
    start = random_start(rng, N_USERS, N_ITEMS, FACTORS, case.bias)
    x, y = ratings()
    for _ in range(10):
        with np.errstate(all="ignore"):  # a diverging draw overflows before it is retried
            ref = reference_run(x, y, start, optimizer=hp["optimizer"],
                                hp={k: v for k, v in hp.items() if k != "optimizer"}, y_range=case.y_range,
                                batch_size=case.batch_size, epochs=case.epochs)
        if all(np.isfinite(t).all() and np.abs(t).max() < 1e3 for t in ref.final):
            return hp, start, ref
        hp["lr"] /= 4
    raise AssertionError(f"{case}: no stable lr for the torch reference")


def ids():
    from sheetsync.engine.embeddings import Ids

    return Ids(tuple(str(11 + u) for u in range(N_USERS)), tuple(f"film {i}" for i in range(N_ITEMS)))


def start_init(start: Start) -> dict[str, float]:
    """The start tables as experiment.init, by sheetsync's parameter names."""
    the_ids = ids()
    init = {}
    for u, name in enumerate(the_ids.user_names):
        init.update({f"u{name}_{f + 1}": float(v) for f, v in enumerate(start.user_factors[u])})
        if start.bias:
            init[f"bu{name}"] = float(start.user_bias[u])
    for i, name in enumerate(the_ids.item_names):
        init.update({f"m{name}_{f + 1}": float(v) for f, v in enumerate(start.item_factors[i])})
        if start.bias:
            init[f"bm{name}"] = float(start.item_bias[i])
    return init


def run_sheetsync(case: Case, hp: dict, start: Start, flavour: str = "pytorch"):
    from sheetsync import Experiment
    from sheetsync.engine import train

    x, y = ratings()
    experiment = Experiment(str(case), flavour=flavour, model="dot_product", factors=FACTORS, bias=case.bias,
                            y_range=case.y_range, batch_size=case.batch_size or "all", epochs=case.epochs,
                            init=start_init(start), **hp)
    return train(experiment, x, y, ids=ids())


def final_mismatches(result, ref, start: Start, label: str) -> list[str]:
    """The final tables, result.params by name, and the RMSE at the start and after each epoch."""
    from sheetsync.engine import embeddings

    problems = tables_mismatches(_tables_tuple(embeddings.tables_of(result)), ref.final, label + " final tables")
    problems += tables_mismatches(_tables_tuple(embeddings.start_tables(result)),
                                  [t for t in (start.user_factors, start.item_factors, start.user_bias,
                                               start.item_bias) if t is not None], label + " start tables")
    names = list(start_init(start))
    expected = embeddings.Tables.from_params(ids(), result.params, FACTORS, start.bias)
    problems += tables_mismatches(_tables_tuple(expected), ref.final, label + " result.params")
    assert len(result.params) == len(names), f"{label}: {len(result.params)} params, expected {len(names)}"
    rmse = result.epochs["rmse"].to_numpy(dtype=np.float64)
    if rmse.shape != (len(ref.epoch_rmse),) or not close(rmse, ref.epoch_rmse).all():
        problems.append(f"{label}: rmse per epoch {rmse.tolist()} vs reference {ref.epoch_rmse}")
    if not close(embeddings.start_rmse(result), ref.start_rmse):
        problems.append(f"{label}: start rmse {embeddings.start_rmse(result)!r} vs reference {ref.start_rmse!r}")
    return problems


def _tables_tuple(tables) -> list:
    return [tables.user_factors, tables.item_factors, tables.user_bias, tables.item_bias]


def family(config: str) -> str:
    """The torch optimizer a configuration runs (read from what it draws: no list to keep)."""
    return torch_family(CONFIGS[config](np.random.default_rng(0)))


def features(case: Case) -> set:
    """What a case checks: its configuration with its batch size and with its structure, and its
    optimizer family with its batch size and structure together."""
    return {("config, batch", case.config, case.batch), ("config, structure", case.config, case.structure),
            ("family, batch, structure", family(case.config), case.batch, case.structure)}


# Every configuration x batch size x structure would be 144 cases; the cover runs 84. Why that
# keeps the guarantee: an update's cells read only an entry's gradient, its state and the
# hyperparameters, not which structure (bias, y_range) or batch size made the gradient; so
# every option meets every batch size (rows a batch leaves untouched, a user twice in one batch)
# and every structure, and every optimizer family meets every batch size with every structure.
FULL_PRODUCT = [Case(config, batch, structure) for config in CONFIGS for batch in BATCHES for structure in STRUCTURES]
CASES = FULL_PRODUCT if os.environ.get("SHEETSYNC_FULL_MATRIX") else greedy_cover(FULL_PRODUCT, features)


def test_the_cases_cover_every_pair_and_every_family_batch_and_structure():
    every = set().union(*(features(c) for c in FULL_PRODUCT))
    chosen = greedy_cover(FULL_PRODUCT, features)
    assert set().union(*(features(c) for c in chosen)) == every
    assert {family(c) for c in CONFIGS} == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"}
    assert {c.config for c in chosen} == set(CONFIGS)
    assert len(chosen) < len(FULL_PRODUCT) * 2 // 3


@pytest.mark.parametrize("case", CASES, ids=str)
def test_every_step_matches_torch(case: Case):
    hp, start, ref = stable_reference(case)
    assert len(ref.tables) >= MIN_STEPS[case.batch]
    result = run_sheetsync(case, hp, start)
    label = f"{case} {hp}"
    problems = steps_mismatches(result.steps, ref.steps, label) + final_mismatches(result, ref, start, label)
    assert not problems, "\n".join(problems)


def test_steps_columns_are_the_contracts_in_order():
    case = Case("sgd", "bs7", "bias-yrange")
    hp, start, ref = stable_reference(case)
    assert list(run_sheetsync(case, hp, start).steps.columns) == list(ref.steps.columns)
    case = Case("sgd", "bs1", "nobias")
    hp, start, ref = stable_reference(case)
    assert list(run_sheetsync(case, hp, start).steps.columns) == list(ref.steps.columns)


@pytest.mark.parametrize("config", ["adam_amsgrad_weight_decay", "rmsprop_centered_momentum_weight_decay_eps",
                                    "sgd_momentum_dampening_weight_decay"])
def test_a_second_run_continues_like_one_torch_loop(config: str):
    """Run 1 (one epoch), then Run 2 from its state (one more) = one torch loop of two epochs:
    the optimizer state of every table entry carries over."""
    from sheetsync import Experiment
    from sheetsync.engine import embeddings, train

    case = Case(config, "bs7", "bias-yrange")
    hp, start, _ = stable_reference(case)
    x, y = ratings()
    ref = reference_run(x, y, start, optimizer=hp["optimizer"], hp={k: v for k, v in hp.items() if k != "optimizer"},
                        y_range=Y_RANGE, batch_size=7, epochs=2)
    settings = dict(flavour="pytorch", model="dot_product", factors=FACTORS, bias=True, y_range=Y_RANGE,
                    batch_size=7, epochs=1, init=start_init(start), **hp)
    first = train(Experiment("run 1", **settings), x, y, ids=ids())
    second = train(Experiment("run 2", **settings), x, y, state=first.state, ids=ids())
    ours = pd.concat([first.steps, second.steps], ignore_index=True)  # epochs and steps number on
    problems = steps_mismatches(ours, ref.steps, f"{config} continued")
    problems += tables_mismatches(_tables_tuple(embeddings.tables_of(second)), ref.final, f"{config} continued")
    assert not problems, "\n".join(problems)
