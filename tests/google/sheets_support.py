"""Constants and state helpers shared by the Google backend tests (a uniquely named module,
so importing it never collides with another folder's ``conftest``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fake_sheets import FakeSpreadsheet, clone

KEY = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd"
SA_EMAIL = "sheetsync-test@demo-project.iam.gserviceaccount.com"
# Recorded traffic lives beside the repository (CI checks out shared/ next to the clone).
CASSETTES = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "sheets-cassettes"


def model(fake, book) -> FakeSpreadsheet:
    """The fake's current spreadsheet (each batchUpdate swaps in a new object)."""
    return fake.books[book.spreadsheet_id]


def user_tabs(m: FakeSpreadsheet) -> dict:
    """Everything of the tabs sheetsync does not own, ids included."""
    owned = {meta["location"]["sheetId"] for meta in m.metadata.values()}
    return clone({s.title: (s.props, s.cells, s.charts, s.column_px) for s in m.sheets if s.sheet_id not in owned})


def state(m: FakeSpreadsheet) -> dict:
    """What a user sees, by title (sheet ids differ from run to run, so charts name tabs)."""
    titles = {s.sheet_id: s.title for s in m.sheets}
    out = {}
    for s in m.sheets:
        marks = sorted((d["metadataKey"], json.loads(d["metadataValue"]).get("kind", ""))
                       for d in m.sheet_metadata(s.sheet_id))
        charts = [re.sub(r'"sheetId": (\d+)', lambda m: json.dumps({"sheetId": titles.get(int(m.group(1)))})[1:-1],
                         json.dumps({k: v for k, v in c.items() if k != "chartId"}, sort_keys=True))
                  for c in s.charts]
        out[s.title] = {"index": s.props["index"], "hidden": bool(s.props.get("hidden")), "grid": s.grid,
                        "cells": s.cells, "charts": charts, "marks": marks, "widths": s.column_px}
    return clone(out)
