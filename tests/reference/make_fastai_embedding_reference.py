"""Generate tests/reference/fastai_embedding_reference.json: dot_product runs driven by the real
fastai 2.8.12 optimizers (SGD, SGD with mom, decoupled and L2 weight decay, RMSProp with and
without mom, Adam with defaults, custom betas/eps/wd, and L2 weight decay).

The model is fastai's own `fastai.collab.EmbeddingDotBias` (with `y_range` and without) in
float64, and, for `bias: false` (fastai has no collab module without biases), the same forward
without the bias tables (tests/engine/embed_torch.py's `DotProduct`, as the fastai book's
`DotProduct`). The loop is embed_torch.reference_run's: MSE loss (mean), rows in order,
`zero_grad(); loss.backward(); opt.step()`, per row, in batches of 7 and the full batch. The
optimizer configurations and their random draws are make_fastai_reference.py's `CONFIGS`, with
the lrs scaled for this problem (recorded in `settings`).

The JSON holds the ratings (shared), and per problem: the fastai call, the arguments fastai
ignored, the structure, sheetsync's settings, the start tables, per steps row `pred` and the
row's table entries after the step (`new u1.. new bm`, in embed_torch.step_columns order), and
the final tables. tests/engine/test_embedding_fastai.py compares sheetsync with it (fastai is
not needed for that).

fastai is installed as make_fastai_reference.py's docstring says (a throw-away virtualenv that
sees the system torch); `fastai.collab` also needs fastdownload and scikit-learn:

    python -m venv --system-site-packages /tmp/fastai-venv
    /tmp/fastai-venv/bin/pip install matplotlib scipy pillow "plum-dispatch<2.10" scikit-learn
    /tmp/fastai-venv/bin/pip install --no-deps fastai==2.8.12 fastcore==2.2.41 \
        fastprogress==1.0.3 fasttransform==0.0.5 fastdownload==0.0.8
    /tmp/fastai-venv/bin/python tests/reference/make_fastai_embedding_reference.py

Rerunning it rewrites the JSON with identical numbers.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "engine")]

import make_fastai_reference as mfr  # noqa: E402  (imports fastai.optimizer; float64 default)
from embed_torch import DotProduct, random_ratings, random_start, reference_run, step_columns  # noqa: E402
from fastai.collab import EmbeddingDotBias  # noqa: E402

OUTPUT = HERE / "fastai_embedding_reference.json"
N_USERS, N_ITEMS, N_RATINGS, FACTORS = 9, 7, 40, 2
Y_RANGE = (0.0, 5.5)
BATCHES = {1: 2, 7: 3, 0: 6}  # batch size (0 = all) -> epochs: 80, 18 and 6 steps
STRUCTURES = {"bias-yrange": (True, Y_RANGE), "bias": (True, None), "nobias": (False, None)}
CONFIGS = [mfr.sgd, mfr.sgd_mom, mfr.sgd_decoupled_wd, mfr.sgd_mom_l2, mfr.rmsprop, mfr.rmsprop_mom,
           mfr.rmsprop_eps_wd, mfr.adam_defaults, mfr.adam_custom, mfr.adam_l2]
LR_SCALE = {"SGD": 5.0, "RMSProp": 3.0, "Adam": 1.0}  # the regression problems' lrs, sized for ratings


def ratings() -> tuple[np.ndarray, np.ndarray]:
    return random_ratings(np.random.default_rng(zlib.crc32(b"fastai embedding ratings")), N_USERS, N_ITEMS,
                          N_RATINGS)


def fastai_model(bias: bool, y_range):
    if bias:
        return EmbeddingDotBias(FACTORS, N_USERS, N_ITEMS, y_range=y_range)
    return DotProduct(N_USERS, N_ITEMS, FACTORS, False, y_range)


def make_problem(config, structure: str, batch_size: int) -> dict:
    """One reference problem; lr shrinks (by 4, recorded) until fastai's run stays in a sane range."""
    name = f"{config.__name__}-{structure}-bs{batch_size or 'all'}"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    settings, constructor, kwargs = config(rng)
    settings["lr"] = kwargs["lr"] = kwargs["lr"] * LR_SCALE[constructor]
    bias, y_range = STRUCTURES[structure]
    start = random_start(rng, N_USERS, N_ITEMS, FACTORS, bias)
    x, y = ratings()
    for _ in range(10):
        make = lambda ps: getattr(mfr.fo, constructor)(ps, **kwargs)  # noqa: E731
        with np.errstate(all="ignore"):
            ref = reference_run(x, y, start, y_range=y_range, batch_size=batch_size, epochs=BATCHES[batch_size],
                                make_optimizer=make, model=fastai_model(bias, y_range))
        if all(np.isfinite(t).all() and np.abs(t).max() < 1e3 for t in ref.final):
            break
        settings["lr"] = kwargs["lr"] = kwargs["lr"] / 4
    else:
        raise RuntimeError(f"no stable lr for {name}")
    new = [c for c in step_columns(FACTORS, bias) if c.startswith("new ")]
    return {
        "id": name,
        "fastai_call": mfr.fastai_call(constructor, kwargs),
        "fastai_ignored": mfr.ignored_arguments(constructor, kwargs),
        "model": "fastai.collab.EmbeddingDotBias" if bias else "embed_torch.DotProduct (no bias tables)",
        "bias": bias,
        "y_range": list(y_range) if y_range else None,
        "settings": {"flavour": "fastai", **settings},
        "batch_size": batch_size or "all",
        "epochs": BATCHES[batch_size],
        "start": {"user_factors": start.user_factors.tolist(), "item_factors": start.item_factors.tolist(),
                  "user_bias": None if not bias else start.user_bias.tolist(),
                  "item_bias": None if not bias else start.item_bias.tolist()},
        "steps_columns": ["pred", *new],
        "steps": ref.steps[["pred", *new]].to_numpy().tolist(),
        "final": [t.tolist() for t in ref.final],
    }


def main() -> None:
    made = mfr.made_with()
    assert not made["torchvision imported"], "torchvision got imported; this script expects no stub"
    made["command"] = "/tmp/fastai-venv/bin/python tests/reference/make_fastai_embedding_reference.py"
    made["fastai.collab file"] = str(Path(sys.modules[EmbeddingDotBias.__module__].__file__).name)
    x, y = ratings()
    problems = [make_problem(c, s, b) for c in CONFIGS for s in STRUCTURES for b in BATCHES]
    document = {"made_with": made, "factors": FACTORS, "users": N_USERS, "items": N_ITEMS,
                "x": x.tolist(), "y": y.tolist(), "problems": problems}
    OUTPUT.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    print(f"wrote {len(problems)} problems, {OUTPUT.stat().st_size / 1e6:.2f} MB, to {OUTPUT}")


if __name__ == "__main__":
    main()
