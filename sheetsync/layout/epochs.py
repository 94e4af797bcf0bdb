"""`NAME epochs`: one row per epoch across all runs so far, diagnostics, and two charts.

The history is the previous version of this tab (read back by the runner) followed by this
run's epochs; a Reset starts it again. Beside the table: the diagnostics in plain words, a chart
of the parameter paths, and the fit against the data — the data as points and the model's
prediction at the final parameters over a sorted grid of x (with the ReLU elbow itself on the
grid, so the bend shows as a sharp corner). Several inputs cannot be drawn on one x axis, so
the fit is left out then, and the tab says so. A classifier's tab charts loss and accuracy
together and holds the confusion table at the end of the run instead of the fit (its picture
is `NAME boundary`). A dot_product experiment's tab charts the loss and the RMSE over every
rating at the end of each epoch (the cell Jeremy's sheet has Solver minimise), from an epoch 0
row holding the RMSE of the starting tables (`with_start_rmse`); its picture is `NAME factors`.
"""

from __future__ import annotations

import numpy as np

from ..a1 import epochs_tab_name
from ..backends.base import Chart, Column, RangeRef, Series, Table, TabPlan, Text
from ..engine.result import Columns, Result
from .tables import as_text, concat, frame_columns, is_numeric, numeric, read_table

HEADER_ROW = 1  # 0-based row of the table's header (row 2); the first epoch sits just below it
MAX_PATH_SERIES = 8  # more lines than this make a parameter chart unreadable
FIT_GRID = 200
FIT_POINTS = 500  # data points drawn in the fit chart (sampled evenly beyond this)


def read_history(rows: list[list] | None) -> Columns:
    """A `NAME epochs` tab read back: its table, wherever a version of sheetsync put the header
    (the first row whose first cell is `epoch`)."""
    for i, row in enumerate(rows or []):
        if row and row[0] == "epoch":
            return read_table(rows, header_row=i)
    return Columns({})


def merge_history(previous: Columns | None, new: Columns) -> Columns:
    """Previous epochs rows (as read back) followed by this run's, in this run's column order.
    Where this run has a column, the previous rows' cells take its type (numbers or text)."""
    if previous is None or not len(previous) or not previous:
        return Columns(dict(new))
    previous = Columns({name: (numeric(values) if is_numeric(new[name]) else as_text(values)) if name in new
                        else values for name, values in previous.items()})
    return _stacked([previous, new], list(new) + [c for c in previous if c not in new])


def _stacked(tables: list[Columns], names: list[str]) -> Columns:
    """`tables` one above the other, with the columns `names` (blank where a table has none)."""
    lengths = [len(t) for t in tables]
    return Columns({name: concat([t.get(name) for t in tables], lengths) for name in names})


def with_start_rmse(history: Columns, result: Result) -> Columns:
    """A dot_product history whose first row is epoch 0: the RMSE of the starting tables (what
    Jeremy's sheet's RMSE cell shows before Solver runs) and no loss (no step was taken). It is
    read back with the rest on the next Run, so the RMSE chart always begins at the start."""
    from ..engine.embeddings import start_rmse

    start = Columns({"epoch": np.array([0], dtype=np.int64), "rmse": np.array([start_rmse(result)], dtype=float)})
    return _stacked([start, history], list(history))


def epochs_so_far(history: Columns) -> int:
    """Epochs in a history (a dot_product history's epoch 0, the start, is not one)."""
    if "epoch" not in history:
        return len(history)
    with np.errstate(invalid="ignore"):
        return int((numeric(history["epoch"]) > 0).sum())


def render_epochs(result: Result, history: Columns, x: np.ndarray, y: np.ndarray,
                  notes: list[str]) -> TabPlan:
    """Row 1: the diagnosis (wrapped, left) and the charts (right); row 2 the header; then one
    row per epoch. Both rows stay frozen, so the diagnosis and charts are the first screen."""
    from .steps import BAND_POINTS, LOG_DECADES, band_span, place_in_band

    name = epochs_tab_name(result.experiment.name)
    tab = TabPlan(name, kind="epochs", frozen_rows=HEADER_ROW + 1, row_heights={0: BAND_POINTS})
    columns = frame_columns(history)
    tab.tables.append(Table(columns, row=HEADER_ROW, col=0))
    lines = notes or ["Nothing unusual: no divergence, no dead units."]
    title = (f"{result.experiment.name}: {epochs_so_far(history):,} epochs so far "
             f"({result.experiment.flavour} {result.experiment.optimizer}). Diagnosis:")
    span = band_span(columns, 100)  # its diagnosis collects every note: a wider block
    tab.texts.append(Text(0, 0, "\n".join([title] + lines), wrap=True, span=span))
    side = len(columns) + 1  # chart data and the fit's tables sit right of the history
    n, top = len(history), HEADER_ROW + 1
    charts: list[Chart] = []
    headers = list(history)
    if n >= 2:
        epoch = RangeRef(name, top, 0, top + n, 1)
        loss = numeric(history["loss"]).astype(float)
        finite = loss[np.isfinite(loss) & (loss > 0)]
        series, y_title, ctitle = Series("loss", RangeRef(name, top, 1, top + n, 2)), "loss", "Loss per epoch"
        if len(finite) and np.log10(finite.max() / max(finite.min(), 1e-300)) > LOG_DECADES:
            with np.errstate(all="ignore"):
                tab.tables.append(Table([Column("log10 loss", np.log10(loss), "0.00", 11)], row=HEADER_ROW, col=side))
            series = Series("log10 loss", RangeRef(name, top, side, top + n, side + 1))
            y_title, ctitle = "log10(loss): 2 = 100, 4 = 10,000", "Loss per epoch (log scale)"
            side += 2
        if "rmse" in headers:  # dot_product: the RMSE is what Jeremy's sheet minimises
            c = headers.index("rmse")
            charts.append(Chart("line", "RMSE per epoch (over every rating, at the epoch's end)",
                                [Series("rmse", RangeRef(name, top, c, top + n, c + 1))], "epoch", "RMSE",
                                domain=epoch))
            charts.append(Chart("line", ctitle, [series], "epoch", y_title, domain=epoch))
        elif "accuracy" in headers and not y_title.startswith("log10"):  # classifiers: both on one chart
            c = headers.index("accuracy")
            charts.append(Chart("line", "Loss and accuracy per epoch",
                                [series, Series("accuracy", RangeRef(name, top, c, top + n, c + 1))],
                                "epoch", "loss / accuracy", domain=epoch))
        else:
            charts.append(Chart("line", ctitle, [series], "epoch", y_title, domain=epoch))
            if "accuracy" in headers:
                c = headers.index("accuracy")
                charts.append(Chart("line", "Accuracy per epoch", [Series("accuracy", RangeRef(
                    name, top, c, top + n, c + 1))], "epoch", "accuracy", domain=epoch, y_min=0.0, y_max=1.0))
        for p in [] if "rmse" in headers else result.param_names[:MAX_PATH_SERIES]:  # each on its own scale
            if p in headers:
                c = headers.index(p)
                charts.append(Chart("line", f"{p} per epoch (carried into the next)",
                                    [Series(p, RangeRef(name, top, c, top + n, c + 1))], "epoch", p, domain=epoch))
    else:
        lines.append(f"One epoch so far: the charts of '{result.experiment.name} steps' show what happened "
                     "inside it; the epoch charts appear from the second epoch on.")
        tab.texts[-1].value = "\n".join([title] + lines)
    if "rmse" in headers:
        tab.texts[-1].value += "\n" + _rmse_sentence(result, history, len(y))
    elif result.confusion is not None:  # classifiers: the confusion table; their picture is `NAME boundary`
        tab.texts[-1].value += "\n" + _add_confusion(tab, result, side)
    elif x.ndim == 1 or x.shape[1] == 1:
        fit = _add_fit(tab, result, x.reshape(len(x), -1)[:, 0], y, side)
        charts.insert(1 if charts else 0, fit)
    else:
        tab.texts[-1].value += "\nNo fit chart: the data has several inputs, which one x axis cannot show."
    place_in_band(tab, charts, span)
    return tab


def _rmse_sentence(result: Result, history: Columns, n_ratings: int) -> str:
    """Where this run's RMSE started and where it ended (the tables' picture: `NAME factors`)."""
    from ..engine.embeddings import start_rmse

    rmse = numeric(history["rmse"]).astype(float)
    end = f"{rmse[-1]:.6g}" if len(rmse) and np.isfinite(rmse[-1]) else "not finite"
    epochs = numeric(history["epoch"])
    first = (f"{rmse[0]:.6g} before the first step (epoch 0), " if len(rmse) and epochs[0] == 0
             and epochs_so_far(history) > result.rows("epochs") else "")  # when this run did not start there
    return (f"RMSE over all {n_ratings:,} ratings: {first}{start_rmse(result):.6g} "
            f"at the start of this run, {end} after epoch {int(epochs[-1])} (the 'rmse' column: "
            "each epoch's parameters on every rating, what Jeremy's sheet's RMSE cell would show; 'loss' is "
            f"the mean of the steps' losses). The tables themselves: '{result.experiment.name} factors'.")


def _add_confusion(tab: TabPlan, result: Result, col: int) -> str:
    """The confusion table at the end of the run (rows: true class, columns: predicted) right of
    the history; returns the sentence the diagnosis adds about it."""
    counts = np.asarray(result.confusion, dtype=np.int64)
    classes = [str(c) for c in result.classes] or [str(k) for k in range(len(counts))]
    columns = [Column("true ↓ / predicted →", classes, None, max(20, max(map(len, classes)) + 2))]
    columns += [Column(c, counts[:, k].astype(float), "0", max(8, len(c) + 2)) for k, c in enumerate(classes)]
    columns.append(Column("rows", counts.sum(axis=1).astype(float), "0", 7))
    tab.tables.append(Table(columns, row=HEADER_ROW, col=col))
    total, right = int(counts.sum()), int(np.trace(counts))
    never = [c for k, c in enumerate(classes) if counts[:, k].sum() == 0]
    sentence = (f"At the end of the run the model predicts {right:,} of the {total:,} data rows right "
                f"(accuracy {right / max(total, 1):.3f}, the confusion table right of the history: rows are the "
                "true classes, columns the predicted ones). The 'accuracy' column is the share of rows each "
                "epoch predicted right as it met them, before their step.")
    if never:
        sentence += f" Class {', '.join(never)} is never predicted."
    return sentence


def _add_fit(tab: TabPlan, result: Result, x: np.ndarray, y: np.ndarray, col: int) -> Chart:
    shown = np.linspace(0, len(x) - 1, min(len(x), FIT_POINTS)).round().astype(int)
    grid = fit_grid(result, x)
    pred = predict(result, grid)
    top = HEADER_ROW + 1
    tab.tables.append(Table([Column("data x", x[shown], "General", 10),
                             Column("data y", y[shown], "General", 10)], row=HEADER_ROW, col=col))
    tab.tables.append(Table([Column("grid x", grid, "General", 10),
                             Column("model", pred, "General", 12)], row=HEADER_ROW, col=col + 2))
    data_x = RangeRef(tab.name, top, col, top + len(shown), col + 1)
    data_y = RangeRef(tab.name, top, col + 1, top + len(shown), col + 2)
    grid_x = RangeRef(tab.name, top, col + 2, top + len(grid), col + 3)
    model_y = RangeRef(tab.name, top, col + 3, top + len(grid), col + 4)
    return Chart("scatter", f"Fit: the data and the model {fit_params(result)[1]}",
                 [Series("data", data_y, data_x, "markers"), Series("model", model_y, grid_x, "line")], "x", "y")


def fit_params(result: Result) -> tuple[dict[str, float], str]:
    """The parameters the fit chart draws: the final ones, or for a diverged run those at the
    step where its explosion started (the final ones are astronomically far off)."""
    onset = result.diagnostics.onset
    if result.diagnostics.divergence is None or onset is None:
        return dict(result.params), "at the final parameters"
    return ({q: float(result.column("steps", q)[onset.line]) for q in result.param_names},
            f"before step {onset.step}, where it exploded")


def fit_grid(result: Result, x: np.ndarray) -> np.ndarray:
    """Sorted x values spanning the data, including any ReLU elbow (x = -b/a) inside the span."""
    lo, hi = float(np.min(x)), float(np.max(x))
    grid = np.linspace(lo, hi, FIT_GRID)
    p = fit_params(result)[0]
    if result.experiment.model == "two_relu" and p.get("a"):
        elbow = -p["b"] / p["a"]
        if lo < elbow < hi:
            grid = np.sort(np.r_[grid, elbow])
    return grid


def predict(result: Result, grid: np.ndarray) -> np.ndarray:
    """The model's prediction at the final parameters, from the engine's one model definition."""
    from ..engine.expr import evaluate
    from ..engine.models import build_model

    exp = result.experiment
    model = build_model(exp.model, 1, exp.hidden)
    out = np.empty(len(grid))
    params = fit_params(result)[0]
    for i, xv in enumerate(grid):
        env = dict(params)
        env[model.inputs[0]] = float(xv)
        for name, e in model.intermediates:
            env[name] = evaluate(e, env)
        out[i] = evaluate(model.pred, env)
    return out
