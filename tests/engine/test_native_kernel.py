"""The C backend (`engine.loop.cc`) against the numba backend: the same bits, every output.

Each case builds one experiment's compiled structure (model x optimizer options x batch size x
gradient kind x loss), then runs both compiled loops on the same inputs: several experiment
rows side by side (ordinary learning rates, one that diverges, one whose parameters cross a
small divergence bound), data with zeros and negatives, a multi-row shuffle order, recording on
and off. P, S, T, R, EPO and DIV must agree to the bit: NaNs where the other has NaNs, -0.0
where the other has -0.0. The public API (`train`, `sweep`, graddesc's macros) is compared too,
with SHEETSYNC_KERNEL switched, and the C path is checked not to import numba at all.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from exactness import greedy_cover

from sheetsync import Experiment, SheetsyncError, sweep, train
from sheetsync.engine.loop import backend, c_printer, cc
from sheetsync.engine.train import pack, prepare, reset_state

pytestmark = pytest.mark.skipif(cc.compiler() is None, reason="no C compiler")

# Zeros (u == 0 at the relu's elbow, zero gradients) and negatives; 11 rows, so batches of 4 and
# 7 end with a short batch.
XV = np.array([0.0, -3.0, 2.5, 0.0, 7.0, -1.0, 4.0, -0.5, 9.0, 1.0, -6.0])
YV = 2.0 * XV + 3.0 + np.array([0.0, 0.1, -0.2, 0.0, 0.3, -0.1, 0.0, 0.05, -0.4, 0.2, 0.0])
X2 = np.column_stack([XV, XV * XV - 4.0])


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Same shape, same bits; any NaN matches any NaN (payloads are not a computed result)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    same = a.view(np.int64) == b.view(np.int64)
    return bool((same | (np.isnan(a) & np.isnan(b))).all())


def run_both(exp: Experiment, x, n_epochs: int = 3, record: bool = True, shuffle_rows: int = 2, y=YV):
    """Run exp's compiled loop on both backends with identical inputs; return both outputs."""
    job = prepare(exp, x, y)
    spec = job.spec
    P, S, H, T = pack(job, reset_state(job))
    lr_col, bound_col = spec.hyper.index("lr"), spec.hyper.index("divergence_bound")
    # rows: the experiment, half its lr, a diverging lr, a bound the parameters soon cross
    P, S, T = (np.repeat(a, 4, axis=0) for a in (P, S, T))
    H = np.repeat(H, 4, axis=0)
    H[1, lr_col] *= 0.5
    H[2, lr_col] = 1e30
    H[3, bound_col] = 1.05
    rng = np.random.default_rng(7)
    P = P + rng.uniform(-0.5, 0.5, size=P.shape)  # break the symmetry of all-ones starts
    n = len(y)
    order = np.stack([rng.permutation(n) for _ in range(shuffle_rows)]).astype(np.int64)
    out = {}
    for which in ("c", "numba"):
        fn = backend.load_kernel(spec, which)
        if which == "c":
            assert isinstance(fn, cc.NativeKernel)
        p, s, t = P.copy(), S.copy(), T.copy()
        # outputs start as a sentinel, so lines a backend does not write must agree too
        R = np.full((4, n_epochs * n if record else 0, len(spec.step_columns())), -7.25)
        EPO = np.full((4, n_epochs, len(spec.epoch_columns())), -7.25)
        DIV = np.zeros((4, 5), dtype=np.int64)
        fn(job.X, job.Y, order, p, s, H.copy(), t, n_epochs, record, R, EPO, DIV)
        out[which] = {"P": p, "S": s, "T": t, "R": R, "EPO": EPO, "DIV": DIV}
    return out["c"], out["numba"]


def assert_same(c, nb, label=""):
    for name in c:
        assert bits_equal(c[name], nb[name]), f"{label}: {name} differs\nC:\n{c[name]}\nnumba:\n{nb[name]}"


# --- the structure matrix ---------------------------------------------------------------------

MODELS = [("linear", XV, {}), ("linear", X2, {}), ("two_linear", XV, {}), ("two_relu", XV, {}),
          ("mlp", X2, {"hidden": 3})]

OPTIMIZERS = [
    # graddesc: the workbook's update cells (macros run outside the loop, tested further down)
    dict(flavour="graddesc", optimizer="sgd"),
    dict(flavour="graddesc", optimizer="momentum"),
    dict(flavour="graddesc", optimizer="rmsprop"),
    dict(flavour="graddesc", optimizer="adam"),
    dict(flavour="graddesc", optimizer="eve"),
    dict(flavour="graddesc", optimizer="adagrad"),
    dict(flavour="graddesc", optimizer="adagrad_ann"),
    # pytorch
    dict(flavour="pytorch", optimizer="sgd"),
    dict(flavour="pytorch", optimizer="sgd", weight_decay=0.01),
    dict(flavour="pytorch", optimizer="momentum", momentum=0.9),
    dict(flavour="pytorch", optimizer="momentum", momentum=0.9, dampening=0.3, weight_decay=0.02),
    dict(flavour="pytorch", optimizer="nesterov", momentum=0.8),
    dict(flavour="pytorch", optimizer="nesterov", momentum=0.8, weight_decay=0.01),
    dict(flavour="pytorch", optimizer="adagrad", lr_decay=0.05, initial_accumulator_value=0.1),
    dict(flavour="pytorch", optimizer="adagrad", weight_decay=0.01),
    dict(flavour="pytorch", optimizer="rmsprop"),
    dict(flavour="pytorch", optimizer="rmsprop", centered=True),
    dict(flavour="pytorch", optimizer="rmsprop", momentum=0.5),
    dict(flavour="pytorch", optimizer="rmsprop", centered=True, momentum=0.5, weight_decay=0.01),
    dict(flavour="pytorch", optimizer="adam"),
    dict(flavour="pytorch", optimizer="adam", weight_decay=0.01, amsgrad=True),
    dict(flavour="pytorch", optimizer="adamw"),
    dict(flavour="pytorch", optimizer="adamw", weight_decay=0.05, amsgrad=True),
    # fastai
    dict(flavour="fastai", optimizer="sgd", weight_decay=0.0),
    dict(flavour="fastai", optimizer="sgd", weight_decay=0.01, decouple_wd=False),
    dict(flavour="fastai", optimizer="momentum", momentum=0.9, weight_decay=0.01),
    dict(flavour="fastai", optimizer="rmsprop", momentum=0.0),
    dict(flavour="fastai", optimizer="rmsprop", momentum=0.9, weight_decay=0.01, decouple_wd=False),
    dict(flavour="fastai", optimizer="adam"),
    dict(flavour="fastai", optimizer="adam", weight_decay=0.01),
]

BATCHES = [1, 4, 7, "all"]
GRADIENTS = [("analytic", "forward"), ("numeric", "forward"), ("both", "central"), ("numeric", "central"),
             ("both", "forward")]


def _lr(flavour: str, optimizer: str) -> float:
    if flavour == "graddesc":
        return {"sgd": 1e-3, "momentum": 1e-3, "adagrad": 0.05, "adagrad_ann": 0.05}.get(optimizer, 0.05)
    return 0.01


def cases() -> list[tuple[dict, np.ndarray, str]]:
    """Every optimizer with every model; batch size, gradient kind and loss rotate through
    their values, so each is met with every optimizer and with every model."""
    out = []
    for i, opt in enumerate(OPTIMIZERS):
        for j, (model, x, extra) in enumerate(MODELS):
            batch = 1 if opt["flavour"] == "graddesc" else BATCHES[(i + j) % len(BATCHES)]  # the workbook's rows
            gradient, method = GRADIENTS[(2 * i + j) % len(GRADIENTS)]
            loss = "absolute" if (i + 3 * j) % 4 == 0 else "squared"
            settings = dict(opt, model=model, batch_size=batch, gradient=gradient, grad_method=method,
                            loss=loss, lr=_lr(opt["flavour"], opt["optimizer"]), **extra)
            label = "-".join(f"{v}" for v in settings.values())
            out.append((settings, x, f"{label}-{x.ndim}d"))
    return out


def features(settings: dict, x: np.ndarray) -> set:
    """What a numba-vs-C case exercises: its optimizer family, model, batch size (a batch > 1 is
    the batch statements: the share w, the gradient buffer, torch's sum), gradient kind (numeric
    ones add the estimate cells and the max accumulator) and loss."""
    return {("family", settings["flavour"], settings["optimizer"]), ("model", settings["model"], x.ndim),
            ("batch", settings["batch_size"]), ("gradient", settings["gradient"], settings["grad_method"]),
            ("loss", settings["loss"])}


def compile_cost(settings: dict) -> float:
    """How long numba takes over a case's loop, roughly in proportion to the loop's size: the
    mlp's is several times the others', numeric gradients add an estimate per parameter (central
    ones a second evaluation)."""
    model = {"linear": 1.0, "mlp": 4.0}.get(settings["model"], 1.5)
    gradient = 1.0 if settings["gradient"] == "analytic" else 1.6 if settings["grad_method"] == "central" else 1.4
    return model * gradient


def representative() -> list[tuple[dict, np.ndarray, str]]:
    """A few cases that between them meet every feature of the whole matrix (greedy cover, by
    features added per `compile_cost`). The graddesc tabs run through numba with
    their macros below (test_graddesc_tabs_...); their cells are covered there, so the cover here
    asks for the pytorch and fastai families."""
    pool = [c for c in cases() if c[0]["flavour"] != "graddesc"]
    return greedy_cover(pool, lambda c: features(c[0], c[1]), lambda c: compile_cost(c[0]))


def test_the_numba_subset_covers_the_matrix():
    every = set().union(*(features(s, x) for s, x, _ in cases() if s["flavour"] != "graddesc"))
    chosen = representative()
    assert set().union(*(features(s, x) for s, x, _ in chosen)) == every
    assert len(chosen) < len(cases()) // 5


@pytest.mark.parametrize("settings, x", [pytest.param(s, x, id=label) for s, x, label in representative()])
def test_c_and_numba_loops_agree_bit_for_bit(settings, x):
    c, nb = run_both(Experiment(**settings), x)
    assert_same(c, nb, str(settings))
    assert c["DIV"][2, 0] == 1, "the lr of 1e30 should diverge"  # the stopping line is compared above
    c, nb = run_both(Experiment(**settings), x, n_epochs=2, record=False, shuffle_rows=1)
    assert_same(c, nb, f"unrecorded {settings}")


def test_every_structure_is_one_program_both_printers_accept(tmp_path):
    """For the whole matrix (numba runs only the subset above): the loop is built once as a
    statement list and both printers print that same list; the Python form compiles to bytecode
    and the C form passes the C compiler's checks (one compiler run for all of them)."""
    from sheetsync.engine.loop import numba_printer, program

    files = []
    for k, (settings, x, label) in enumerate(cases()):
        built = program.build(prepare(Experiment(**settings), x, YV).spec)
        assert built == program.build(prepare(Experiment(**settings), x, YV).spec)  # a value: same list again
        compile(numba_printer.source(built), label, "exec")
        path = tmp_path / f"loop{k}.c"
        path.write_text(c_printer.source(built))
        files.append(str(path))
    out = subprocess.run([*cc.compiler(), "-fsyntax-only", "-Wall", "-Werror=implicit-function-declaration", *files],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.mark.parametrize("batch, gradient", list(zip(itertools.cycle(BATCHES), GRADIENTS)))
def test_every_batch_and_gradient_kind_with_adam(batch, gradient):
    settings = dict(flavour="pytorch", optimizer="adam", model="two_relu", batch_size=batch,
                    gradient=gradient[0], grad_method=gradient[1], lr=0.02)
    c, nb = run_both(Experiment(**settings), XV)
    assert_same(c, nb, str(settings))


def test_long_full_batch_uses_torchs_cascade_order():
    """A full batch of 600 rows reaches the cascade levels of torch's sum (n // 4 >= 16)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=600) * 10.0 ** rng.uniform(-3, 3, size=600)
    exp = Experiment(flavour="pytorch", optimizer="sgd", batch_size="all", lr=1e-9)
    c, nb = run_both(exp, x, 4, y=2.0 * x + 1.0)
    assert_same(c, nb, "full batch of 600")


@pytest.mark.parametrize("settings", [  # any loop can be forced past the size; mlp's numba compile is the slow one
    dict(flavour="pytorch", optimizer="rmsprop", centered=True, momentum=0.5, model="two_relu", batch_size=4,
         gradient="both"),
    dict(flavour="fastai", optimizer="adam", weight_decay=0.01, batch_size=7, gradient="numeric", loss="absolute"),
])
def test_large_loops_compiled_at_O1_agree_too(monkeypatch, settings):
    """Past LARGE_SOURCE the C compiler runs at -O1 without the FMA clone: still the same bits."""
    monkeypatch.setattr(cc, "LARGE_SOURCE", 0)
    c, nb = run_both(Experiment(**settings, lr=0.01), X2 if settings.get("model") == "mlp" else XV)
    assert_same(c, nb, str(settings))


def test_odd_array_layouts_are_copied_in_and_out():
    """The C loop reads flat C-ordered float64/int64 arrays: other layouts and dtypes are copied
    in, and the in-place outputs (P, S, T, R, EPO, DIV) copied back, as numba would see them."""
    job = prepare(Experiment(flavour="pytorch", optimizer="adam", model="linear", lr=0.01), X2, YV)  # 2 inputs
    spec = job.spec
    P, S, H, T = pack(job, reset_state(job))
    P, S, H = (np.asfortranarray(np.repeat(a, 2, axis=0)) for a in (P, S, H))
    T = np.repeat(T, 2)
    order = np.arange(len(YV), dtype=np.int32)[None, :]
    out = {}
    for which in ("c", "numba"):
        p, s, t = P.copy(order="F"), S.copy(order="F"), np.repeat(T, 2)[::2]  # t: a strided view
        R = np.full((2, 2 * len(YV), len(spec.step_columns())), -1.0)
        EPO = np.zeros((2, 2, len(spec.epoch_columns())))
        DIV = np.zeros((2, 5), dtype=np.int64)
        order_arg = order if which == "c" else order.astype(np.int64)  # numba would compile an int32 copy
        backend.load_kernel(spec, which)(np.asfortranarray(job.X), job.Y, order_arg, p, s, H, t, 2, True, R, EPO, DIV)
        out[which] = {"P": np.ascontiguousarray(p), "S": np.ascontiguousarray(s), "T": np.ascontiguousarray(t),
                      "R": R, "EPO": EPO, "DIV": DIV}
    assert not bits_equal(out["c"]["P"], np.ascontiguousarray(P))  # updated in place
    assert_same(out["c"], out["numba"], "odd layouts")


def test_c_torch_sum_follows_the_tree(tmp_path):
    """The C copy of torch's sum order against `reduction.sum_tree` (itself checked against torch)."""
    import ctypes

    from sheetsync.engine.reduction import evaluate as add_up, sum_tree

    source = c_printer.TORCH_SUM_C.join(["#include <stdint.h>\n", "double sum_for_test(const double *b, int64_t n) "
                                      "{ return torch_sum(b, n); }\n"])
    so = tmp_path / "torch_sum.so"
    cc.build(source, so, cc.compiler())
    fn = ctypes.CDLL(str(so)).sum_for_test
    fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_void_p, ctypes.c_int64]
    rng = np.random.default_rng(11)
    for n in list(range(1, 70)) + [257, 1000, 4099]:
        v = rng.normal(size=n) * 10.0 ** rng.uniform(-3, 3, size=n)
        assert fn(v.ctypes.data, n) == add_up(sum_tree(n), list(v)), n


# --- the public API on both backends ----------------------------------------------------------


def _results(monkeypatch, which, fn):
    monkeypatch.setenv("SHEETSYNC_KERNEL", which)
    return fn()


def assert_results_equal(a, b):
    for ra, rb in zip(a, b):
        pd.testing.assert_frame_equal(ra.steps, rb.steps, check_exact=True)
        pd.testing.assert_frame_equal(ra.epochs, rb.epochs, check_exact=True)
        assert repr(ra.state.to_dict()) == repr(rb.state.to_dict())  # repr: nan == nan, 0.0 != -0.0
        assert repr(ra.diagnostics) == repr(rb.diagnostics)


GRADDESC = ["sgd", "momentum", "rmsprop", "adam", "adam_ann", "adagrad", "eve", "adagrad_ann"]


@pytest.mark.parametrize("optimizer", GRADDESC)
def test_graddesc_tabs_with_their_macros_agree(monkeypatch, optimizer):
    from sheetsync.demo import X, Y

    exp = Experiment(flavour="graddesc", optimizer=optimizer, epochs=4)
    c = _results(monkeypatch, "c", lambda: [train(exp, X, Y)])
    nb = _results(monkeypatch, "numba", lambda: [train(exp, X, Y)])
    assert_results_equal(c, nb)


def test_a_sweep_of_several_experiments_agrees(monkeypatch):
    exps = [Experiment(flavour="pytorch", optimizer="adam", lr=lr, epochs=3, model="two_relu", init={"b": -0.5})
            for lr in (0.001, 0.01, 0.1, 1e12)]
    exps += [Experiment(flavour="fastai", optimizer="sgd", momentum=0.9, lr=lr, epochs=3, batch_size=4)
             for lr in (0.01, 0.2)]
    exps += [Experiment(flavour="graddesc", optimizer="sgd", lr=1e-3, epochs=3),
             Experiment(flavour="pytorch", optimizer="sgd", lr=0.01, epochs=3, shuffle=True, seed=5)]
    c = _results(monkeypatch, "c", lambda: sweep(exps, XV, YV, keep_steps=True))
    nb = _results(monkeypatch, "numba", lambda: sweep(exps, XV, YV, keep_steps=True))
    assert c[3].diagnostics.divergence is not None
    assert_results_equal(c, nb)


# --- selection, fallback, and no numba on the C path ----------------------------------------


def test_forcing_c_without_a_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SHEETSYNC_KERNEL", "c")
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(SheetsyncError, match="no C compiler.*'/nonexistent/cc' was not found"):
        train(Experiment(flavour="pytorch", epochs=1), XV, YV)


def test_an_unknown_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SHEETSYNC_KERNEL", "fortran")
    with pytest.raises(SheetsyncError, match="expected c, numba or auto"):
        train(Experiment(flavour="pytorch", epochs=1), XV, YV)


def test_without_a_compiler_numba_runs_silently(monkeypatch):
    monkeypatch.delenv("SHEETSYNC_KERNEL", raising=False)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert backend.backend() == "numba"
    train(Experiment(flavour="pytorch", epochs=1), XV, YV)


def _fake_compiler(path, script: str):
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_a_failed_compile_falls_back_to_numba_and_leaves_no_library(monkeypatch, tmp_path, caplog):
    # a compiler that builds the probe but refuses the training loop
    picky = _fake_compiler(tmp_path / "picky-cc", 'for a; do case "$a" in *.c) grep -q "int kernel" "$a" && '
                           '{ echo "cc: internal error" >&2; exit 1; };; esac; done\nexec cc "$@"\n')
    monkeypatch.setenv("SHEETSYNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", picky)
    monkeypatch.delenv("SHEETSYNC_KERNEL", raising=False)
    monkeypatch.setattr(backend, "_failed_c", set())
    monkeypatch.setattr(backend, "_loaded", {})  # loops this process already loaded: compile afresh
    exp = Experiment(flavour="pytorch", optimizer="adam", epochs=2)
    with caplog.at_level("WARNING", logger="sheetsync.engine.loop.backend"):
        r = train(exp, XV, YV)
    assert "the C training loop did not compile, using numba instead" in caplog.text
    assert "internal error" in caplog.text
    folder = tmp_path / "cache" / "kernels"
    assert not list(folder.glob("*.so")) and not list(folder.glob("*.tmp*"))
    monkeypatch.setenv("CC", "cc")
    assert r.steps.equals(train(exp, XV, YV).steps)
    monkeypatch.setenv("CC", picky)
    monkeypatch.setenv("SHEETSYNC_KERNEL", "c")
    with pytest.raises(SheetsyncError, match="did not compile.*internal error"):
        train(exp, XV, YV)


def test_a_compiler_that_builds_nothing_is_given_up_on(monkeypatch, tmp_path, caplog):
    broken = _fake_compiler(tmp_path / "broken-cc", "echo 'fatal error: math.h: No such file' >&2\nexit 1\n")
    monkeypatch.setenv("SHEETSYNC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", broken)
    monkeypatch.delenv("SHEETSYNC_KERNEL", raising=False)
    monkeypatch.setattr(backend, "_failed_c", set())
    monkeypatch.setattr(backend, "_loaded", {})  # loops this process already loaded: compile afresh
    calls = []
    monkeypatch.setattr(cc, "build", lambda *a, real=cc.build: calls.append(1) or real(*a))
    with caplog.at_level("WARNING", logger="sheetsync.engine.loop.backend"):
        train(Experiment(flavour="pytorch", optimizer="adam", epochs=1), XV, YV)
        train(Experiment(flavour="pytorch", optimizer="sgd", epochs=1), XV, YV)
    assert "does not work, training loops run with numba" in caplog.text
    assert len(calls) == 2  # the first loop and the probe; the second loop goes straight to numba


def test_a_cached_library_is_reused_across_processes(tmp_path):
    code = textwrap.dedent("""
        import sheetsync
        exp = sheetsync.Experiment(flavour="pytorch", optimizer="rmsprop", epochs=2)
        r = sheetsync.train(exp, [1, 2, 3], [3, 5, 7])
        print(r.params["a"])
    """)
    env = dict(os.environ, SHEETSYNC_CACHE_DIR=str(tmp_path), SHEETSYNC_KERNEL="c")
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    libs = list((tmp_path / "kernels").glob("sheetsync_c_*.so"))
    assert len(libs) == 1
    stamp = libs[0].stat().st_mtime_ns
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert second.stdout == first.stdout and libs[0].stat().st_mtime_ns == stamp


@pytest.mark.parametrize("settings", [
    dict(flavour="pytorch", optimizer="sgd", model="linear", lr=1e-5),
    dict(flavour="graddesc", optimizer="adam"),  # Reset's warm-up passes and the macro between epochs
    dict(flavour="graddesc", optimizer="adagrad_ann"),
])
def test_the_c_backend_never_imports_numba(settings):
    code = textwrap.dedent(f"""
        import sys
        import sheetsync
        from sheetsync.demo import X, Y
        r = sheetsync.train(sheetsync.Experiment(epochs=3, **{settings!r}), X, Y)
        assert len(r.steps) == 3 * len(X), len(r.steps)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("numba", "llvmlite"))
        print(loaded)
    """)
    env = dict(os.environ, SHEETSYNC_KERNEL="c")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_processes_compiling_the_same_kernel_at_once_all_succeed(tmp_path):
    code = textwrap.dedent("""
        import sheetsync
        r = sheetsync.train(sheetsync.Experiment(flavour="fastai", optimizer="adam", epochs=2), [1, 2, 3], [3, 5, 7])
        print(repr(r.params["b"]))
    """)
    env = dict(os.environ, SHEETSYNC_CACHE_DIR=str(tmp_path), SHEETSYNC_KERNEL="c")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert len({out for out, _ in outs}) == 1
    folder = tmp_path / "kernels"
    assert len(list(folder.glob("sheetsync_c_*.so"))) == 1 and not list(folder.glob("*.tmp*"))


def test_threads_training_at_once_get_the_same_numbers(monkeypatch):
    """The scheduler trains in threads; ctypes releases the GIL during the loop, as nogil numba."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("SHEETSYNC_KERNEL", "c")
    exps = [Experiment(flavour="pytorch", optimizer=o, lr=0.01, epochs=20, model=m)
            for o in ("adam", "rmsprop", "sgd") for m in ("linear", "two_relu")]
    alone = [train(e, XV, YV).params for e in exps]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda e: train(e, XV, YV).params, exps * 3))
    assert together == alone * 3
