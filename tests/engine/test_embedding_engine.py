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
