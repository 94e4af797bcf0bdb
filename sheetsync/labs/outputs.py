"""The outputs lab (`sheetsync demo --lab outputs`): how a classifier's outputs look.

The workbook holds fast.ai's entropy sheets as live formulas (`entropy`), then two trained
classifiers, each on its own pair of input tabs:

- `data` / `experiments`: logistic regression on TensorFlow Playground's `gauss` toy (two
  overlapping clouds, 200 points, noise 0.3, seed 0), with binary cross-entropy in base e and,
  beside it, focal loss (γ = 2) on the same data;
- `penguin data` / `penguin experiments`: softmax regression of the three penguin species on
  bill length and depth (mm), 342 Palmer penguins from the `palmerpenguins` package, the
  species as text labels.

`sheetsync run book.xlsx` continues the toy's experiments; the penguins' pair is run by
`sheetsync run book.xlsx --data-tab "penguin data" --experiments-tab "penguin experiments"`
(in Python: `sheetsync.run(book, data_tab=..., experiments_tab=...)`).
"""

from __future__ import annotations

from pathlib import Path

from . import datasets
from .entropy import entropy_tabs

TOY, TOY_N, TOY_NOISE, TOY_SEED = "gauss", 200, 0.3, 0
PENGUIN_DATA, PENGUIN_EXPERIMENTS = "penguin data", "penguin experiments"
RUNS = [("data", "experiments"), (PENGUIN_DATA, PENGUIN_EXPERIMENTS)]  # (data tab, experiments tab)

TOY_EXPERIMENTS = [
    ["setting", "toy", "toy focal"],
    ["model", "logistic", "logistic"],
    ["loss", "bce", "focal"],
    ["gamma", None, 2],
    ["flavour", "pytorch", "pytorch"],
    ["optimizer", "sgd", "sgd"],
    ["lr", 0.1, 0.1],
    ["epochs", 10, 10],
    ["init a1", 0, 0],
    ["init a2", 0, 0],
    ["init b", 0, 0],
]
PENGUIN_EXPERIMENTS_ROWS = [
    ["setting", "penguins"],
    ["model", "softmax"],
    ["loss", "cross_entropy"],
    ["flavour", "pytorch"],
    ["optimizer", "adam"],
    ["lr", 0.01],  # raw millimetres, far from centred: larger steps make the epoch loss bounce
    ["batch_size", 1],
    ["shuffle", True],
    ["epochs", 10],
]


def input_tabs() -> dict[str, list[list]]:
    """The lab's input tabs, as rows of values."""
    X, y = datasets.toy(TOY, TOY_N, TOY_NOISE, TOY_SEED)
    P, species = datasets.penguins()
    return {"data": datasets.data_rows(X, y),
            "experiments": [list(r) for r in TOY_EXPERIMENTS],
            PENGUIN_DATA: datasets.data_rows(P, species),
            PENGUIN_EXPERIMENTS: [list(r) for r in PENGUIN_EXPERIMENTS_ROWS]}


def write_outputs_lab(path: str | Path) -> Path:
    """A new workbook: the classifiers' input tabs, then the entropy tabs (the runs add theirs after)."""
    from ..backends.base import Plan
    from ..backends.xlsx import XlsxBackend

    path = Path(path)
    XlsxBackend.create(str(path), input_tabs())
    backend = XlsxBackend(str(path))
    backend.apply(Plan(entropy_tabs()))
    return path
