"""The run log in Google Sheets is appended to (``appendCells`` in the run's one batchUpdate), not
rewritten: the log reads back, cell and format, as the same log written whole; the first read
asks for its header row alone; a retried append that landed is not appended twice."""

from __future__ import annotations

from sheets_support import KEY, model, user_tabs

from sheetsync.backends.base import Plan
from sheetsync.backends.google import OWNED_KEY
from sheetsync.layout.runs import RUNS_HEADER, RUNS_TAB, LogAsRead, RunEntry, first_read, log_as_read, render_runs
from sheetsync.runner import run
from sheetsync.demo import demo_tabs


def entries(n: int, start: int = 0) -> list[RunEntry]:
    return [RunEntry("run", [f"e{i}"], f"h{i}", ["graddesc"], "ok" if i % 2 else "input errors",
                     [f"line {i}", "second line"], when=f"2026-12-06T02:00:{i % 60:02d}+00:00")
            for i in range(start, start + n)]


def one_run(make_backend, entry: RunEntry) -> LogAsRead:
    backend = make_backend()
    log = log_as_read(backend, first_read(backend, ["data"]))
    backend.apply(Plan([render_runs(log, entry)]))
    return log


def log_sheet(fake, book):
    sheet = model(fake, book).by_title(RUNS_TAB)
    return {k: v for k, v in sheet.cells.items()}, sheet.grid["rowCount"], sheet


def test_an_appended_log_equals_the_log_written_whole(fake, book, make_backend):
    runs = entries(5)
    logs = [one_run(make_backend, e) for e in runs]
    assert [log.append_after for log in logs] == [None, 1, 2, 3, 4]
    appended, rows, sheet = log_sheet(fake, book)
    sid = sheet.sheet_id
    assert rows == 6
    make_backend().apply(Plan([render_runs([RUNS_HEADER] + [e.row() for e in runs[:-1]], runs[-1])]))
    whole, whole_rows, new_sheet = log_sheet(fake, book)
    assert new_sheet.sheet_id != sid  # written whole: a new sheet
    assert appended == whole and rows == whole_rows  # values and formats, cell for cell
    assert make_backend().read([RUNS_TAB]).values[RUNS_TAB] == [RUNS_HEADER] + [e.row() for e in runs]


def test_an_append_is_one_batch_update_and_keeps_the_sheet_and_the_users_tabs(fake, book, make_backend):
    one_run(make_backend, entries(1)[0])
    before = user_tabs(model(fake, book))
    sid = model(fake, book).by_title(RUNS_TAB).sheet_id
    n = len(fake.api_calls)
    one_run(make_backend, entries(1, 1)[0])
    calls = fake.api_calls[n:]
    assert [c.kind for c in calls] == ["get", "get", "batchUpdate"]
    kinds = [next(iter(r)) for r in calls[-1].body["requests"]]
    assert kinds == ["appendCells", "deleteDeveloperMetadata", "createDeveloperMetadata"]
    assert model(fake, book).by_title(RUNS_TAB).sheet_id == sid
    assert user_tabs(model(fake, book)) == before
    marks = [m for m in model(fake, book).sheet_metadata(sid) if m["metadataKey"] == OWNED_KEY]
    assert len(marks) == 1  # the mark replaced, not piled up


def test_the_first_read_asks_for_the_log_header_alone(fake, book, make_backend):
    for e in entries(3):
        one_run(make_backend, e)
    n = len(fake.api_calls)
    snapshot = first_read(make_backend(), ["data", RUNS_TAB])
    ranges = fake.api_calls[n + 1].url
    assert "runs%27%211%3A1" in ranges or "runs'!1:1" in ranges
    assert snapshot.heads[RUNS_TAB] == RUNS_HEADER and RUNS_TAB not in snapshot.values
    assert snapshot.tab(RUNS_TAB).rows == 4


def test_the_first_read_by_values_asks_for_the_header_alone_too(fake, book, make_backend):
    for e in entries(2):
        one_run(make_backend, e)
    snapshot = first_read(make_backend(value_source="values"), ["data"])
    assert snapshot.heads[RUNS_TAB] == RUNS_HEADER and snapshot.values["data"][0] == ["x", "y"]


def test_a_retried_append_that_landed_is_not_appended_twice(fake, book, make_backend):
    one_run(make_backend, entries(1)[0])
    fake.fail_at(len(fake.api_calls) + 3, "timeout")  # the batchUpdate lands, its answer is lost
    one_run(make_backend, entries(1, 1)[0])
    rows = make_backend().read([RUNS_TAB]).values[RUNS_TAB]
    assert rows == [RUNS_HEADER] + [e.row() for e in entries(2)]


def test_the_fake_refuses_an_append_without_fields_as_google_does(fake, book, make_backend):
    one_run(make_backend, entries(1)[0])
    backend = make_backend()
    sid = model(fake, book).by_title(RUNS_TAB).sheet_id
    try:
        backend._call("post", f"https://sheets.googleapis.com/v4/spreadsheets/{KEY}:batchUpdate", "append",
                      body=b'{"requests":[{"appendCells":{"sheetId":%d,"rows":[]}}]}' % sid)
    except Exception as e:  # noqa: BLE001
        assert getattr(e, "status", None) == 400
    else:
        raise AssertionError("an appendCells without a fields mask must be refused")


def test_the_cap_trims_by_a_whole_write(fake, book, make_backend, monkeypatch):
    from sheetsync.layout import runs as runs_module

    monkeypatch.setattr(runs_module, "MAX_LOG_ROWS", 4)
    monkeypatch.setattr(runs_module, "TRIM_ROWS", 2)
    runs = entries(8)
    logs = [one_run(make_backend, e) for e in runs]
    # appends up to 4 + 2 rows, then the run past that writes the newest 4 whole
    assert [log.append_after for log in logs] == [None, 1, 2, 3, 4, 5, None, 4]
    rows = make_backend().read([RUNS_TAB]).values[RUNS_TAB]
    assert rows == [RUNS_HEADER] + [e.row() for e in runs[-5:]]


def test_runs_of_the_demo_append_to_the_log_and_stay_three_requests(fake, make_backend):
    book = fake.create(KEY, shared_with={"sheetsync-test@demo-project.iam.gserviceaccount.com"},
                       tabs=("data", "experiments"))
    for title, rows in demo_tabs().items():
        book.by_title(title).fill(rows)
    run(KEY, backend=make_backend())
    sid = model(fake, book).by_title(RUNS_TAB).sheet_id
    n = len(fake.api_calls)
    run(KEY, backend=make_backend())
    assert [c.kind for c in fake.api_calls[n:]] == ["get", "get", "batchUpdate"]
    assert model(fake, book).by_title(RUNS_TAB).sheet_id == sid
    log = make_backend().read([RUNS_TAB]).values[RUNS_TAB]
    assert len(log) == 3 and log[0] == RUNS_HEADER
    titles = [s.title for s in model(fake, book).sheets]
    assert titles[-3:] == ["compare", "runs", "sheetsync state"]


def test_a_staged_write_appends_in_its_final_swap(fake, make_backend):
    book = fake.create(KEY, shared_with={"sheetsync-test@demo-project.iam.gserviceaccount.com"},
                       tabs=("data", "experiments"))
    for title, rows in demo_tabs().items():
        book.by_title(title).fill(rows)
    run(KEY, backend=make_backend(payload_limit=60_000))
    order = [s.title for s in model(fake, book).sheets]
    sid = model(fake, book).by_title(RUNS_TAB).sheet_id
    n = len(fake.api_calls)
    run(KEY, backend=make_backend(payload_limit=60_000))
    updates = [c for c in fake.api_calls[n:] if c.kind == "batchUpdate"]
    assert len(updates) > 1  # staged
    final = [next(iter(r)) for r in updates[-1].body["requests"]]
    assert "appendCells" in final and all("appendCells" not in str(c.body) for c in updates[:-1])
    assert model(fake, book).by_title(RUNS_TAB).sheet_id == sid
    assert [s.title for s in model(fake, book).sheets] == order
    assert len(make_backend().read([RUNS_TAB]).values[RUNS_TAB]) == 3
