"""The fast.ai entropy sheets, reproduced as live formulas with their values.

fast.ai's `entropy_example.xlsx` comes in three course versions: `courses` (deeplearning1,
2017: random logits), `course-v3` (2019: two images whose logits differ by a constant, and a
`binary` column) and `course22` (2022: five fixed logits, the multi-class cross-entropy). The
tabs here take their inputs from the newest version that has each idea:

- `softmax`: course22's five logits; exp, the sum, softmax and log-softmax, each a column;
- `softmax shift`: course-v3's two images; softmax ignores the shift, the sigmoid does not;
- `binary cross-entropy`: the five (y, p) rows all three versions share, in base 10 (`LOG`, as
  the sheets compute it) and base e (`LN`, as PyTorch does);
- `cross-entropy`: course22's multi-class cross-entropy of the softmax against a one-hot label;
- `focal loss`: Fig. 1 of Lin et al. 2017, the loss against p_t for γ in 0, 0.5, 1, 2, 5.

Every cell is a formula (Excel, LibreOffice and Google Sheets recompute it when an input
changes) carrying the value Python computes for it, so a reader that does not recalculate sees
the same numbers; tests/test_outputs_lab.py holds both to the sheets' own cached values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..a1 import col_letter, quote_tab
from ..backends.base import Chart, Column, RangeRef, Series, Table, TabPlan, Text

# Inputs only: the logits and (y, p) pairs the fast.ai sheets type in (their results are not
# copied; the tests read them from the course files).
CLASSES = ["cat", "dog", "plane", "fish", "building"]
COURSE22_LOGITS = [-4.885224780447092, 2.5974728206314666, 0.591664975702642, -2.0689445222722602,
                   -4.568679173867985]
COURSE22_TRUE = 1  # the sheet's one-hot `actuals`: dog
COURSE_V3_IMAGES = ([0.021789294543326676, -2.488055919486013, -1.7505557283129267, 2.070409245987718,
                     1.2502573466234175],
                    [-1.4210496434287527, -3.9308948574580924, -3.1933946662850063, 0.6275703080156385,
                     -0.19258159134866187])
BINARY_CASES = [(1, 0.5), (1, 0.98), (0, 0.9), (0, 0.5), (1, 0.9)]  # (isCat, prediction)
GAMMAS = [0, 0.5, 1, 2, 5]
FOCAL_PT = [k / 100 for k in range(1, 100)]  # 0.01 … 0.99: 0^0 (γ = 0 at p_t = 1) is #NUM! in Excel

TAB_SOFTMAX, TAB_SHIFT, TAB_BINARY, TAB_CROSS, TAB_FOCAL = (
    "softmax", "softmax shift", "binary cross-entropy", "cross-entropy", "focal loss")
HEADER_ROW = 2  # 0-based: row 1 explains the tab, row 3 is the header, data from row 4
FIRST = HEADER_ROW + 2  # the first data row, 1-based, as formulas name it
NUMBER = "0.000000000"  # nine decimals: enough to see shift-invariance to the last shown digit
WIDTH = 14.0


@dataclass
class Col:
    """One column: a header, its values, and its formula per row (`f(r)`, r the 1-based row)."""

    header: str
    values: Sequence
    formula: Callable[[int], str] | None = None
    fmt: str | None = NUMBER
    width: float = WIDTH


def _table(cols: list[Col], formulas: bool, row: int = HEADER_ROW, col: int = 0) -> Table:
    first = row + 2
    out = []
    for c in cols:
        fs = [c.formula(first + i) for i in range(len(c.values))] if (formulas and c.formula) else None
        out.append(Column(c.header, list(c.values), c.fmt, c.width, fs))
    return Table(out, row=row, col=col)


def _explain(tab: TabPlan, text: str, span: int, height: float = 60.0) -> None:
    tab.texts.append(Text(0, 0, text, wrap=True, span=span))
    tab.row_heights[0] = height


def _range(col: int, n: int, absolute: bool = True) -> str:
    c = col_letter(col)
    return f"${c}${FIRST}:${c}${FIRST + n - 1}" if absolute else f"{c}{FIRST}:{c}{FIRST + n - 1}"


# --- the arithmetic, defined once for the values (the formulas beside them say the same in A1)

def softmax_steps(z: Sequence[float]) -> dict[str, np.ndarray | float]:
    """exp, their sum, softmax and log-softmax as the sheet computes them (no max shift: the
    sheet's EXP(z)/SUM is what a learner types; log-softmax is z − LN(sum))."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z)
    s = float(np.sum(e))  # the sheet's SUM adds left to right, as numpy's pairwise sum does for 5
    return {"exp": e, "sum": s, "softmax": e / s, "log_softmax": z - math.log(s)}


def binary_ce(y: np.ndarray, p: np.ndarray, log: Callable) -> np.ndarray:
    """−y·log(p) − (1−y)·log(1−p), the sheets' formula, in the base `log` takes."""
    return -y * log(p) - (1 - y) * log(1 - p)


def focal(pt: np.ndarray, gamma: float) -> np.ndarray:
    """Focal loss −(1−p_t)^γ · ln p_t (Lin et al. 2017, eq. 4 without α); γ = 0 is cross-entropy."""
    return -((1 - pt) ** gamma) * np.log(pt)


# --- the tabs

def softmax_tab(formulas: bool = True) -> TabPlan:
    n = len(CLASSES)
    s = softmax_steps(COURSE22_LOGITS)
    tab = TabPlan(TAB_SOFTMAX, kind="lab", frozen_rows=HEADER_ROW + 1)
    _explain(tab, "Softmax of five logits, one step per column (fast.ai course22, entropy_example.xlsx, tab "
             "'softmax'). exp(z) makes every output positive; dividing by their sum makes them add up to 1; "
             "log-softmax = z − ln(sum) is what PyTorch's cross_entropy takes the true class's value of. "
             "Change a logit in column B: every column follows.", 6)
    cols = [Col("class", CLASSES, fmt=None, width=10),
            Col("output z", COURSE22_LOGITS),
            Col("exp", s["exp"], lambda r: f"=EXP(B{r})"),
            Col("sum", [s["sum"]] * n, lambda r: f"=SUM({_range(2, n)})"),
            Col("softmax", s["softmax"], lambda r: f"=C{r}/D{r}"),
            Col("log-softmax (ln)", s["log_softmax"], lambda r: f"=B{r}-LN(D{r})", width=16)]
    tab.tables.append(_table(cols, formulas))
    total = FIRST - 1 + n  # 0-based row under the table
    tab.texts.append(Text(total, 0, "total", bold=True))
    tab.texts.append(Text(total, 2, s["sum"], bold=True, number_format=NUMBER,
                          formula=f"=SUM({_range(2, n, False)})" if formulas else None))
    tab.texts.append(Text(total, 4, float(np.sum(s["softmax"])), bold=True, number_format=NUMBER,
                          formula=f"=SUM({_range(4, n, False)})" if formulas else None))
    return tab


def shift_tab(formulas: bool = True) -> TabPlan:
    n = len(CLASSES)
    z1, z2 = (np.asarray(z) for z in COURSE_V3_IMAGES)
    s1, s2 = softmax_steps(z1), softmax_steps(z2)
    tab = TabPlan(TAB_SHIFT, kind="lab", frozen_rows=HEADER_ROW + 1)
    _explain(tab, "Softmax does not change when every logit moves by the same amount; the sigmoid of each logit "
             "does (fast.ai course-v3, entropy_example.xlsx, tab 'softmax': 'Image 1', 'Image 2' and 'binary'). "
             "Image 2's logits are Image 1's minus one constant (column J): both softmax columns agree, the "
             "sigmoid columns exp(z)/(1+exp(z)) do not. A single sigmoid per class is what a multi-label "
             "classifier uses; softmax picks one class.", 11, 75.0)
    cols = [Col("class", CLASSES, fmt=None, width=10),
            Col("image 1: z", z1), Col("exp", s1["exp"], lambda r: f"=EXP(B{r})"),
            Col("softmax", s1["softmax"], lambda r: f"=C{r}/SUM({_range(2, n)})"),
            Col("sigmoid", s1["exp"] / (1 + s1["exp"]), lambda r: f"=C{r}/(1+C{r})"),
            Col("image 2: z", z2), Col("exp", s2["exp"], lambda r: f"=EXP(F{r})"),
            Col("softmax", s2["softmax"], lambda r: f"=G{r}/SUM({_range(6, n)})"),
            Col("sigmoid", s2["exp"] / (1 + s2["exp"]), lambda r: f"=G{r}/(1+G{r})"),
            Col("z1 − z2", z1 - z2, lambda r: f"=B{r}-F{r}")]
    tab.tables.append(_table(cols, formulas))
    total = FIRST - 1 + n
    tab.texts.append(Text(total, 0, "total", bold=True))
    for c, v in ((2, s1["sum"]), (3, float(np.sum(s1["softmax"]))), (6, s2["sum"]), (7, float(np.sum(s2["softmax"])))):
        tab.texts.append(Text(total, c, v, bold=True, number_format=NUMBER,
                              formula=f"=SUM({_range(c, n, False)})" if formulas else None))
    return tab


def binary_tab(formulas: bool = True) -> TabPlan:
    y = np.array([c[0] for c in BINARY_CASES], dtype=np.float64)
    p = np.array([c[1] for c in BINARY_CASES], dtype=np.float64)
    n = len(y)
    b10 = binary_ce(y, p, np.log10)
    be = binary_ce(y, p, np.log)
    tab = TabPlan(TAB_BINARY, kind="lab", frozen_rows=HEADER_ROW + 1)
    _explain(tab, "Binary cross-entropy of a prediction p against a label y ∈ {0, 1} (fast.ai's tabs 'entropy' and "
             "'log_entropy', the same five rows in all three course versions). The sheets use LOG, which is base 10 "
             "in Excel and Google Sheets; PyTorch's binary_cross_entropy uses ln (base e). The two differ by the "
             "factor ln 10 = 2.302585…, and so do their gradients. The IF form picks the one term that is not "
             "multiplied by 0.", 10, 75.0)
    cols = [Col("y (isCat)", y, fmt="0", width=10), Col("1 − y", 1 - y, lambda r: f"=1-A{r}", fmt="0", width=8),
            Col("p (pred)", p, fmt="General", width=10), Col("1 − p", 1 - p, lambda r: f"=1-C{r}"),
            Col("log10 p", np.log10(p), lambda r: f"=LOG(C{r})"),
            Col("log10 (1 − p)", np.log10(1 - p), lambda r: f"=LOG(1-C{r})"),
            Col("loss (log10)", b10, lambda r: f"=-A{r}*LOG(C{r})-(1-A{r})*LOG(1-C{r})"),
            Col("IF form (log10)", -np.where(y == 1, np.log10(p), np.log10(1 - p)),
                lambda r: f"=-IF(A{r}=1,LOG(C{r}),LOG(1-C{r}))", width=16),
            Col("loss (ln)", be, lambda r: f"=-A{r}*LN(C{r})-(1-A{r})*LN(1-C{r})"),
            Col("ln / log10", be / b10, lambda r: f"=I{r}/G{r}")]
    tab.tables.append(_table(cols, formulas))
    mean = FIRST - 1 + n
    tab.texts.append(Text(mean, 5, "mean (torch's reduction)", bold=True))
    for c, v in ((6, float(np.mean(b10))), (8, float(np.mean(be)))):
        tab.texts.append(Text(mean, c, v, bold=True, number_format=NUMBER,
                              formula=f"=AVERAGE({_range(c, n, False)})" if formulas else None))
    return tab


def cross_entropy_tab(formulas: bool = True) -> TabPlan:
    n = len(CLASSES)
    s = softmax_steps(COURSE22_LOGITS)
    actual = np.zeros(n)
    actual[COURSE22_TRUE] = 1
    term10 = actual * np.log10(s["softmax"])
    terme = actual * np.log(s["softmax"])
    src = quote_tab(TAB_SOFTMAX)
    tab = TabPlan(TAB_CROSS, kind="lab", frozen_rows=HEADER_ROW + 1)
    _explain(tab, "Multi-class cross-entropy of the softmax against a one-hot label (fast.ai course22, tab "
             "'entropy'): −Σ actual · log(softmax), which is −log of the true class's probability. Column B "
             "reads the 'softmax' tab, so a changed logit there changes the loss here. Base 10 (LOG) as the sheet; "
             "ln as PyTorch's cross_entropy, which equals −log-softmax of the true class.", 6, 75.0)
    cols = [Col("class", CLASSES, fmt=None, width=10),
            Col("softmax", s["softmax"], lambda r: f"={src}!E{r}"),
            Col("actual", actual, fmt="0", width=8),
            Col("x-entropy (log10)", term10, lambda r: f"=C{r}*LOG(B{r})", width=17),
            Col("x-entropy (ln)", terme, lambda r: f"=C{r}*LN(B{r})", width=15)]
    tab.tables.append(_table(cols, formulas))
    row = FIRST - 1 + n
    rng = lambda c: _range(c, n, False)  # noqa: E731
    tab.texts.append(Text(row, 2, "loss", bold=True))
    tab.texts.append(Text(row, 3, float(-np.sum(term10)), bold=True, number_format=NUMBER,
                          formula=f"=-SUM({rng(3)})" if formulas else None))
    tab.texts.append(Text(row, 4, float(-np.sum(terme)), bold=True, number_format=NUMBER,
                          formula=f"=-SUM({rng(4)})" if formulas else None))
    tab.texts.append(Text(row + 1, 2, "−log-softmax[true] (PyTorch's cross_entropy)", bold=False))
    tab.texts.append(Text(row + 1, 4, float(-s["log_softmax"][COURSE22_TRUE]), bold=True, number_format=NUMBER,
                          formula=(f"=-INDEX({src}!{_range(5, n)},MATCH(1,{_range(2, n)},0))" if formulas else None)))
    return tab


def focal_tab(formulas: bool = True) -> TabPlan:
    pt = np.asarray(FOCAL_PT)
    n = len(pt)
    tab = TabPlan(TAB_FOCAL, kind="lab", frozen_rows=HEADER_ROW + 1)
    _explain(tab, "Focal loss FL(p_t) = −(1 − p_t)^γ · ln(p_t), p_t the probability of the true class (Lin et al. 2017, "
             "'Focal Loss for Dense Object Detection', Fig. 1; torchvision's sigmoid_focal_loss without α). γ = 0 "
             "is cross-entropy. A larger γ shrinks the loss of examples already classified well (p_t > 0.5), so "
             "training attends to the hard ones. Row 2 holds γ: change one and its column and curve follow.", 7, 75.0)
    gamma_row = HEADER_ROW - 1  # 0-based row of the γ values, just above the header
    tab.texts.append(Text(gamma_row, 0, "γ →", bold=True))
    cols = [Col("p_t", pt, fmt="0.00", width=8)]
    for j, g in enumerate(GAMMAS):
        # -LN(p)*(1-p)^γ, not -(1-p)^γ*…: spreadsheets negate before ^, so -(1-p)^0.5 is #NUM!
        c = col_letter(1 + j)
        cols.append(Col(f"γ = {g}", focal(pt, g), (lambda c: lambda r: f"=-LN($A{r})*(1-$A{r})^{c}${gamma_row + 1}")(c),
                        fmt="0.0000", width=10))
        tab.texts.append(Text(gamma_row, 1 + j, float(g), bold=True, number_format="General"))
    tab.tables.append(_table(cols, formulas))
    top = HEADER_ROW + 1
    x = RangeRef(TAB_FOCAL, top, 0, top + n, 1)
    series = [Series(f"γ = {g}", RangeRef(TAB_FOCAL, top, 1 + j, top + n, 2 + j), x, "line")
              for j, g in enumerate(GAMMAS)]
    tab.charts.append(Chart("scatter", "Focal loss against the probability of the true class", series,
                            "probability of ground truth class p_t", "loss", anchor=(gamma_row, len(cols) + 1), axis_format="0.0",
                            width_px=560, height_px=400, x_min=0.0, x_max=1.0, y_min=0.0, y_max=5.0))
    return tab


def entropy_tabs(formulas: bool = True) -> list[TabPlan]:
    """The five tabs in the order a learner reads them."""
    return [softmax_tab(formulas), shift_tab(formulas), binary_tab(formulas), cross_entropy_tab(formulas),
            focal_tab(formulas)]
