"""`NAME similar` (issue 15): nearest items by cosine similarity of the item factors, worked out by
hand on a tiny table, and the items with the largest and smallest bias."""

from __future__ import annotations

import numpy as np
import pytest

from sheetsync.engine.embeddings import Ids, Tables
from sheetsync.layout.factors import EmbeddingView
from sheetsync.layout.similar import (
    bias_ends,
    cosine_similarities,
    nearest,
    render_similar,
)

# item factors: A and B point almost the same way, C at right angles to A, D opposite A, E nowhere
MF = np.array([[1.0, 0.0], [3.0, 1.0], [0.0, 2.0], [-2.0, 0.0], [0.0, 0.0]])
IDS = Ids(("1", "2"), ("A", "B", "C", "D", "E"))
BIAS = np.array([0.5, -0.25, 2.0, -1.5, 0.0])


def test_cosine_by_hand():
    s = cosine_similarities(MF)
    assert s[0, 1] == pytest.approx(3 / np.sqrt(10), rel=1e-15)  # (1,0)·(3,1) / (1 · √10)
    assert s[1, 2] == pytest.approx(2 / (np.sqrt(10) * 2), rel=1e-15)  # (3,1)·(0,2) = 2
    assert s[0, 2] == 0.0 and s[0, 3] == pytest.approx(-1.0, rel=1e-15)
    assert np.isnan(s[4]).all() and np.isnan(s[:, 4]).all()  # a zero vector points nowhere


def test_nearest_ranks_by_similarity_never_itself_nor_a_zero_vector():
    index, value = nearest(MF, 3)
    # A: B (0.949), C (0), D (-1); B: A, C (0.316), D (-0.949); C: B, A (0, earlier than D's 0), D
    assert index[0].tolist() == [1, 2, 3] and index[1].tolist() == [0, 2, 3] and index[2].tolist() == [1, 0, 3]
    np.testing.assert_allclose(value[0], [3 / np.sqrt(10), 0.0, -1.0], rtol=1e-15)
    assert index[4].tolist() == [-1, -1, -1] and np.isnan(value[4]).all()  # E has no neighbours
    assert 4 not in index[:4]
    assert nearest(MF, 10)[0].shape == (5, 4)  # at most every other item


def test_bias_ends():
    top, bottom = bias_ends(BIAS, 2)
    assert top.tolist() == [2, 0] and bottom.tolist() == [3, 1]


def view() -> EmbeddingView:
    # item C rated most, then A; users 1 and 2
    u, m = np.array([0, 1, 0, 1, 0, 1]), np.array([2, 2, 0, 0, 2, 3])
    return EmbeddingView(IDS, u, m, np.full(6, 3.0))


def test_the_tab_lists_items_by_ratings_with_their_neighbours_and_the_bias_ends():
    tables = Tables(IDS, np.ones((2, 2)), MF, np.zeros(2), BIAS)
    tab = render_similar("cf", tables, view(), k=2)
    assert tab.name == "cf similar"
    main = {c.header if c.header != "similarity" else f"similarity {k}": c for k, c in
            enumerate(tab.tables[0].columns)}
    headers = [c.header for c in tab.tables[0].columns]
    assert headers == ["item", "ratings", "nearest 1", "similarity", "nearest 2", "similarity", "parameter"]
    assert list(main["item"].values) == ["C", "A", "D", "B", "E"]  # most rated first, ties in table order
    assert list(main["ratings"].values) == [3, 2, 1, 0, 0]
    assert list(main["parameter"].values) == ["mC", "mA", "mD", "mB", "mE"]
    assert list(main["nearest 1"].values) == ["B", "B", "C", "A", None]
    assert list(main["nearest 2"].values) == ["A", "C", "B", "C", None]
    sims = tab.tables[0].columns[3].values
    assert sims[1] == pytest.approx(3 / np.sqrt(10), rel=1e-15) and np.isnan(sims[4])
    scales = [s for s in tab.color_scales if s.col in (3, 5)]
    assert len(scales) == 2 and all((s.low_value, s.mid_value, s.high_value) == (-1, 0, 1) for s in scales)
    largest, smallest = tab.tables[1], tab.tables[2]
    assert list(largest.columns[0].values)[:2] == ["C", "A"] and list(largest.columns[1].values)[:2] == [2.0, 0.5]
    assert list(smallest.columns[0].values)[:2] == ["D", "B"]
    sentence = next(t.value for t in tab.texts if (t.row, t.col) == (0, 0))
    assert "cosine similarity" in sentence and "largest bias" in sentence


def test_without_bias_no_bias_tables():
    tab = render_similar("cf", Tables(IDS, np.ones((2, 2)), MF, None, None), view())
    assert len(tab.tables) == 1
    assert "bias" not in next(t.value for t in tab.texts if (t.row, t.col) == (0, 0))


def test_many_items_are_listed_to_a_cap_with_neighbours_from_all():
    n = 12
    ids = Ids(("u",), tuple(f"i{k}" for k in range(n)))
    f = np.stack([np.cos(np.arange(n) / 3), np.sin(np.arange(n) / 3)], axis=1)
    v = EmbeddingView(ids, np.zeros(n, dtype=int), np.arange(n), np.ones(n))
    tab = render_similar("cf", Tables(ids, np.ones((1, 2)), f, None, None), v, max_items=4)
    assert len(tab.tables[0].columns[0].values) == 4
    assert "Listed: the 4 most rated of 12 items" in tab.texts[0].value
    assert list(tab.tables[0].columns[2].values)[:2] == ["i1", "i0"]  # i0's nearest is i1, i1's i0 (tie: earlier)


def test_nearest_of_some_rows_equals_those_rows_of_all():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 4))
    rows = np.array([7, 3, 41])
    every, sims = nearest(f, 4)
    some, some_sims = nearest(f, 4, rows)
    np.testing.assert_array_equal(some, every[rows])
    np.testing.assert_array_equal(some_sims, sims[rows])
    assert cosine_similarities(f, rows).shape == (3, 50)


def test_ids_are_written_as_text_whatever_they_look_like():
    ids = Ids(("1",), ("27", "Up (2009)", "49"))
    tab = render_similar("cf", Tables(ids, np.ones((1, 2)), MF[:3], None, None),
                         EmbeddingView(ids, np.zeros(3, dtype=int), np.arange(3), np.ones(3)))
    item, nearest_1 = tab.tables[0].columns[0], tab.tables[0].columns[2]
    assert list(item.values) == ["27", "Up (2009)", "49"] and item.number_format == nearest_1.number_format == "@"
