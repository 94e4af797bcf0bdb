"""Keeping the fake honest: its answers have the shapes of recorded Google traffic, and it
refuses every body the discovery document says Google would refuse.

The recordings are gspread's cassettes (third-party data), read in place from
``../shared/reference/sheets-cassettes`` beside the repository — never copied into it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from sheets_support import CASSETTES, KEY, SA_EMAIL
from sheets_discovery import Validator, parse_mask

API = "https://sheets.googleapis.com/v4/spreadsheets"
TOKEN = "ya29.fidelity-token"


def cassette(name: str) -> list[dict]:
    path = Path(CASSETTES) / name
    assert path.exists(), f"recorded traffic expected at {path}"
    return json.loads(path.read_text(encoding="utf-8"))["interactions"]


def recorded(name: str, method: str, pattern: str, status: int = 200, body_has: str = "",
             at_end: bool = False) -> tuple[dict | None, dict]:
    """(request body, response body) of the first matching interaction."""
    for i in cassette(name):
        req, resp = i["request"], i["response"]
        found = req["uri"].endswith(pattern) if at_end else pattern in req["uri"]
        if (req["method"] == method and found and resp["status"]["code"] == status
                and body_has in (req["body"] or "")):
            return (json.loads(req["body"]) if req["body"] else None), json.loads(resp["body"]["string"])
    raise AssertionError(f"no {method} {pattern} {status} in {name}")


def shape(value):
    """The key structure of a JSON value: dicts by key, lists by their elements' merged shape."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        merged: dict | str | None = None
        for item in value:
            s = shape(item)
            merged = {**merged, **s} if isinstance(merged, dict) and isinstance(s, dict) else s
        return [merged] if value else []
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


@pytest.fixture
def sheet(fake):
    book = fake.create(KEY, shared_with={SA_EMAIL}, tabs=("Sheet1",))
    fake.add_user_token(TOKEN, SA_EMAIL)
    return book


def call(method: str, url: str, **kw) -> requests.Response:
    return requests.request(method, url, headers={"Authorization": f"Bearer {TOKEN}"}, **kw)


# -- shapes ------------------------------------------------------------------------------------


def test_metadata_has_the_recorded_shape(sheet):
    _, real = recorded("SpreadsheetTest.test_add_del_worksheet.json", "GET", "includeGridData=false")
    ours = call("GET", f"{API}/{KEY}", params={"includeGridData": "false"}).json()
    assert shape(ours) == shape(real)


def test_add_sheet_reply_has_the_recorded_shape(sheet):
    body, real = recorded("SpreadsheetTest.test_add_del_worksheet.json", "POST", ":batchUpdate", body_has="addSheet")
    ours = call("POST", f"{API}/{KEY}:batchUpdate", json=body)
    assert ours.status_code == 200
    assert shape(ours.json()) == shape(real)
    assert ours.json()["replies"][0]["addSheet"]["properties"]["index"] == 1


def test_delete_sheet_reply_is_an_empty_object_like_the_recording(sheet):
    _, real = recorded("SpreadsheetTest.test_add_del_worksheet.json", "POST", ":batchUpdate", body_has="deleteSheet")
    added = call("POST", f"{API}/{KEY}:batchUpdate", json={"requests": [{"addSheet": {"properties": {"title": "t"}}}]})
    sid = added.json()["replies"][0]["addSheet"]["properties"]["sheetId"]
    ours = call("POST", f"{API}/{KEY}:batchUpdate", json={"requests": [{"deleteSheet": {"sheetId": sid}}]}).json()
    assert shape(ours) == shape(real) and ours["replies"] == [{}] == real["replies"]


def put_values(sheet, rows):
    sheet.sheets[0].fill(rows, skip=("",))


def test_batch_get_reproduces_recorded_ragged_rows(fake, sheet):
    put_body, _ = recorded("WorksheetTest.test_get_all_values.json", "PUT", "A1%3AD4")
    resize, _ = recorded("WorksheetTest.test_get_all_values.json", "POST", ":batchUpdate")
    _, real = recorded("WorksheetTest.test_get_all_values.json", "GET", "/values/%27Sheet1%27", at_end=True)
    assert call("POST", f"{API}/{KEY}:batchUpdate", json=resize).status_code == 200  # the recorded 4x4 resize
    put_values(fake.books[KEY], put_body["values"])  # batchUpdate swapped in a new model
    ours = call("GET", f"{API}/{KEY}/values:batchGet", params={"ranges": "'Sheet1'"}).json()
    assert ours["valueRanges"][0]["values"] == real["values"]  # [["A1","B1","","D1"],["","b2"],[],[...]]
    assert ours["valueRanges"][0]["range"] == real["range"]


def test_batch_get_has_the_recorded_shape(sheet):
    _, real = recorded("SpreadsheetTest.test_values_batch_get.json", "GET", "values:batchGet")
    put_values(sheet, [["a", "b", "c"], ["d", "e", "f"]])
    ours = call("GET", f"{API}/{KEY}/values:batchGet", params={"ranges": ["A:A", "B:B", "C:C"]}).json()
    assert shape(ours) == shape(real)


def test_an_empty_range_has_no_values_key_like_the_recording(sheet):
    _, real = recorded("WorksheetTest.test_clear.json", "GET", "/values/%27Sheet1%27%21A1%3AD6")
    ours = call("GET", f"{API}/{KEY}/values:batchGet", params={"ranges": "Sheet1!A1:D6"}).json()
    assert ours["valueRanges"][0] == real == {"range": "Sheet1!A1:D6", "majorDimension": "ROWS"}


def test_404_and_403_bodies_equal_the_recorded_ones(fake, sheet):
    _, not_found = recorded("ClientTest.test_access_non_existing_spreadsheet.json", "GET", "spreadsheets/test", 404)
    _, denied = recorded("ClientTest.test_access_private_spreadsheet.json", "GET", "spreadsheets/", 403)
    assert call("GET", f"{API}/test").json() == not_found
    fake.create("1PrivatePrivatePrivatePrivatePrivate0000", shared_with=set())
    assert call("GET", f"{API}/1PrivatePrivatePrivatePrivatePrivate0000").json() == denied


def test_a_bad_body_gets_the_recorded_400_shape(sheet):
    _, real = recorded("WorksheetTest.test_add_validation.json", "PUT", "valueInputOption=RAW", 400)
    ours = call("POST", f"{API}/{KEY}:batchUpdate", json={"requests": [{"addSheet": {"properties": {"sheetId": "x"}}}]})
    assert ours.status_code == 400 and shape(ours.json()) == shape(real)


# -- the validator against real traffic ------------------------------------------------------------


def all_sheets_requests():
    for path in sorted(Path(CASSETTES).glob("*.json")):
        for i in json.loads(path.read_text(encoding="utf-8"))["interactions"]:
            req = i["request"]
            if "sheets.googleapis.com" in req["uri"] and req["body"]:
                yield path.name, req, i["response"]["status"]["code"]


SCHEMA_BY_ENDPOINT = [(":batchUpdate", "BatchUpdateSpreadsheetRequest"),
                      ("values:batchUpdate", "BatchUpdateValuesRequest"), (":clear", "ClearValuesRequest")]


def schema_for(method: str, uri: str) -> str:
    if method == "PUT":
        return "ValueRange"
    path = uri.split("?")[0]
    return [s for suffix, s in SCHEMA_BY_ENDPOINT if path.endswith(suffix)][-1]


def test_every_recorded_request_google_accepted_validates_and_the_rejected_one_does_not():
    validator = Validator()
    accepted = rejected = 0
    for name, req, status in all_sheets_requests():
        violations = validator.validate(json.loads(req["body"]), schema_for(req["method"], req["uri"]))
        if status == 200:
            assert violations == [], (name, req["body"][:200], violations)
            accepted += 1
        else:
            assert violations and violations[0].field == "values"  # Google: "Invalid value at 'data.values'"
            rejected += 1
    assert accepted >= 20 and rejected == 1


@pytest.mark.parametrize("body, complaint", [
    ({"requests": [{"addSheet": {"properties": {"titel": "x"}}}]}, 'Unknown name "titel" at \'requests[0].add_sheet.properties\''),
    ({"requests": [{"addSheet": {"properties": {"sheetType": "TABLE"}}}]}, "sheet_type"),
    ({"requests": [{"addSheet": {"properties": {"sheetId": 2**31}}}]}, "INT32"),
    ({"requests": [{"addSheet": {"properties": {"hidden": "yes"}}}]}, "hidden"),
    ({"requests": [{"addSheet": {}, "deleteSheet": {"sheetId": 1}}]}, "Only one request kind"),
    ({"requests": [{}]}, "No request set"),
    ({"requests": [{"updateCells": {"start": {"sheetId": 0}, "rows": [{"values": [
        {"userEnteredValue": {"numberValue": 1, "stringValue": "1"}}]}], "fields": "userEnteredValue"}}]}, "Oneof"),
    ({"requests": [{"updateCells": {"start": {"sheetId": 0}, "rows": []}}]}, "At least one field"),
    ({"requests": [{"repeatCell": {"range": {"sheetId": 0}, "cell": {}, "fields": "userEnteredFormat.bold"}}]},
     "Invalid field mask path"),
    ({"requests": [{"updateCells": {"start": {"sheetId": 0}, "rows": [{"values": [
        {"userEnteredValue": {"numberValue": "1.5"}}]}], "fields": "userEnteredValue"}}]}, "DOUBLE"),
    ({"requests": [{"addChart": {"chart": {"spec": {"basicChart": {"chartType": "LINES"}}}}}]}, "chart_type"),
    ({"requests": [{"addChart": {"chart": {"spec": {"title": "no type"}}}}]}, "exactly one chart type"),
])
def test_the_fake_refuses_bodies_google_would_refuse(sheet, body, complaint):
    before = sheet.snapshot()
    response = call("POST", f"{API}/{KEY}:batchUpdate", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert complaint in error["message"] + json.dumps(error["details"], ensure_ascii=False).replace('\\"', '"')
    assert sheet.snapshot() == before


def test_nan_in_a_body_is_invalid_json(sheet):
    raw = '{"requests":[{"updateCells":{"start":{"sheetId":0},"rows":[{"values":[{"userEnteredValue":{"numberValue":NaN}}]}],"fields":"userEnteredValue"}}]}'
    response = call("POST", f"{API}/{KEY}:batchUpdate", data=raw)
    assert response.status_code == 400 and "Invalid JSON payload" in response.json()["error"]["message"]


def test_batch_update_is_all_or_nothing(fake, sheet):
    before = fake.books[KEY].snapshot()
    response = call("POST", f"{API}/{KEY}:batchUpdate", json={"requests": [
        {"addSheet": {"properties": {"sheetId": 5, "title": "new"}}},
        {"updateCells": {"start": {"sheetId": 5}, "rows": [{"values": [{"userEnteredValue": {"stringValue": "x"}}]}],
                         "fields": "userEnteredValue"}},
        {"deleteSheet": {"sheetId": 999}}]})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid requests[2].deleteSheet: No grid with id: 999"
    assert fake.books[KEY].snapshot() == before


@pytest.mark.parametrize("requests_, message", [
    ([{"addSheet": {"properties": {"sheetId": 0}}}], "already exists"),
    ([{"addSheet": {"properties": {"title": "sheet1"}}}], 'name "sheet1" already exists'),
    ([{"deleteSheet": {"sheetId": 0}}], "can't remove all the sheets"),
    ([{"updateSheetProperties": {"properties": {"sheetId": 0, "hidden": True}, "fields": "hidden"}}], "hide all"),
    ([{"updateCells": {"start": {"sheetId": 0, "rowIndex": 1000}, "rows": [{"values": [{}]}], "fields": "note"}}],
     "exceeds grid limits"),
    ([{"createDeveloperMetadata": {"developerMetadata": {"metadataKey": "k", "location": {"sheetId": 0}}}}],
     "visibility"),
])
def test_state_errors_name_the_sub_request(sheet, requests_, message):
    response = call("POST", f"{API}/{KEY}:batchUpdate", json={"requests": requests_})
    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert response.json()["error"]["message"].startswith("Invalid requests[0].")


def test_field_masks_and_ranges_shape_the_get(fake, sheet):
    fake.books[KEY].sheets.append(type(sheet.sheets[0])({"sheetId": 9, "title": "other", "index": 1}))
    titles = call("GET", f"{API}/{KEY}", params={"fields": "sheets.properties.title"}).json()
    assert titles == {"sheets": [{"properties": {"title": "Sheet1"}}, {"properties": {"title": "other"}}]}
    ranged = call("GET", f"{API}/{KEY}", params={"ranges": "other!A1:B2", "fields": "sheets.properties.title"}).json()
    assert ranged == {"sheets": [{"properties": {"title": "other"}}]}  # only tabs the ranges touch
    missing = call("GET", f"{API}/{KEY}", params={"ranges": "nope!A1", "fields": "sheets.properties.title"})
    assert missing.status_code == 400 and "Unable to parse range" in missing.json()["error"]["message"]
    bad_mask = call("GET", f"{API}/{KEY}", params={"fields": "sheets.propertys"})
    assert bad_mask.status_code == 400
    bad_param = call("GET", f"{API}/{KEY}", params={"includeGirdData": "true"})
    assert bad_param.status_code == 400 and "Cannot bind query parameter" in bad_param.json()["error"]["message"]


def test_mask_parser_handles_the_forms_google_documents():
    assert parse_mask("a.b,c(d,e/f),g") == [("a", "b"), ("c", "d"), ("c", "e", "f"), ("g",)]
    with pytest.raises(ValueError):
        parse_mask("a(b")


def test_token_endpoint_checks_the_signature(fake, sheet):
    from cryptography.hazmat.primitives.asymmetric import rsa
    import google.auth.exceptions
    from google.oauth2 import service_account
    email = SA_EMAIL
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    from cryptography.hazmat.primitives import serialization
    pem = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    creds = service_account.Credentials.from_service_account_info(
        {"type": "service_account", "private_key": pem, "client_email": email,
         "token_uri": "https://oauth2.googleapis.com/token"}, scopes=["https://www.googleapis.com/auth/spreadsheets"])
    with pytest.raises(google.auth.exceptions.RefreshError, match="invalid_grant"):
        creds.refresh(google.auth.transport.requests.Request())


def test_gspread_itself_works_against_the_fake_with_recorded_shapes(fake, sheet):
    """The usual gspread calls (the benchmark's baseline) get answers shaped like the recordings."""
    import gspread
    import google.oauth2.credentials
    gc = gspread.Client(google.oauth2.credentials.Credentials(token=TOKEN))
    sh = gc.open_by_key(KEY)
    ws = sh.add_worksheet("t", rows=4, cols=4)
    reply = ws.update([["A1", "B1", "", "D1"], ["", "b2"], [], ["A4", 2.5, "=1+1", 4]], "A1",
                      value_input_option=gspread.utils.ValueInputOption.user_entered)
    _, real_update = recorded("WorksheetTest.test_get_all_values.json", "PUT", "A1%3AD4")
    assert shape(reply) == shape(real_update)
    formulas = ws.get_all_values(value_render_option=gspread.utils.ValueRenderOption.formula)
    assert formulas == [["A1", "B1", "", "D1"], ["", "b2", "", ""], ["", "", "", ""], ["A4", 2.5, "=1+1", 4]]
    assert fake.books[KEY].by_title("t").cells[(3, 2)]["userEnteredValue"] == {"formulaValue": "=1+1"}
    assert [c.kind for c in fake.api_calls] == ["get", "batchUpdate", "values.update", "values.get"]


def test_values_batch_update_has_the_recorded_shape_and_keeps_formats(fake, sheet):
    body, real = recorded("WorksheetTest.test_batch_update.json", "POST", "values:batchUpdate")
    fake.books[KEY].sheets[0].cells[(0, 0)] = {"userEnteredFormat": {"textFormat": {"bold": True}}}
    ours = call("POST", f"{API}/{KEY}/values:batchUpdate", json=body)
    assert ours.status_code == 200 and shape(ours.json()) == shape(real)
    assert ours.json()["totalUpdatedCells"] == real["totalUpdatedCells"] == 8
    cell = fake.books[KEY].sheets[0].cells[(0, 0)]
    assert cell == {"userEnteredFormat": {"textFormat": {"bold": True}}, "userEnteredValue": {"stringValue": "A1"}}
    bad = call("POST", f"{API}/{KEY}/values:batchUpdate", json={"valueInputOption": "RAWISH", "data": []})
    assert bad.status_code == 400
