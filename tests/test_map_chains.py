"""An epochs cell's formula adds its epoch's step cells one by one unless the chain is over the
formula length limit; the map decides "over" before building the chain (an epoch of 100,000
rows built 100,000 names to throw them away), and must decide as building it would."""

import pytest

from sheetsync.layout.map import _chain, _chain_too_long


@pytest.mark.parametrize("column", ["'basic steps'!H", "s!A", "'a much longer experiment name steps'!AB"])
@pytest.mark.parametrize("op", ["{}", "{0}*{0}"])
def test_a_chain_is_called_too_long_only_when_building_it_says_so(column, op):
    called_too_long = 0
    for top in (4, 99_990):
        for n in range(1, 1_200):
            if _chain_too_long(column, top, top + n - 1):
                cells = [f"{column}{r}" for r in range(top, top + n)]
                assert _chain(cells, op, "FALLBACK") == ("FALLBACK", False), (column, op, top, n)
                called_too_long += 1
    assert called_too_long > 0  # the check decides some of them


def test_a_plain_chain_is_built_up_to_its_limit():
    """With "{}" the bound is exact while the row numbers keep their digits."""
    column, top = "s!A", 100_000
    for n in range(1, 1_000):
        cells = [f"{column}{r}" for r in range(top, top + n)]
        assert _chain_too_long(column, top, top + n - 1) == (not _chain(cells, "{}", "F")[1]), n
    assert _chain(None, "{}", "F") == ("F", False)
