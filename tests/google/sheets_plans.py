"""Plans shaped like the ones layout renders: step tables, epoch tables, a compare tab, charts."""

from __future__ import annotations

import numpy as np

from sheetsync.backends.base import Chart, Column, Highlight, Plan, RangeRef, Series, TabPlan, Table, Text


def steps_tab(name: str, n_rows: int, seed: int = 0, n_params: int = 4) -> TabPlan:
    rng = np.random.default_rng(seed)
    cols = [Column("epoch", np.repeat(np.arange(1, n_rows // 10 + 2), 10)[:n_rows], "0", 7.0),
            Column("step", np.arange(1, n_rows + 1), "0", 6.0),
            Column("x", rng.normal(size=n_rows)), Column("y", rng.normal(size=n_rows))]
    for p in "abcd"[:n_params]:
        cols.append(Column(p, rng.normal(size=n_rows), "General", 12.0))
    for p in "abcd"[:n_params]:
        cols.append(Column(f"de/d{p}", rng.normal(size=n_rows), "0.000000", 12.0))
    cols.append(Column("loss", rng.random(n_rows), note="squared error of the step"))
    return TabPlan(f"{name} steps", tables=[Table(cols)], frozen_rows=1, kind="steps")


def epochs_tab(name: str, n_epochs: int, seed: int = 0) -> TabPlan:
    loss = np.exp(-np.arange(n_epochs) / 3.0) + 0.01 * seed
    loss[-1] = np.nan  # diverged: never sent as a number
    table = Table([Column("epoch", list(range(1, n_epochs + 1)), "0"), Column("loss", loss),
                   Column("lr", [0.01] * n_epochs)])
    chart = Chart("line", f"{name} loss", [Series("loss", RangeRef(f"{name} epochs", 1, 1, n_epochs + 1, 2))],
                  x_title="epoch", y_title="loss", domain=RangeRef(f"{name} epochs", 1, 0, n_epochs + 1, 1),
                  anchor=(1, 5))
    return TabPlan(f"{name} epochs", tables=[table], charts=[chart], frozen_rows=1, kind="epochs",
                   highlights=[Highlight(n_epochs, 0, 1, 3, note="diverged here")])


def compare_tab(names: list[str], n_epochs: int) -> TabPlan:
    chart = Chart("scatter", "loss per epoch",
                  [Series(n, RangeRef(f"{n} epochs", 1, 1, n_epochs + 1, 2),
                          x=RangeRef(f"{n} epochs", 1, 0, n_epochs + 1, 1)) for n in names],
                  x_title="epoch", y_title="loss", anchor=(3, 0))
    texts = [Text(0, 0, "compare", bold=True), Text(1, 0, "best"), Text(1, 1, None, formula="=MIN('A epochs'!B2:B6)"),
             Text(2, 0, 0.5, number_format="0.0%", note="share of steps")]
    return TabPlan("compare", texts=texts, charts=[chart], kind="compare")


def demo_plan(names=("A", "B"), n_rows: int = 40, n_epochs: int = 5) -> Plan:
    tabs = []
    for i, name in enumerate(names):
        tabs += [steps_tab(name, n_rows, i), epochs_tab(name, n_epochs, i)]
    tabs.append(compare_tab(list(names), n_epochs))
    tabs.append(TabPlan("state", texts=[Text(0, 0, "params"), Text(0, 1, '{"a": 1}')], hidden=True, kind="state"))
    return Plan(tabs=tabs)
