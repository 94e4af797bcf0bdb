"""The dot_product model in the fastai flavour equals fastai's optimizers to 1e-12 relative
after every step.

The reference numbers come from the real fastai 2.8.12 `SGD` (with and without mom, decoupled
and L2 weight decay), `RMSProp` (with and without mom, with wd) and `Adam` (defaults, custom,
L2) driving fastai's own `fastai.collab.EmbeddingDotBias` in float64 (with y_range (0, 5.5) and
without; and, for bias: false, the same forward without bias tables) per row, in batches of 7
and full batch: tests/reference/make_fastai_embedding_reference.py (its docstring says how it
was run) wrote tests/reference/fastai_embedding_reference.json. fastai itself is not needed to
run these tests. Compared: every steps row's pred and its table entries after the step, and the
final tables.

Run:  python -m pytest tests/engine/test_embedding_fastai.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from embed_torch import KEYS, steps_mismatches, tables_mismatches

REFERENCE = json.loads((Path(__file__).resolve().parents[1] / "reference" / "fastai_embedding_reference.json")
                       .read_text())
PROBLEMS = REFERENCE["problems"]
X, Y = np.array(REFERENCE["x"]), np.array(REFERENCE["y"])


def test_reference_was_made_by_fastai():
    made_with = REFERENCE["made_with"]
    assert made_with["fastai"] == "2.8.12" and made_with["dtype"] == "torch.float64"
    assert made_with["torchvision imported"] is False
    assert len(PROBLEMS) == 90 and {p["batch_size"] for p in PROBLEMS} == {1, 7, "all"}
    assert {p["fastai_call"].split("(")[0] for p in PROBLEMS} == {f"fastai.optimizer.{c}" for c in
                                                                  ("SGD", "RMSProp", "Adam")}
    assert sum(p["model"] == "fastai.collab.EmbeddingDotBias" for p in PROBLEMS) == 60


def ids():
    from sheetsync.engine.embeddings import Ids

    return Ids(tuple(f"user {u}" for u in range(REFERENCE["users"])), tuple(str(100 + i) for i in range(REFERENCE["items"])))


def init_of(problem: dict) -> dict[str, float]:
    the_ids, start = ids(), problem["start"]
    init = {}
    for u, name in enumerate(the_ids.user_names):
        init.update({f"u{name}_{f + 1}": v for f, v in enumerate(start["user_factors"][u])})
        if problem["bias"]:
            init[f"bu{name}"] = start["user_bias"][u]
    for i, name in enumerate(the_ids.item_names):
        init.update({f"m{name}_{f + 1}": v for f, v in enumerate(start["item_factors"][i])})
        if problem["bias"]:
            init[f"bm{name}"] = start["item_bias"][i]
    return init


def expected_steps(problem: dict) -> pd.DataFrame:
    """The reference's steps columns with the keys (epoch, step, row, user, item, y) laid out."""
    size = len(Y) if problem["batch_size"] == "all" else problem["batch_size"]
    keys, step = [], 0
    for epoch in range(1, problem["epochs"] + 1):
        for r in range(len(Y)):
            step += r % size == 0
            keys.append([epoch, step, r + 1, X[r, 0], X[r, 1], Y[r]])
    values = pd.DataFrame(problem["steps"], columns=problem["steps_columns"])
    return pd.concat([pd.DataFrame(keys, columns=KEYS), values], axis=1)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p["id"])
def test_every_step_matches_fastai_optimizer(problem: dict):
    from sheetsync import Experiment
    from sheetsync.engine import embeddings, train

    experiment = Experiment(problem["id"], model="dot_product", factors=REFERENCE["factors"], bias=problem["bias"],
                            y_range=problem["y_range"] and tuple(problem["y_range"]),
                            batch_size=problem["batch_size"], epochs=problem["epochs"], init=init_of(problem),
                            **problem["settings"])
    result = train(experiment, X, Y, ids=ids())
    label = f"{problem['id']} ({problem['fastai_call']})"
    tables = embeddings.tables_of(result)
    expected_final = [np.array(t) for t in problem["final"]]
    problems = steps_mismatches(result.steps, expected_steps(problem), label)
    problems += tables_mismatches([tables.user_factors, tables.item_factors, tables.user_bias, tables.item_bias],
                                  expected_final, label + " final tables")
    assert not problems, "\n".join(problems)
