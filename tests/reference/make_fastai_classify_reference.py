"""Generate tests/reference/fastai_classify_reference.json: classifier trajectories from the real
fastai.optimizer (SGD, SGD with mom, RMSProp, Adam with defaults / custom / L2 weight decay).

The models and losses are tests/reference/torch_classify.py's (nn.Linear in float64 with
F.binary_cross_entropy_with_logits, torchvision's focal loss written out, F.cross_entropy); the
optimizer is fastai's, with the same random hyperparameter draws as make_fastai_reference.py
(its `CONFIGS`). Problems: a logistic regression on 2 inputs with bce, focal and base-10 bce, and a
softmax regression over 3 classes; per row, in batches of 4 and full batch; 300+ steps each.

fastai is installed as make_fastai_reference.py's docstring says (a throw-away virtualenv that
sees the system torch; fastai 2.8.12 without its declared torchvision):

    python -m venv --system-site-packages /tmp/fastai-venv
    /tmp/fastai-venv/bin/pip install matplotlib scipy pillow "plum-dispatch<2.10"
    /tmp/fastai-venv/bin/pip install --no-deps fastai==2.8.12 fastcore==2.2.41 \
        fastprogress==1.0.3 fasttransform==0.0.5
    /tmp/fastai-venv/bin/python tests/reference/make_fastai_classify_reference.py

Rerunning it rewrites the JSON with identical numbers. tests/engine/test_classification_fastai.py
compares sheetsync with it (fastai is not needed for that).
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_fastai_reference as mfr  # noqa: E402  (imports fastai.optimizer)
from torch_classify import build, trajectory  # noqa: E402

OUTPUT = HERE / "fastai_classify_reference.json"
N_ROWS = 26
MIN_STEPS = 300
CONFIGS = [mfr.sgd, mfr.sgd_mom, mfr.rmsprop, mfr.adam_defaults, mfr.adam_custom, mfr.adam_l2]


@dataclass(frozen=True)
class Problem:
    name: str
    model: str
    loss: str
    classes: int = 2
    extra: tuple = ()  # sheetsync settings beyond model and loss

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(f"fastai classify {self.name}".encode()))
        x = rng.uniform(-2.0, 2.0, size=(N_ROWS, 2))
        score = x @ np.array([1.0, -0.5]) + rng.normal(0, 0.8, N_ROWS)
        if self.classes == 2:
            return x, (score > 0).astype(float)
        cuts = np.quantile(score, np.linspace(0, 1, self.classes + 1)[1:-1])
        return x, np.digitize(score, cuts).astype(float)

    def names(self) -> list[str]:
        return list(build(self.model, 2, self.classes)[1])


PROBLEMS = [
    Problem("logistic_bce", "logistic", "bce"),
    Problem("logistic_focal", "logistic", "focal", extra=(("gamma", 2.0), ("focal_alpha", 0.25))),
    Problem("logistic_bce10", "logistic", "bce", extra=(("log_base", "10"),)),
    Problem("softmax3", "softmax", "cross_entropy", classes=3),
]
BATCHES = (1, 4, 0)  # 0 = the whole data set


def run_fastai(problem: Problem, constructor: str, kwargs: dict, init: dict, batch_size: int, epochs: int):
    x, y = problem.data()
    extra = dict(problem.extra)
    make = lambda ps: getattr(mfr.fo, constructor)(ps, **kwargs)  # noqa: E731
    return trajectory(problem.model, "", {}, init, x, y, loss=problem.loss, names=problem.names(),
                      batch_size=batch_size, epochs=epochs, classes=problem.classes,
                      log_base=extra.get("log_base", "e"), gamma=extra.get("gamma", 2.0),
                      alpha=extra.get("focal_alpha"), make_optimizer=make)


def make_problem(config, problem: Problem, batch_size: int) -> dict:
    rng = np.random.default_rng(zlib.crc32(f"{config.__name__}-{problem.name}-{batch_size}".encode()))
    settings, constructor, kwargs = config(rng)
    if constructor == "SGD":  # classifiers take larger steps than the regression problems' lrs
        settings["lr"] = kwargs["lr"] = kwargs["lr"] * 20
    elif batch_size == 0:  # full-batch adaptive steps bounce chaotically near the optimum (see
        settings["lr"] = kwargs["lr"] = kwargs["lr"] / 5  # test_classification_exact.py)
    init = {n: float(rng.uniform(0.1, 0.5) if n[0] == "b" else rng.normal(0, 0.7)) for n in problem.names()}
    per_epoch = 1 if batch_size == 0 else math.ceil(N_ROWS / batch_size)
    epochs = math.ceil(MIN_STEPS / per_epoch)
    params = run_fastai(problem, constructor, kwargs, init, batch_size, epochs)
    x, y = problem.data()
    return {
        "id": f"{config.__name__}-{problem.name}-bs{batch_size or 'full'}",
        "fastai_call": mfr.fastai_call(constructor, kwargs),
        "fastai_ignored": mfr.ignored_arguments(constructor, kwargs),
        "model": problem.model,
        "loss": problem.loss,
        "x": x.tolist(),
        "y": y.tolist(),
        "init": init,
        "settings": {"flavour": "fastai", **settings, **dict(problem.extra)},
        "batch_size": batch_size or "all",
        "epochs": epochs,
        "param_names": problem.names(),
        "trajectory": params.tolist(),
    }


def main() -> None:
    made = mfr.made_with()
    assert not made["torchvision imported"], "torchvision got imported; this script expects no stub"
    made["command"] = "/tmp/fastai-venv/bin/python tests/reference/make_fastai_classify_reference.py"
    problems = [make_problem(c, p, b) for c in CONFIGS for p in PROBLEMS for b in BATCHES]
    OUTPUT.write_text(json.dumps({"made_with": made, "problems": problems}, separators=(",", ":")) + "\n")
    print(f"wrote {len(problems)} problems, {OUTPUT.stat().st_size / 1e6:.2f} MB, to {OUTPUT}")


if __name__ == "__main__":
    main()
