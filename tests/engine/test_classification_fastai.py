"""Classifiers in the fastai flavour equal fastai.optimizer to 1e-12 relative after every step.

The reference numbers come from the real fastai 2.8.12 `SGD`, `RMSProp` and `Adam` driving
torch modules with the torch losses (bce, focal, base-10 bce, cross_entropy), per row, in
batches of 4 and full batch: tests/reference/make_fastai_classify_reference.py (its docstring
says how it was run) wrote tests/reference/fastai_classify_reference.json. fastai itself is not
needed to run these tests.

Run:  python -m pytest tests/engine/test_classification_fastai.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exactness import assert_trajectory_close, sheetsync_trajectory

from sheetsync import Experiment
from sheetsync.engine import train

HERE = Path(__file__).resolve().parent

REFERENCE = json.loads((HERE.parent / "reference" / "fastai_classify_reference.json").read_text())
PROBLEMS = REFERENCE["problems"]


def test_reference_was_made_by_fastai():
    made_with = REFERENCE["made_with"]
    assert made_with["fastai"] == "2.8.12" and made_with["dtype"] == "torch.float64"
    assert made_with["torchvision imported"] is False
    assert len(PROBLEMS) >= 70 and all(len(p["trajectory"]) >= 300 for p in PROBLEMS)
    assert {p["loss"] for p in PROBLEMS} == {"bce", "focal", "cross_entropy"}


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p["id"])
def test_every_step_matches_fastai_optimizer(problem: dict):
    names = problem["param_names"]
    e = Experiment(problem["id"], init=problem["init"], model=problem["model"], loss=problem["loss"],
                   batch_size=problem["batch_size"], epochs=problem["epochs"], **problem["settings"])
    result = train(e, np.array(problem["x"]), np.array(problem["y"]))
    assert sorted(result.param_names) == sorted(names)
    expected = np.array(problem["trajectory"], dtype=np.float64)
    assert_trajectory_close(sheetsync_trajectory(result, names), expected, names,
                            [problem["init"][n] for n in names], label=f"{problem['id']} ({problem['fastai_call']})")
