"""The dot_product model in the one engine (issue 15): trained by the compiled loop, checked
against a torch nn.Embedding model step by step, against a one-hot matrix product, and for
the loop's structure (table sizes are run-time numbers, not part of the compiled loop)."""

from __future__ import annotations

import numpy as np
import pytest

from sheetsync.engine import embeddings
from sheetsync.engine.embeddings import Ids
from sheetsync.engine.train import train
from sheetsync.settings import Experiment

torch = pytest.importorskip("torch")


def ratings(users=6, items=5, n=23, seed=1):
    rng = np.random.default_rng(seed)
    x = np.stack([rng.integers(0, users, n), rng.integers(0, items, n)], 1)
    x[:users, 0] = np.arange(users)  # every user and item rated at least once
    x[:items, 1] = np.arange(items)
    y = rng.integers(1, 6, n).astype(float)
    ids = Ids(tuple(f"user{k}" for k in range(users)), tuple(f"film {k}" for k in range(items)))
    return x, y, ids


def torch_run(e: Experiment, x, y, tables: embeddings.Tables):
    """A torch model of nn.Embedding tables (fastai's EmbeddingDotBias), MSELoss and torch.optim,
    stepped as the engine steps; the tables after every optimizer step."""
    F = tables.user_factors.shape[1]
    weights = [torch.tensor(tables.user_factors), torch.tensor(tables.item_factors)]
    if tables.user_bias is not None:
        weights += [torch.tensor(tables.user_bias)[:, None], torch.tensor(tables.item_bias)[:, None]]
    embs = [torch.nn.Embedding(w.shape[0], w.shape[1], _weight=w.clone().double()) for w in weights]
    params = [m.weight for m in embs]
    kw = {"lr": e.lr, "weight_decay": e.weight_decay}
    opt = {"sgd": lambda: torch.optim.SGD(params, **kw),
           "momentum": lambda: torch.optim.SGD(params, momentum=e.momentum, **kw),
           "adam": lambda: torch.optim.Adam(params, betas=(e.beta1, e.beta2), eps=e.eps, **kw),
           "rmsprop": lambda: torch.optim.RMSprop(params, alpha=e.alpha, eps=e.eps, **kw),
           "adagrad": lambda: torch.optim.Adagrad(params, eps=e.eps, **kw),
           "adamw": lambda: torch.optim.AdamW(params, betas=(e.beta1, e.beta2), eps=e.eps, **kw)}[e.optimizer]()
    X, Y = torch.tensor(x, dtype=torch.int64), torch.tensor(y)
    n, k = len(y), e.batch_size or len(y)
    after = []
    for _ in range(e.epochs):
        for start in range(0, n, k):
            xb, yb = X[start:start + k], Y[start:start + k]
            users, items = xb[:, 0], xb[:, 1]
            res = (embs[0](users) * embs[1](items)).sum(1)
            if len(embs) == 4:
                res = res + embs[2](users).squeeze(1) + embs[3](items).squeeze(1)
            if e.y_range is not None:
                low, high = e.y_range
                res = torch.sigmoid(res) * (high - low) + low
            loss = torch.nn.functional.mse_loss(res, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            after.append([p.detach().numpy().copy() for p in params])
    return after, F


def final_tables(result):
    t = embeddings.tables_of(result)
    out = [t.user_factors, t.item_factors]
    if t.user_bias is not None:
        out += [t.user_bias[:, None], t.item_bias[:, None]]
    return out


CASES = [
    dict(optimizer="sgd", lr=0.05, batch_size=1),
    dict(optimizer="adam", lr=0.05, batch_size=1),
    dict(optimizer="sgd", lr=0.1, batch_size=4),
    dict(optimizer="adam", lr=0.02, batch_size="all", y_range=(0, 5.5)),
    dict(optimizer="momentum", lr=0.03, momentum=0.9, batch_size=3, weight_decay=0.01),
    dict(optimizer="rmsprop", lr=0.01, batch_size=5, bias=False),
    dict(optimizer="adamw", lr=0.02, batch_size=2, weight_decay=0.1, y_range=(0.5, 5.5)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_pytorch_flavour_matches_torch_every_step(case):
    x, y, ids = ratings()
    e = Experiment(model="dot_product", flavour="pytorch", epochs=3, factors=4, seed=3, **case)
    r = train(e, x, y, ids=ids)
    after, _ = torch_run(e, x, y, embeddings.start_tables(r))
    for got, want in zip(final_tables(r), after[-1]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    # every step: the recorded new slots of the batch's last row are torch's tables then
    steps = r.steps
    last = steps[~np.isnan(steps["new u1"].to_numpy())]
    assert len(last) == len(after)
    for (_, line), tables in zip(last.iterrows(), after):
        u, m = int(line["user"]), int(line["item"])
        for f in range(4):
            assert line[f"new u{f + 1}"] == pytest.approx(tables[0][u, f], rel=1e-12, abs=0)
            assert line[f"new m{f + 1}"] == pytest.approx(tables[1][m, f], rel=1e-12, abs=0)


def test_predictions_are_a_one_hot_matrix_product():
    """Jeremy's movielens_1hot point: looking a row up is multiplying by a one-hot vector."""
    x, y, ids = ratings()
    r = train(Experiment(model="dot_product", optimizer="adam", flavour="pytorch", lr=0.05, epochs=2, factors=3),
              x, y, ids=ids)
    t = embeddings.tables_of(r)
    one_u = np.eye(len(ids.users))[x[:, 0]]
    one_m = np.eye(len(ids.items))[x[:, 1]]
    by_matrix = ((one_u @ t.user_factors) * (one_m @ t.item_factors)).sum(1) + one_u @ t.user_bias + one_m @ t.item_bias
    np.testing.assert_allclose(embeddings.predict(t, x), by_matrix, rtol=1e-12, atol=1e-15)


def test_rmse_columns_are_the_predictions_of_the_tables():
    x, y, ids = ratings()
    e = Experiment(model="dot_product", optimizer="sgd", flavour="pytorch", lr=0.1, epochs=2, factors=3,
                   y_range=(0, 5.5), embedding_init="uniform")
    r = train(e, x, y, ids=ids)
    assert embeddings.start_rmse(r) == embeddings.rmse(embeddings.predict(embeddings.start_tables(r), x), y)
    assert r.epochs["rmse"].iloc[-1] == embeddings.rmse(embeddings.predict(embeddings.tables_of(r), x), y)
    # the recorded pred of each step is predict() on the tables before that step (first step)
    first = r.steps.iloc[0]
    assert first["pred"] == embeddings.predict(embeddings.start_tables(r), x[:1])[0]


def test_parameters_are_named_from_the_ids_and_init_overrides():
    x, y, ids = ratings()
    e = Experiment(model="dot_product", optimizer="sgd", flavour="pytorch", lr=0.1, epochs=1, factors=2,
                   init={"uuser0_1": 0.5, "mfilm_3_2": -0.25, "bmfilm_0": 1.5})
    r = train(e, x, y, ids=ids)
    start = embeddings.start_tables(r)
    assert (start.user_factors[0, 0], start.item_factors[3, 1], start.item_bias[0]) == (0.5, -0.25, 1.5)
    assert r.param_names[:3] == ["uuser0_1", "uuser0_2", "uuser1_1"] and set(r.params) == set(r.param_names)
    assert start.ids == ids and r.ids == ids


# ---------------------------------------------------------------------------------------------
# The loop's structure and its two printers


def test_table_sizes_are_run_time_numbers_not_part_of_the_loop():
    from sheetsync.engine.loop.c_printer import source
    from sheetsync.engine.loop.program import build
    from sheetsync.engine.train import prepare

    e = Experiment(model="dot_product", optimizer="adam", flavour="pytorch", factors=5, batch_size=7)
    small = prepare(e, *ratings(3, 4, 20)[:2], ratings(3, 4, 20)[2])
    x, y, ids = ratings(943, 1682, 3000)  # MovieLens 100k's users and items
    large = prepare(e, x, y, ids)
    assert small.spec.key == large.spec.key
    assert source(build(small.spec)) == source(build(large.spec))
    assert len(large.param_names) == (943 + 1682) * 6
    # the optimizer's cells appear once, inside the loop over the table's entries
    text = source(build(large.spec))
    assert text.count("sqrt(") == 1 and "for (int64_t jj = 0; jj < n_p; jj++)" in text


def test_plain_sgd_visits_only_the_touched_entries():
    from sheetsync.engine.loop.spec import build_spec

    def spec(**kw):
        return build_spec(Experiment(model="dot_product", **kw), 10, 2)

    assert spec(flavour="pytorch", optimizer="sgd").sparse_update
    assert spec(flavour="graddesc", optimizer="sgd").sparse_update
    assert spec(flavour="fastai", optimizer="sgd").sparse_update
    assert not spec(flavour="pytorch", optimizer="sgd", weight_decay=0.1).sparse_update
    assert not spec(flavour="fastai", optimizer="sgd", weight_decay=0.1).sparse_update
    assert not spec(flavour="pytorch", optimizer="momentum").sparse_update
    assert not spec(flavour="pytorch", optimizer="adam").sparse_update


def bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    return bool(((a.view(np.int64) == b.view(np.int64)) | (np.isnan(a) & np.isnan(b))).all())


BACKEND_CASES = [
    dict(flavour="pytorch", optimizer="adam", batch_size=4, y_range=(0.0, 5.5)),
    dict(flavour="pytorch", optimizer="sgd", batch_size=1),
    dict(flavour="pytorch", optimizer="rmsprop", batch_size="all", bias=False, weight_decay=0.01),
    dict(flavour="fastai", optimizer="momentum", batch_size=3, weight_decay=0.1),
    dict(flavour="graddesc", optimizer="momentum"),
]


@pytest.mark.parametrize("case", BACKEND_CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_c_and_numba_loops_agree_bit_for_bit(case):
    """Both printers of one statement list, several experiment rows side by side: an ordinary
    lr, half of it, one that diverges, one whose entries soon cross a small bound; recorded."""
    from sheetsync.engine.loop import backend, cc
    from sheetsync.engine.train import pack, prepare, reset_state

    if cc.compiler() is None:
        pytest.skip("no C compiler")
    x, y, ids = ratings(5, 4, 17)
    job = prepare(Experiment(model="dot_product", factors=3, lr=0.05, **case), x, y, ids)
    spec = job.spec
    P, S, H, T = pack(job, reset_state(job))
    P, S, T, H = (np.repeat(a, 4, axis=0) for a in (P, S, T, H))
    lr, bound = spec.hyper.index("lr"), spec.hyper.index("divergence_bound")
    H[1, lr] *= 0.5
    H[2, lr] = 1e30
    H[3, bound] = 0.2
    rng = np.random.default_rng(7)
    P = P + rng.uniform(-0.1, 0.1, size=P.shape)
    order = np.stack([rng.permutation(len(y)) for _ in range(2)]).astype(np.int64)
    out = {}
    for which in ("c", "numba"):
        fn = backend.load_kernel(spec, which)
        p, s, t = P.copy(), S.copy(), T.copy()
        R = np.full((4, 3 * len(y), len(spec.step_columns())), -7.25)
        EPO = np.full((4, 3, len(spec.epoch_columns())), -7.25)
        DIV = np.zeros((4, 5), dtype=np.int64)
        fn(job.X, job.Y, order, p, s, H.copy(), t, 3, True, R, EPO, DIV)
        out[which] = {"P": p, "S": s, "T": t, "R": R, "EPO": EPO, "DIV": DIV}
    for name in out["c"]:
        assert bits_equal(out["c"][name], out["numba"][name]), name
    assert out["c"]["DIV"][2, 0] == 1 and out["c"]["DIV"][0, 0] == 0  # the diverging row did diverge


def test_a_wrong_table_size_is_refused_before_the_c_loop_runs():
    from sheetsync.engine.loop import backend, cc
    from sheetsync.engine.train import pack, prepare, reset_state

    if cc.compiler() is None:
        pytest.skip("no C compiler")
    x, y, ids = ratings()
    job = prepare(Experiment(model="dot_product", factors=3), x, y, ids)
    P, S, H, T = pack(job, reset_state(job))
    H[0, job.spec.hyper.index("n_user")] += 1  # would read past P's end
    with pytest.raises(ValueError, match="kernel argument P"):
        backend.load_kernel(job.spec, "c")(job.X, job.Y, np.arange(len(y))[None], P, S, H, T, 1, False,
                                           np.empty((1, 0, len(job.spec.step_columns()))),
                                           np.zeros((1, 1, 4)), np.zeros((1, 5), dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# Runs, states, diagnostics


def test_two_runs_continue_exactly_as_one():
    x, y, ids = ratings()
    e = Experiment(model="dot_product", flavour="pytorch", optimizer="adam", epochs=4, factors=3, lr=0.05,
                   batch_size=3)
    full = train(e, x, y, ids=ids)
    half = train(e.replace(epochs=2), x, y, ids=ids)
    rest = train(e.replace(epochs=2), x, y, state=half.state, ids=ids)
    assert rest.params == full.params
    assert list(rest.epochs["epoch"]) == [3, 4] and list(rest.epochs["rmse"]) == list(full.epochs["rmse"][2:])
    assert rest.start_rmse == half.epochs["rmse"].iloc[-1]


def test_a_divergence_names_the_step_the_rating_and_a_safe_lr():
    x, y, ids = ratings()
    r = train(Experiment(model="dot_product", flavour="pytorch", optimizer="sgd", epochs=5, factors=3, lr=3.0),
              x, y, ids=ids)
    d = r.diagnostics
    assert d.divergence is not None and d.divergence.param.startswith(("u", "m", "b"))
    user, item = (int(v) for v in x[d.divergence.row - 1])
    assert f"user {ids.users[user]} for item {ids.items[item]}" in d.divergence.reason
    assert d.safe_lr is not None and d.safe_lr < 3.0
    assert any("Diverged at epoch" in s for s in d.story)


def test_unsupported_settings_are_clear_errors():
    from sheetsync.errors import SettingError

    x, y, ids = ratings()
    with pytest.raises(SettingError, match="graddesc supports sgd, momentum, rmsprop, adam"):
        train(Experiment(model="dot_product", flavour="graddesc", optimizer="eve"), x, y, ids=ids)
    with pytest.raises(SettingError, match="has no parameter 'unope_1'"):
        train(Experiment(model="dot_product", init={"unope_1": 1.0}), x, y, ids=ids)
    with pytest.raises(SettingError, match="rating row 2: the item index 7 is not one of 0..4"):
        bad = x.copy()
        bad[1, 1] = 7
        train(Experiment(model="dot_product"), bad, y, ids=ids)


def test_graddesc_sgd_steps_each_rating_and_carries_the_last_rows_inputs():
    """The workbook's tab: batch 1, the epoch's last update is shown but not carried."""
    x, y, ids = ratings()
    r = train(Experiment(model="dot_product", flavour="graddesc", optimizer="sgd", lr=0.01, epochs=2, factors=2),
              x, y, ids=ids)
    last = r.steps.iloc[-1]
    user = ids.user_names[int(last["user"])]
    assert r.spec.batch_size == 1 and last["new u1"] != last["u1"]
    assert r.params[f"u{user}_1"] == last["u1"]  # carried: the last row's inputs, not its update


def test_a_setting_that_changes_the_table_loop_changes_its_key():
    from sheetsync.engine.loop import numba_printer, program
    from sheetsync.engine.train import prepare, structure
    from sheetsync.errors import SettingError
    from sheetsync.settings import SETTINGS

    x, y, ids = ratings()
    probes = [True, False, 0, 1, 2, 3, 7, 0.0, 0.3, 0.9, 1e-3, 2.5, "all", "uniform", "normal", (0.0, 5.5),
              (1.0, 5.0), "absolute", "squared", "momentum", "adam", "sgd"]
    checked = differed = 0
    for flavour, optimizer in (("pytorch", "adam"), ("graddesc", "momentum")):
        base = dict(model="dot_product", flavour=flavour, optimizer=optimizer, factors=3)
        job = prepare(Experiment(**base), x, y, ids)
        key, text = structure(job), numba_printer.source(program.build(job.spec))
        for name in SETTINGS:
            for value in probes:
                try:
                    other = prepare(Experiment(**{**base, name: value}), x, y, ids)
                except SettingError:
                    continue
                changed = numba_printer.source(program.build(other.spec)) != text
                assert not changed or structure(other) != key, f"{name}={value!r} changes the loop, not the key"
                checked += 1
                differed += changed
    assert checked > 100 and differed > 10, (checked, differed)


def test_scalar_model_pictures_do_not_lie_about_tables():
    """The loss landscape (two parameters over all rows) has no meaning for a table's slots, and a
    batch's step moves other rows than a line's own: both are left out, batch 1 keeps its margin."""
    from sheetsync.engine import explain

    x, y, ids = ratings()
    e = Experiment(model="dot_product", flavour="pytorch", optimizer="sgd", lr=0.05, epochs=1, factors=3)
    one = train(e, x, y, ids=ids)
    assert explain.landscape(one, x, y) is None
    assert np.isfinite(explain.step_geometry(one).margin).all()
    batch = train(e.replace(batch_size=3), x, y, ids=ids)
    assert np.isnan(explain.step_geometry(batch).margin).all()


def test_a_state_for_other_users_is_refused_clearly():
    from sheetsync.errors import SheetsyncError

    x, y, ids = ratings()
    e = Experiment(model="dot_product", flavour="pytorch", optimizer="sgd", epochs=1, factors=2)
    r = train(e, x, y, ids=ids)
    renamed = Ids(("someone else",) + ids.users[1:], ids.items)
    with pytest.raises(SheetsyncError, match="no value for usomeone_else_1.*other users or items"):
        train(e, x, y, state=r.state, ids=renamed)
