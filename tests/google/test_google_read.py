"""Reading: one round, every edge of a cell (ragged rows, dates, errors, formulas, empty tabs)."""

from __future__ import annotations

import json

import pytest

from sheetsync.backends.base import CellError, DateCell
from sheetsync.backends.google import OWNED_KEY, STAGING_KEY


def put(sheet, r, c, **cell):
    sheet.cells[(r, c)] = cell


def test_one_read_round_is_two_requests_whatever_the_number_of_tabs(backend, fake, book):
    snap = backend.read(["data", "notes", "experiments"])
    api = fake.api_calls
    assert [c.kind for c in api] == ["get", "get"]
    assert fake.token_requests == 1
    assert set(snap.values) == {"data", "notes"}  # 'experiments' does not exist: not asked for
    assert snap.values["data"] == [["x", "y"], [1, 2.5], [2, 4.5], [3, 6.5]]
    assert [t.title for t in snap.tabs] == ["data", "notes"] and not any(t.owned for t in snap.tabs)
    assert snap.tab("data").rows == 1000 and snap.tab("data").cols == 26 and snap.tab("data").sheet_id == 0


def test_only_existing_tabs_asked_for_means_one_request(backend, fake, book):
    snap = backend.read(["experiments"])
    assert len(fake.api_calls) == 1 and snap.values == {}


def test_metadata_request_uses_a_field_mask_and_gets_no_cells(backend, fake, book):
    backend.read([])
    call = fake.api_calls[0]
    assert "fields=" in call.url and "prettyPrint=false" in call.url and call.bytes_out < 1000
    assert set(call.response) == {"spreadsheetId", "properties", "sheets"}  # no spreadsheetUrl
    assert set(call.response["properties"]) == {"title"}
    assert "rowData" not in json.dumps(call.response)


def test_ragged_rows_and_gaps_read_as_the_api_gives_them(backend, fake, book):
    sheet = book.by_title("notes")
    sheet.cells.clear()
    put(sheet, 0, 0, userEnteredValue={"stringValue": "A1"})
    put(sheet, 0, 3, userEnteredValue={"stringValue": "D1"})
    put(sheet, 1, 1, userEnteredValue={"stringValue": "b2"})
    put(sheet, 3, 0, userEnteredValue={"numberValue": 4})
    assert backend.read(["notes"]).values["notes"] == [["A1", None, None, "D1"], [None, "b2"], [], [4]]


def test_an_empty_tab_reads_as_no_rows(backend, fake, book):
    fake.books[book.spreadsheet_id].sheets.append(type(book.sheets[0])(
        {"sheetId": 42, "title": "empty", "index": 2, "sheetType": "GRID",
         "gridProperties": {"rowCount": 10, "columnCount": 3}}))
    snap = backend.read(["empty"])
    assert snap.values == {"empty": []} and snap.tab("empty").rows == 10


def test_dates_errors_formulas_bools_and_numbers_as_text(backend, book):
    sheet = book.by_title("notes")
    put(sheet, 1, 0, userEnteredValue={"numberValue": 45322},
        userEnteredFormat={"numberFormat": {"type": "DATE", "pattern": "yyyy-mm-dd"}})
    put(sheet, 1, 1, userEnteredValue={"formulaValue": "=1/0"},
        effectiveValue={"errorValue": {"type": "DIVIDE_BY_ZERO", "message": "Function DIVIDE parameter 2 cannot be zero."}})
    put(sheet, 1, 2, userEnteredValue={"formulaValue": "=2*3"}, effectiveValue={"numberValue": 6})
    put(sheet, 1, 3, userEnteredValue={"boolValue": True})
    put(sheet, 1, 4, userEnteredValue={"stringValue": "12"})
    put(sheet, 1, 5, userEnteredValue={"formulaValue": "=NA()"}, effectiveValue={"errorValue": {"type": "N_A"}})
    put(sheet, 1, 6, userEnteredValue={"numberValue": 0.25})
    row = backend.read(["notes"]).values["notes"][1]
    assert row[0] == DateCell(45322.0, "2024-01-31T00:00:00")
    assert row[1] == CellError("#DIV/0!") and row[5] == CellError("#N/A")
    assert row[2] == 6 and row[3] is True and row[4] == "12" and row[6] == 0.25


def test_values_mode_uses_batch_get_and_cannot_tell_dates(make_backend, fake, book):
    sheet = book.by_title("notes")
    put(sheet, 1, 0, userEnteredValue={"numberValue": 45322},
        userEnteredFormat={"numberFormat": {"type": "DATE", "pattern": "yyyy-mm-dd"}})
    put(sheet, 1, 1, userEnteredValue={"formulaValue": "=1/0"}, effectiveValue={"errorValue": {"type": "DIVIDE_BY_ZERO"}})
    snap = make_backend(value_source="values").read(["data", "notes"])
    assert [c.kind for c in fake.api_calls] == ["get", "values.batchGet"]
    assert "valueRenderOption=UNFORMATTED_VALUE" in fake.api_calls[1].url
    assert "dateTimeRenderOption=SERIAL_NUMBER" in fake.api_calls[1].url
    assert snap.values["data"] == [["x", "y"], [1, 2.5], [2, 4.5], [3, 6.5]]
    assert snap.values["notes"][1] == [45322, CellError("#DIV/0!")]


def test_tab_names_that_need_quoting_are_read(backend, fake, book):
    fake.books[book.spreadsheet_id].by_title("notes").props["title"] = "it's 🌵 data!"
    snap = backend.read(["it's 🌵 data!"])
    assert snap.values["it's 🌵 data!"][0][0] == "my own notes"


def test_owned_tabs_are_recognised_and_staging_tabs_stay_out_of_sight(backend, fake, book):
    model = fake.books[book.spreadsheet_id]
    model.sheets.append(type(book.sheets[0])({"sheetId": 11, "title": "A steps", "index": 2}))
    model.sheets.append(type(book.sheets[0])({"sheetId": 12, "title": "sheetsync staging x 1", "index": 3, "hidden": True}))
    model.metadata[5] = {"metadataId": 5, "metadataKey": OWNED_KEY, "metadataValue": "{}",
                         "location": {"locationType": "SHEET", "sheetId": 11}, "visibility": "DOCUMENT"}
    model.metadata[6] = {"metadataId": 6, "metadataKey": STAGING_KEY, "metadataValue": "{}",
                         "location": {"locationType": "SHEET", "sheetId": 12}, "visibility": "DOCUMENT"}
    snap = backend.read([])
    assert snap.tab("A steps").owned and not snap.tab("data").owned
    assert snap.tab("sheetsync staging x 1") is None


@pytest.mark.parametrize("value_source", ["grid", "values"])
def test_both_value_sources_agree_on_plain_cells(make_backend, book, value_source):
    assert make_backend(value_source=value_source).read(["data"]).values["data"][1] == [1, 2.5]


def test_small_owned_tabs_are_read_ahead_so_a_second_read_is_free(backend, make_backend, fake, book):
    from sheets_plans import demo_plan
    backend.read(["data"])
    backend.apply(demo_plan(("A",), n_rows=30))
    fresh = make_backend()
    n = len(fake.api_calls)
    fresh.read(["data"])
    values_call = fake.api_calls[-1]
    assert len(fake.api_calls) == n + 2
    assert "A+epochs" in values_call.url and "state" in values_call.url and "A+steps" not in values_call.url
    second = fresh.read(["A epochs", "state", "data"])
    assert len(fake.api_calls) == n + 2  # served from this round's read
    assert second.values["A epochs"][0] == ["epoch", "loss", "lr"] and second.values["state"][0][0] == "params"
    steps = fresh.read(["A steps"])  # not read ahead: one more request, metadata reused
    assert len(fake.api_calls) == n + 3 and len(steps.values["A steps"]) == 31
    fresh.forget()
    fresh.read(["data"])
    assert len(fake.api_calls) == n + 5
