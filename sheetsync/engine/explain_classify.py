"""The diagnosis in a classifier's words: saturated logits, classes never predicted, log of 0.

- A logit is *saturated* when |z| ≥ `SATURATED` (for softmax: the gap between the two largest
  logits): σ(z) is then within 2·10⁻⁹ of 0 or 1, and every gradient that passes through σ'(z) =
  p(1 − p) is scaled by less than that. The first such step and data row are named.
- A class *never predicted* is a column of the final confusion table with no rows.
- *Log of 0 avoided*: where p rounded to exactly 0 or 1 (|z| ≳ 37 in float64), the textbook
  −log(p) or −log(1 − p) would be log 0 = ∞. The loss cells are computed from z (torch's
  binary_cross_entropy_with_logits and log_softmax forms), so they stay finite: said with the step.
"""

from __future__ import annotations

import numpy as np

SATURATED = 20.0  # |z| past this: p(1 - p) < 2.1e-9


def notes(result, X: np.ndarray, Y: np.ndarray) -> list[str]:
    """Sentences for result.diagnostics.notes (steps are read when the run kept them)."""
    model = result.spec.model
    out: list[str] = []
    steps = result.table("steps")
    if len(steps):
        out += _saturation(steps, model)
        out += _log_zero(steps, model)
    if result.confusion is not None:
        out += _never_predicted(result)
    return out


def _logit_margin(steps, model) -> np.ndarray:
    if model.head == "sigmoid":
        return np.abs(steps["z"])
    z = np.sort(np.column_stack([steps[f"z{k}"] for k in range(1, model.classes + 1)]), axis=1)
    return z[:, -1] - z[:, -2]


def _saturation(steps, model) -> list[str]:
    margin = _logit_margin(steps, model)
    hit = np.flatnonzero(margin >= SATURATED)
    if not len(hit):
        return []
    i = int(hit[0])
    what = (f"|z| = {margin[i]:.4g}" if model.head == "sigmoid"
            else f"the largest logit leads the next by {margin[i]:.4g}")
    share = len(hit) / len(margin)
    return [f"Saturated logits: from step {int(steps['step'][i])} (data row {int(steps['row'][i])}), "
            f"{what}, so p is within 2e-9 of 0 or 1 and a gradient through the sigmoid/softmax is scaled by "
            f"p(1 - p) < 2e-9 (vanishing); {share:.0%} of the rows shown were saturated. A smaller lr, inputs "
            "on a smaller scale or weight decay keep the logits moderate."]


def _log_zero(steps, model) -> list[str]:
    cols = ["p"] if model.head == "sigmoid" else [f"p{k}" for k in range(1, model.classes + 1)]
    p = np.column_stack([steps[c] for c in cols])
    hit = np.flatnonzero(((p == 0.0) | (p == 1.0)).any(axis=1))
    if not len(hit):
        return []
    i = int(hit[0])
    return [f"Log of 0 avoided: at step {int(steps['step'][i])} (data row {int(steps['row'][i])}) a "
            "probability rounded to exactly 0 or 1, where the textbook -(y·log p + (1 - y)·log(1 - p)) needs "
            "log 0 (-∞, an error in a spreadsheet, and 0·log 0 is NaN); the loss is computed from the logits "
            "instead (as torch's binary_cross_entropy_with_logits and log_softmax do), so it stayed finite: "
            f"{float(steps['loss'][i]):.6g}."]


def _never_predicted(result) -> list[str]:
    counts = np.asarray(result.confusion)
    names = result.classes or [str(k) for k in range(len(counts))]
    missing = [k for k in range(len(counts)) if counts[:, k].sum() == 0]
    if not missing:
        return []
    shown = ", ".join(f"{names[k]} ({int(counts[k].sum())} rows)" for k in missing)
    which = "class" if len(missing) == 1 else "classes"
    verb = "is" if len(missing) == 1 else "are"
    return [f"Never predicted: {which} {shown} {verb} predicted for no data row by the final parameters; "
            "train longer, raise the lr, or check that the classes are balanced."]
