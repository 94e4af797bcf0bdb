"""The fastai flavour equals fastai.optimizer to 1e-12 relative after every step.

The reference numbers come from the real fastai 2.8.12 `SGD`, `RMSProp` and `Adam`, run by
tests/reference/make_fastai_reference.py (its docstring says how, and with which versions) and
checked in as tests/reference/fastai_reference.json: 77 problems (every model, per row and in
mini-batches of 4, 200+ steps each). fastai itself is not needed to run these tests.

Run:  python -m pytest tests/engine/test_fastai_exact.py -q
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

REFERENCE = json.loads((HERE.parent / "reference" / "fastai_reference.json").read_text())
PROBLEMS = REFERENCE["problems"]


def run_sheetsync(problem: dict):
    settings = dict(problem["settings"])
    if problem["hidden"] is not None:
        settings["hidden"] = problem["hidden"]
    experiment = Experiment(problem["id"], init=problem["init"], model=problem["model"], loss=problem["loss"],
                            batch_size=problem["batch_size"], epochs=problem["epochs"], **settings)
    return train(experiment, np.array(problem["x"]), np.array(problem["y"]))


def test_reference_was_made_by_fastai_without_torchvision():
    made_with = REFERENCE["made_with"]
    assert made_with["fastai"] == "2.8.12"
    assert made_with["torchvision imported"] is False
    assert made_with["dtype"] == "torch.float64"
    assert len(PROBLEMS) >= 70 and all(len(p["trajectory"]) >= 200 for p in PROBLEMS)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p["id"])
def test_every_step_matches_fastai_optimizer(problem: dict):
    names = problem["param_names"]
    result = run_sheetsync(problem)
    assert sorted(result.param_names) == sorted(names)
    ours = sheetsync_trajectory(result, names)
    expected = np.array(problem["trajectory"], dtype=np.float64)
    assert_trajectory_close(ours, expected, names, [problem["init"][n] for n in names],
                            label=f"{problem['id']} ({problem['fastai_call']})")
