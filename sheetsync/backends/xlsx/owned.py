"""The ownership mark: every tab sheetsync creates carries a hidden, sheet-local defined name
``_sheetsync_owned`` (see the package's docstring for why it follows the tab)."""

from __future__ import annotations

from . import ooxml

OWNED_MARK = "_sheetsync_owned"


def owned_positions(wb: ooxml.WorkbookXml) -> set[int]:
    return {d.local for d in wb.defined_names if d.name == OWNED_MARK and d.local is not None}
