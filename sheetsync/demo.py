"""The demo workbooks: by default the fast.ai workbook's 29 samples and four experiments side by side.

`sheetsync demo --lab outputs` writes the classification lab instead (sheetsync/labs/outputs.py);
`--lab embeddings` the collaborative-filtering lab (sheetsync/labs/embeddings.py).

`sheetsync demo` writes it and runs it offline. The numbers of `basic` and `momentum` are the
ones learners know from `graddesc.xlsm` (row 4 of `basic steps`: pred 15, loss 1849,
de/da -1204); `relu` fits the same line with `c*max(a*x+b, 0)+d`, started with its elbow inside
the data (at x = 40) so the bend stays visible in the fit chart.
"""

from __future__ import annotations

from pathlib import Path

# The samples pasted in every optimizer tab of graddesc.xlsm; y = 2x + 30 exactly.
X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28, 20, 8, 64,
     99, 70, 27, 17, 8]
Y = [2 * x + 30 for x in X]

DEFAULT_PATH = "sheetsync-demo.xlsx"
LABS = ("graddesc", "outputs", "embeddings")  # the first is the default

EXPERIMENTS = [
    ["setting", "basic", "momentum", "adam", "relu"],
    ["model", "linear", "linear", "linear", "two_relu"],
    ["flavour", "graddesc", "graddesc", "graddesc", "pytorch"],
    ["optimizer", "sgd", "momentum", "adam", "sgd"],
    ["lr", 0.0001, 0.0001, 1, 0.00003],  # relu: per-row SGD with x up to 99 blows up past ~1e-4
    ["epochs", 5, 5, 5, 5],
    ["init a", 1, 1, 1, 1],
    ["init b", 1, 1, 1, -40],
    ["init c", None, None, None, 1.5],
    ["init d", None, None, None, 80],
]


def demo_tabs() -> dict[str, list[list]]:
    """The two input tabs of the demo workbook, as rows of values."""
    return {"data": [["x", "y"]] + [[x, y] for x, y in zip(X, Y)],
            "experiments": [list(r) for r in EXPERIMENTS]}


def write_demo(path: str | Path = DEFAULT_PATH, lab: str = LABS[0]) -> Path:
    """A new workbook with the lab's inputs (refuses to overwrite an existing file)."""
    from .backends.xlsx import XlsxBackend

    path = Path(path)
    if lab == "outputs":
        from .labs.outputs import write_outputs_lab

        return write_outputs_lab(path)
    if lab == "embeddings":
        from .labs.embeddings import write_embeddings_lab

        return write_embeddings_lab(path)
    XlsxBackend.create(str(path), demo_tabs())
    return path


def demo_runs(lab: str = LABS[0]) -> list[tuple[str, str]]:
    """The (data tab, experiments tab) pairs the lab trains, in order."""
    if lab == "outputs":
        from .labs.outputs import RUNS

        return list(RUNS)
    if lab == "embeddings":
        from .labs.embeddings import RUNS

        return list(RUNS)
    return [("data", "experiments")]
