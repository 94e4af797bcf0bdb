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
    """Sentences for result.diagnostics.notes (steps are read when the run kept them; a run
    recorded sampled found its lines in the loop: `result.reduced`)."""
    model = result.spec.model
    out: list[str] = []
    if result.sampled:
        saturated, hits, log_zero = (result.reduced[k] for k in ("saturated", "saturated hits", "log zero"))
        if saturated is not None:
            out += _saturation(_line(result, saturated), model, hits / result.total_steps)
        if log_zero is not None:
            out += _log_zero(_line(result, log_zero))
    elif result.rows("steps"):
        steps = result.table("steps")
        hit = np.flatnonzero(saturated_lines(steps, model))
        if len(hit):
            out += _saturation(steps.row(int(hit[0])), model, len(hit) / len(steps))
        hit = np.flatnonzero(log_zero_lines(steps, model))
        if len(hit):
            out += _log_zero(steps.row(int(hit[0])))
    if result.confusion is not None:
        out += _never_predicted(result)
    return out


def _line(result, line: int) -> dict:
    return result.table("steps").row(int(result.position([line])[0]))


def _logit_margin(steps, model) -> np.ndarray:
    """|z| (sigmoid) or the lead of the largest logit (softmax), per line of `steps` (a mapping
    column -> array)."""
    if model.head == "sigmoid":
        return np.abs(steps["z"])
    z = np.sort(np.column_stack([steps[f"z{k}"] for k in range(1, model.classes + 1)]), axis=1)
    return z[:, -1] - z[:, -2]


def saturated_lines(steps, model) -> np.ndarray:
    return _logit_margin(steps, model) >= SATURATED


def log_zero_lines(steps, model) -> np.ndarray:
    """Lines where a probability rounded to exactly 0 or 1."""
    cols = ["p"] if model.head == "sigmoid" else [f"p{k}" for k in range(1, model.classes + 1)]
    p = np.column_stack([steps[c] for c in cols])
    return ((p == 0.0) | (p == 1.0)).any(axis=1)


def _saturation(s: dict, model, share: float) -> list[str]:
    """The sentence for the first saturated line `s` (column -> value); `share` of lines saturated."""
    margin = float(_logit_margin({c: np.array([v]) for c, v in s.items()}, model)[0])
    what = (f"|z| = {margin:.4g}" if model.head == "sigmoid"
            else f"the largest logit leads the next by {margin:.4g}")
    return [f"Saturated logits: from step {int(s['step'])} (data row {int(s['row'])}), "
            f"{what}, so p is within 2e-9 of 0 or 1 and a gradient through the sigmoid/softmax is scaled by "
            f"p(1 - p) < 2e-9 (vanishing); {share:.0%} of the rows shown were saturated. A smaller lr, inputs "
            "on a smaller scale or weight decay keep the logits moderate."]


def _log_zero(s: dict) -> list[str]:
    return [f"Log of 0 avoided: at step {int(s['step'])} (data row {int(s['row'])}) a "
            "probability rounded to exactly 0 or 1, where the textbook -(y·log p + (1 - y)·log(1 - p)) needs "
            "log 0 (-∞, an error in a spreadsheet, and 0·log 0 is NaN); the loss is computed from the logits "
            "instead (as torch's binary_cross_entropy_with_logits and log_softmax do), so it stayed finite: "
            f"{float(s['loss']):.6g}."]


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
