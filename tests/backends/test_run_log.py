"""The run log is appended to, not rewritten (issue 17): an appended log reads back cell for cell
(and style for style) as the same log written whole, its part stays in the segments that keep an
append cheap, the CRC arithmetic holds, and whatever cannot be appended falls back to a whole
write — with nothing of the user's touched and nothing half-written."""

from __future__ import annotations

import os
import zipfile
import zlib

import openpyxl
import pytest

from sheetsync.backends.base import Plan
from sheetsync.backends.xlsx import XlsxBackend, append
from sheetsync.backends.xlsx import zipstream
from sheetsync.backends.xlsx.zipstream import _ORDER, _ONE, _xpow, crc32_combine, crc32_uncombine
from sheetsync.demo import write_demo
from sheetsync.layout import runs as runs_module
from sheetsync.layout.runs import (MAX_LOG_ROWS, RUNS_HEADER, RUNS_TAB, TRIM_ROWS, LogAsRead, RunEntry,
                                   first_read, log_as_read, render_runs)

from test_xlsx_libreoffice import CSV_ALL_SHEETS, convert, read_csv


def entries(n: int, start: int = 0) -> list[RunEntry]:
    """Runs whose rows differ in every column, with texts that need escaping and wrapping."""
    return [RunEntry("run" if i % 3 else "reset", [f"e{i}", "b <&>"], f"h{i:04d}", ["graddesc", "pytorch"],
                     "ok" if i % 4 else f"diverged: e{i}", [f"line {i}", " padded ", "ünïcode ☃"],
                     when=f"2026-12-06T01:{i // 60 % 60:02d}:{i % 60:02d}+00:00")
            for i in range(start, start + n)]


def one_run(backend: XlsxBackend, entry: RunEntry) -> LogAsRead:
    """What a run does with the log: the first read, then the log's plan applied."""
    with backend.writing():
        log = log_as_read(backend, first_read(backend, ["data"]))
        backend.apply(Plan([render_runs(log, entry)]))
    return log


def whole_log(path, runs: list[RunEntry]) -> None:
    """The same log written whole at once (the reference an appended log must equal)."""
    rows = [RUNS_HEADER] + [e.row() for e in runs[:-1]]
    XlsxBackend(path).apply(Plan([render_runs(rows, runs[-1])]))


def sheet_cells(path, tab: str = RUNS_TAB) -> list[list]:
    """Values, number formats and wrapping of every cell, as openpyxl reads them."""
    ws = openpyxl.load_workbook(path)[tab]
    return [[(c.value, c.number_format, bool(c.alignment.wrap_text), c.font.b) for c in row]
            for row in ws.iter_rows()]


def log_member(path) -> tuple[zipfile.ZipInfo, bytes]:
    with zipfile.ZipFile(path) as z:
        wb = openpyxl.load_workbook(path)
        index = wb.sheetnames.index(RUNS_TAB)
        infos = sorted((i for i in z.infolist() if i.filename.startswith("xl/worksheets/sheet")),
                       key=lambda i: int(i.filename[len("xl/worksheets/sheet"):-4]))
        # the demo's tabs come first, the log last
        info = infos[index] if len(infos) > index else infos[-1]
        return info, append.raw_member(z, info)


@pytest.fixture
def book(tmp_path):
    path = tmp_path / "book.xlsx"
    write_demo(path)
    return path


def test_an_appended_log_reads_back_as_the_same_log_written_whole(book, tmp_path, monkeypatch):
    monkeypatch.setattr(append, "RECENT_TEXT", 600)  # seal the recent rows every few appends
    runs = entries(12)
    backend = XlsxBackend(book)
    logs = [one_run(backend, e) for e in runs]
    assert [log.append_after for log in logs] == [None] + list(range(1, 12))  # the first one wrote it
    reference = tmp_path / "whole.xlsx"
    write_demo(reference)
    whole_log(reference, runs)
    assert sheet_cells(book) == sheet_cells(reference)
    assert XlsxBackend(book).read([RUNS_TAB]).values == XlsxBackend(reference).read([RUNS_TAB]).values
    with zipfile.ZipFile(book) as z:
        assert z.testzip() is None  # every member's CRC holds
    assert openpyxl.load_workbook(book)[RUNS_TAB].dimensions == "A1:G13"


def test_the_log_part_stays_in_segments_and_an_append_copies_its_rows_compressed(book):
    backend = XlsxBackend(book)
    for e in entries(3):
        one_run(backend, e)
    info, data = log_member(book)
    stream = append.split(data, info.CRC, info.file_size)
    assert stream is not None
    assert stream.head.endswith(b"<sheetData>") and b'<dimension ref="A1:G4"/>' in stream.head
    assert stream.recent.count(b"<row ") == 2 and stream.end == b"</sheetData></worksheet>"
    with zipfile.ZipFile(book) as z:  # the middle's CRC, worked out without reading it, is its CRC
        text = z.read(info)
    middle = text[len(stream.head):len(text) - len(stream.recent) - len(stream.end)]
    assert (zlib.crc32(middle), len(middle)) == (stream.middle_crc, stream.middle_len)
    before = stream.middle
    one_run(backend, entries(1, 3)[0])
    info, data = log_member(book)
    assert before in data  # the rows written whole were copied as they were


def test_a_log_not_in_segments_is_appended_to_once_the_slow_way_then_fast(book, tmp_path):
    runs = entries(4)
    plain = render_runs([RUNS_HEADER] + [e.row() for e in runs[:2]], runs[2])
    plain.log = False  # as an older sheetsync wrote it: one deflate stream
    XlsxBackend(book).apply(Plan([plain]))
    info, data = log_member(book)
    assert append.split(data, info.CRC, info.file_size) is None
    log = one_run(XlsxBackend(book), runs[3])
    assert log.append_after == 3
    info, data = log_member(book)
    assert append.split(data, info.CRC, info.file_size) is not None
    reference = tmp_path / "whole.xlsx"
    write_demo(reference)
    whole_log(reference, runs)
    assert sheet_cells(book) == sheet_cells(reference)


def test_a_log_libreoffice_saved_is_appended_to(book, tmp_path):
    runs = entries(3)
    backend = XlsxBackend(book)
    for e in runs[:2]:
        one_run(backend, e)
    convert(book, "xlsx", tmp_path / "lo", tmp_path / "profile")  # LibreOffice's own save
    saved = tmp_path / "lo" / "book.xlsx"
    log = one_run(XlsxBackend(saved), runs[2])
    assert log.append_after == 2
    got = XlsxBackend(saved).read([RUNS_TAB]).values[RUNS_TAB]
    assert got == [RUNS_HEADER] + [e.row() for e in runs]


def test_libreoffice_opens_an_appended_log(book, tmp_path):
    runs = entries(5)
    backend = XlsxBackend(book)
    for e in runs:
        one_run(backend, e)
    convert(book, CSV_ALL_SHEETS, tmp_path / "csv", tmp_path / "profile")
    rows = read_csv(tmp_path / "csv" / f"book-{RUNS_TAB}.csv")
    assert rows == [RUNS_HEADER] + [e.row() for e in runs]


def test_other_parts_are_kept_byte_for_byte(book):
    backend = XlsxBackend(book)
    one_run(backend, entries(1)[0])
    with zipfile.ZipFile(book) as z:
        before = {i.filename: z.read(i) for i in z.infolist()}
    one_run(backend, entries(1, 1)[0])
    with zipfile.ZipFile(book) as z:
        after = {i.filename: z.read(i) for i in z.infolist()}
    info, _ = log_member(book)
    changed = {n for n in after if before.get(n) != after[n]}
    assert set(after) == set(before)
    # the log's part, and the package texts every apply rewrites (unchanged here but re-deflated)
    assert changed <= {info.filename}
    assert changed == {info.filename}


def test_a_failed_append_leaves_the_workbook_as_it_was(book, monkeypatch):
    backend = XlsxBackend(book)
    one_run(backend, entries(1)[0])
    before = book.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(append, "write_compressed", broken)
    with pytest.raises(Exception):
        one_run(backend, entries(1, 1)[0])
    assert book.read_bytes() == before
    assert not [f for f in os.listdir(book.parent) if f != book.name]  # no temporary file left


def test_whole_writes_where_an_append_would_be_wrong(book):
    backend = XlsxBackend(book)
    assert one_run(backend, entries(1)[0]) == LogAsRead()  # no log yet: written whole
    # a header the user edited (or an older version's columns): read back and written whole
    edited = [["when", "action"], ["t0", "run"]]
    old = render_runs(edited, entries(1, 1)[0])
    old.tables[0].columns[0].header = "when"
    XlsxBackend(book).apply(Plan([old]))
    log = one_run(backend, entries(1, 2)[0])
    assert log.append_after is None and log.rows[0][0] == "when"
    assert XlsxBackend(book).read([RUNS_TAB]).values[RUNS_TAB][0] == RUNS_HEADER


def test_the_cap_is_amortised_the_log_trimmed_to_the_newest_rows_once_per_trim(book, monkeypatch):
    runs = entries(MAX_LOG_ROWS + TRIM_ROWS + 1)
    with monkeypatch.context() as m:  # a log grown by appends to one row short of the margin
        m.setattr(runs_module, "MAX_LOG_ROWS", MAX_LOG_ROWS + TRIM_ROWS)
        whole_log(book, runs[:MAX_LOG_ROWS + TRIM_ROWS - 1])
    backend = XlsxBackend(book)
    assert one_run(backend, runs[-2]).append_after == MAX_LOG_ROWS + TRIM_ROWS - 1  # up to the margin
    log = one_run(backend, runs[-1])  # past it: read back, the newest MAX_LOG_ROWS written whole
    assert log.append_after is None and len(log.rows) == MAX_LOG_ROWS + TRIM_ROWS + 1
    got = XlsxBackend(book).read([RUNS_TAB]).values[RUNS_TAB]
    assert got == [RUNS_HEADER] + [e.row() for e in runs[-MAX_LOG_ROWS:]]
    assert one_run(backend, entries(1, 9)[0]).append_after == MAX_LOG_ROWS


def test_the_first_read_takes_the_log_header_alone(book):
    backend = XlsxBackend(book)
    for e in entries(3):
        one_run(backend, e)
    snapshot = first_read(backend, ["data", RUNS_TAB])
    assert RUNS_TAB not in snapshot.values and snapshot.heads[RUNS_TAB] == RUNS_HEADER
    assert snapshot.tab(RUNS_TAB).rows == 4  # from the part's dimension, not by reading it
    assert "data" in snapshot.values


def test_crc_arithmetic_matches_zlib():
    data = os.urandom(70_000)
    for cut in (0, 1, 4095, 65_536, len(data)):
        a, b = data[:cut], data[cut:]
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(data)
        assert crc32_uncombine(zlib.crc32(data), zlib.crc32(b), len(b)) == zlib.crc32(a)
    # undoing x^k relies on P being primitive: x has order 2^32 - 1, and no smaller one
    assert _xpow(_ORDER) == _ONE
    assert all(_xpow(_ORDER // q) != _ONE for q in (3, 5, 17, 257, 65537))


def test_segment_marks_do_not_change_the_text():
    chunks = ["<a>", zipstream.SEGMENT, "x" * 10, zipstream.SEGMENT, zipstream.SEGMENT, "</a>"]
    assert "".join(chunks) == "<a>xxxxxxxxxx</a>"
    assert [(b, fresh) for b, fresh in zipstream._blocks(chunks)] == [
        (b"<a>", True), (b"x" * 10, True), (b"</a>", True)]


def test_input_errors_append_their_row_the_same_way(book, monkeypatch):
    from sheetsync.errors import InputError
    from sheetsync.layout import log_only_plan as real
    from sheetsync.runner import run

    run(str(book))
    plans = []
    monkeypatch.setattr("sheetsync.runner.log_only_plan", lambda *a: plans.append(real(*a)) or plans[-1])
    with zipfile.ZipFile(book) as z:
        before = {i.filename: z.read(i) for i in z.infolist()}
    with pytest.raises(InputError):
        run(str(book), experiments=["nosuch"])
    (plan,) = plans
    assert [t.append_after for t in plan.tabs] == [1]  # the log-only plan appends too
    log = XlsxBackend(book).read([RUNS_TAB]).values[RUNS_TAB]
    assert len(log) == 3 and log[2][1:3] == ["run", "nosuch"] and log[2][5] == "input errors"
    info, data = log_member(book)
    assert append.split(data, info.CRC, info.file_size) is not None
    with zipfile.ZipFile(book) as z:
        after = {i.filename: z.read(i) for i in z.infolist()}
    assert {n for n in after if after[n] != before.get(n)} == {info.filename}


def test_rows_longer_than_the_recent_segment_are_numbered_and_sealed_right(book, tmp_path):
    runs = entries(4)
    for e in runs:
        e.messages = ["&<>" * 10_000]  # 30,000 characters, 150 KB of XML escapes: sealed at once
    backend = XlsxBackend(book)
    for e in runs:
        one_run(backend, e)
    reference = tmp_path / "whole.xlsx"
    write_demo(reference)
    whole_log(reference, runs)
    assert sheet_cells(book) == sheet_cells(reference)
    info, data = log_member(book)
    assert append.split(data, info.CRC, info.file_size).recent == b""  # sealed into the rows
