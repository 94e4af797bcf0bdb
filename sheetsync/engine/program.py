"""The steps table as a spreadsheet program: one expression per computed column.

The compiled loop and this program come from the same model and optimizer cells (`models`,
`optimizers`): here the intermediates are inlined, so each output column is one formula over
other cells, the way a learner would type it. References are symbols with a prefix that says
where the cell is, relative to the line being computed:

- ``row:<column>``: a column of the same line (``row:x``, ``row:a``, ``row:de/da``);
- ``prev:<column>``: a state column as it stood before this step, i.e. on the line of the
  previous step (the row above for one row per step), or the value carried into the Run;
- ``g:<param>``: the gradient this step uses: ``row:de/d<p>`` (or its estimate) for one row per
  step; in a batch, the sum of the batch's lines (each line holds its row's share), added in
  torch's order (`reduction`);
- ``batch:w``: 1/(rows in the line's batch); ``batch:k``: the rows in it;
- ``set:<name>``: a setting (a cell of the `experiments` tab, or a constant).

The layout turns these into A1 references (formula mode), the precedents map lists them, and
the trace follows them. Because they are derived from the very cells the loop computes, the
formulas, the map and the numbers cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from .expr import Expr, subs, sym, symbols
from .loop.spec import Spec, scaled_row_cells


@dataclass(frozen=True)
class Program:
    """An experiment's step columns as formulas over the previous step, the data and the settings."""

    spec: Spec
    formulas: dict[str, Expr]  # computed step column -> expression over row:/prev:/g:/set: refs
    param_columns: list[str]  # parameters before the step: linked to the previous step's `new`
    input_columns: list[str]  # x.., y: linked to the data tab

    def refs(self, column: str) -> list[str]:
        """The direct precedents of a computed column, as prefixed symbols."""
        return symbols(self.formulas[column])

    def gradient_source(self, param: str) -> str:
        """The step column whose values drive the update of `param`."""
        numeric = self.spec.gradient == "numeric"
        return f"de/d{param} est" if numeric else f"de/d{param}"


def _row(name: str) -> Expr:
    return sym(f"row:{name}")


def build_program(spec: Spec) -> Program:
    model, upd = spec.model, spec.update
    env: dict[str, Expr] = {n: _row(n) for n in [*model.inputs, "y", *model.params]}
    env["grad_step"] = sym("set:grad_step")
    formulas: dict[str, Expr] = {}
    outputs = {"pred", "err", "loss", *model.recorded} | {f"de/d{q}" for q in model.params}
    env["w"] = sym("batch:w")  # 1/(rows in this line's batch): each line shows its share
    env["bk"] = sym("batch:k")  # rows in this line's batch
    outputs |= {f"de/d{q} est" for q in model.params}
    for name, e in scaled_row_cells(spec, sym("w")):
        inlined = subs(e, env)
        if name in outputs:
            formulas[name] = inlined
            env[name] = _row(name)
        else:
            env[name] = inlined  # intermediates (u, h, dloss) are written into their users

    for q in model.params:
        local: dict[str, Expr] = {"p": _row(q), "g": sym(f"g:{q}"), "t": _row("step")}
        local.update({h: sym(f"set:{h}") for h in upd.hyper})
        for s in upd.state:
            local[f"prev_{s}"] = sym(f"prev:{s}_{q}")
        for name, e in upd.cells:
            inlined = subs(e, local)
            if name in upd.state:
                formulas[f"{name}_{q}"] = inlined
                local[name] = _row(f"{name}_{q}")
            elif name == "new":
                formulas[f"new {q}"] = inlined
            else:
                local[name] = inlined
    ordered = {c: formulas[c] for c in spec.step_columns() if c in formulas}
    return Program(spec, ordered, list(model.params), [*model.inputs, "y"])

