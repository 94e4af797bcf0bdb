"""Data for the classification labs: TensorFlow Playground's 2-D toys, and Palmer penguins.

The toys follow the definitions of TensorFlow Playground's `dataset.ts` (radius 5, the same
shapes, padding and noise), drawn from numpy's PCG64 generator seeded with `seed` (default 0),
so the same call gives the same points on every machine; they are not the playground's own
points, which come from JavaScript's unseeded Math.random. Its labels ±1 become 1 and 0.

- `circle`: half the points at radius 0…2.5 (class 1), half at 3.5…5 (class 0); the label is
  decided after the noise moves a point (inside radius 2.5: 1).
- `xor`: x and y uniform in −5…5, pushed 0.3 away from each axis; class 1 where x·y ≥ 0.
- `gauss`: two Gaussian clouds at (2, 2) (class 1) and (−2, −2) (class 0), variance
  0.5 + 7·noise (the playground's scale: 0.5 at noise 0, 4 at noise 0.5).
- `spiral`: two interleaved spirals, r = 5·i/m, t = 3.5π·i/m (+π for class 0), plus noise.

The points are then shuffled (the playground shuffles before it trains). Noise is the playground's: uniform in ±5·noise per coordinate for circle and xor, ±noise for
the spiral, the variance above for gauss.

`penguins`: the Palmer Archipelago penguins (Gorman, Williams and Fraser 2014; Horst, Hill and
Gorman's R package), as the `palmerpenguins` package ships them: 344 penguins of three species,
the 342 with bill measurements kept. A small real multi-class set, shipped by a small package
that depends on nothing sheetsync does not already use.
"""

from __future__ import annotations

import math

import numpy as np

RADIUS = 5.0
TOYS = ("circle", "xor", "gauss", "spiral")
PENGUIN_FEATURES = ("bill_length_mm", "bill_depth_mm")  # two inputs: the boundary is a picture


def toy(name: str, n: int = 200, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(X of shape (n, 2), y of 0s and 1s): one of TensorFlow Playground's classification toys."""
    if name not in TOYS:
        raise ValueError(f"toy dataset: expected one of {', '.join(TOYS)}, found {name!r}")
    rng = np.random.default_rng(seed)
    X, y = {"circle": _circle, "xor": _xor, "gauss": _gauss, "spiral": _spiral}[name](rng, n, noise)
    order = rng.permutation(n)  # the playground shuffles too: per-row steps must not see one class, then the other
    return X[order], y[order]


def _circle(rng, n, noise):
    inner = n // 2
    r = np.r_[rng.uniform(0, RADIUS * 0.5, inner), rng.uniform(RADIUS * 0.7, RADIUS, n - inner)]
    angle = rng.uniform(0, 2 * math.pi, n)
    X = np.c_[r * np.sin(angle), r * np.cos(angle)]
    moved = X + rng.uniform(-RADIUS, RADIUS, (n, 2)) * noise
    y = (np.hypot(moved[:, 0], moved[:, 1]) < RADIUS * 0.5).astype(np.int64)
    return X, y


def _xor(rng, n, noise):
    X = rng.uniform(-5, 5, (n, 2))
    X += np.where(X > 0, 0.3, -0.3)  # the playground's padding: no point on an axis
    moved = X + rng.uniform(-RADIUS, RADIUS, (n, 2)) * noise
    return X, (moved[:, 0] * moved[:, 1] >= 0).astype(np.int64)


def _gauss(rng, n, noise):
    sd = math.sqrt(0.5 + 7 * noise)
    half = n // 2
    X = np.r_[rng.normal(2, sd, (half, 2)), rng.normal(-2, sd, (n - half, 2))]
    return X, np.r_[np.ones(half, np.int64), np.zeros(n - half, np.int64)]


def _spiral(rng, n, noise):
    out, labels = [], []
    for delta, label, m in ((0.0, 1, n // 2), (math.pi, 0, n - n // 2)):
        i = np.arange(m)
        r = i / m * RADIUS
        t = 1.75 * i / m * 2 * math.pi + delta
        out.append(np.c_[r * np.sin(t), r * np.cos(t)] + rng.uniform(-1, 1, (m, 2)) * noise)
        labels.append(np.full(m, label, np.int64))
    return np.concatenate(out), np.concatenate(labels)


def penguins(features: tuple[str, ...] = PENGUIN_FEATURES) -> tuple[np.ndarray, list[str]]:
    """(X, species names) of the penguins whose `features` are all measured, in the package's order."""
    try:
        from palmerpenguins import load_penguins
    except ImportError:  # declared in pyproject.toml; a trimmed install may lack it
        raise RuntimeError("the penguins data needs the palmerpenguins package: pip install palmerpenguins") from None
    frame = load_penguins().dropna(subset=list(features) + ["species"])
    return frame[list(features)].to_numpy(dtype=np.float64), [str(s) for s in frame["species"]]


def data_rows(X: np.ndarray, y, headers: list[str] | None = None) -> list[list]:
    """A `data` tab: `x1`, `x2`, … and `y` (a number or a class name) per row."""
    X = np.asarray(X, dtype=np.float64).reshape(len(y), -1)
    headers = headers or [f"x{i + 1}" for i in range(X.shape[1])] + ["y"]
    return [headers] + [[float(v) for v in row] + [_plain(label)] for row, label in zip(X, y)]


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v
