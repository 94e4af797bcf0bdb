"""The sweep's grouping key comes from the loop itself: for every setting, on every flavour and
optimizer, a change that changes the generated loop changes the key (else two experiments would
share the wrong compiled loop), and a change that only changes numbers does not."""

from __future__ import annotations

import numpy as np

from sheetsync import Experiment, SettingError
from sheetsync.engine.loop import c_printer, numba_printer, program
from sheetsync.engine.train import prepare, structure
from sheetsync.settings import MODELS, OPTIMIZERS, SETTINGS

X = np.array([0.0, -3.0, 2.5, 0.0, 7.0, -1.0, 4.0, -0.5, 9.0, 1.0, -6.0])
Y = 2.0 * X + 3.0

PROBES = [True, False, 0, 1, 2, 3, 7, 0.0, 0.3, 0.9, 1e-3, 2.5, 1e3, "all", "squared", "absolute", "analytic",
          "numeric", "both", "forward", "central", "values", "formulas", *MODELS,
          *{o for opts in OPTIMIZERS.values() for o in opts}, *OPTIMIZERS]


def source(job) -> str:
    return numba_printer.source(program.build(job.spec))


def variants(base: dict, name: str):
    for value in PROBES:
        try:
            exp = Experiment(**{**base, name: value})
        except SettingError:
            continue
        if exp.values != Experiment(**base).values:
            yield value, exp


def test_a_setting_that_changes_the_loop_changes_the_grouping_key():
    checked = differed = 0
    for flavour, optimizers in OPTIMIZERS.items():
        for optimizer in optimizers:
            base = dict(flavour=flavour, optimizer=optimizer, model="two_relu", gradient="analytic")
            job = prepare(Experiment(**base), X, Y)
            key, text = structure(job), source(job)
            for name in SETTINGS:
                for value, exp in variants(base, name):
                    try:
                        other = prepare(exp, X, Y)
                    except SettingError:  # a classifier refuses this regression data as labels
                        continue
                    changed = source(other) != text
                    assert not changed or structure(other) != key, \
                        f"{flavour} {optimizer}: {name}={value!r} changes the loop but not the grouping key"
                    checked += 1
                    differed += changed
    assert checked > 500 and differed > 100, (checked, differed)


def test_numbers_alone_share_a_loop():
    a = prepare(Experiment(flavour="pytorch", optimizer="adam", lr=0.1, beta1=0.8, epochs=3), X, Y)
    b = prepare(Experiment(flavour="pytorch", optimizer="adam", lr=0.2, beta1=0.5, epochs=9, seed=4), X, Y)
    assert structure(a) == structure(b)
    assert c_printer.source(program.build(a.spec)) == c_printer.source(program.build(b.spec))
