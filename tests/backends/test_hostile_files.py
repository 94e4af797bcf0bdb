"""Hostile and corrupt workbooks: every one answered with exit code 4 (or a normal run) and one
line naming the part or cell, within 10 s (of CPU) and 500 MB.

The files are generated here, never committed: each zip member is written by hand from deflate
segments that are full-flushed, so a gigabyte of repetitive XML is one compressed megabyte
repeated, a few megabytes on disk, and its CRC is combined arithmetically instead of computed over
the gigabytes.
"""

from __future__ import annotations

import errno
import os
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

import sheetsync
from sheetsync import budgets
from sheetsync.errors import BackendError

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CT_SHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
GiB = 1 << 30
MiB = 1 << 20
MEMORY_LIMIT = 500 * MiB
TIME_LIMIT = 10.0

# ---------------------------------------------------------------------------------------------
# CRC-32 of repeated content without computing it over the gigabytes (zlib's crc32_combine)


def _gf2_times(mat: list[int], vec: int) -> int:
    total, i = 0, 0
    while vec:
        if vec & 1:
            total ^= mat[i]
        vec >>= 1
        i += 1
    return total


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, mat[n]) for n in range(32)]


def _zeros_operator(nbytes: int) -> list[int]:
    """The matrix taking a CRC to the CRC after `nbytes` more zero bytes."""
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # one zero bit
    even = _gf2_square(odd)  # two
    odd = _gf2_square(even)  # four
    result = [1 << n for n in range(32)]
    while True:
        even = _gf2_square(odd)
        if nbytes & 1:
            result = [_gf2_times(even, v) for v in result]
        nbytes >>= 1
        if not nbytes:
            return result
        odd = _gf2_square(even)
        if nbytes & 1:
            result = [_gf2_times(odd, v) for v in result]
        nbytes >>= 1
        if not nbytes:
            return result


def crc_of_repeats(head: bytes, body: bytes, times: int, tail: bytes) -> int:
    shift = _zeros_operator(len(body))
    body_crc = zlib.crc32(body)
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = _gf2_times(shift, crc) ^ body_crc
    return zlib.crc32(tail, crc)


def test_the_crc_arithmetic_is_zlibs():
    head, body, tail = b"<a>", b"0123456789" * 7, b"</a>"
    assert crc_of_repeats(head, body, 5, tail) == zlib.crc32(head + body * 5 + tail)


# ---------------------------------------------------------------------------------------------
# Writing members by hand


def _segment(data: bytes, final: bool) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


class Member:
    """A zip member: head + body × times + tail, or plain bytes."""

    def __init__(self, head: bytes, body: bytes = b"", times: int = 0, tail: bytes = b"",
                 declared_size: int | None = None, damage: bool = False):
        self.size = len(head) + len(body) * times + len(tail)
        self.crc = crc_of_repeats(head, body, times, tail) if times else zlib.crc32(head + tail)
        parts = [_segment(head, False)]
        if times:
            block = _segment(body, False)
            parts.append(block * times)
        parts.append(_segment(tail, True))
        self.data = b"".join(parts)
        if damage:  # garbage in the middle of the compressed stream
            middle = len(self.data) // 2
            self.data = self.data[:middle] + bytes(range(7, 250, 3)) + self.data[middle + 83:]
        self.declared = self.size if declared_size is None else declared_size


def write_zip(path: Path, members: list[tuple[str, Member | bytes | str]]) -> Path:
    with open(path, "wb") as f:
        central = []
        for name, m in members:
            if not isinstance(m, Member):
                m = Member(m.encode() if isinstance(m, str) else m)
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.CRC, info.compress_size, info.file_size = m.crc, len(m.data), m.declared
            info.header_offset = f.tell()
            f.write(info.FileHeader(zip64=True))
            f.write(m.data)
            central.append(info)
        start = f.tell()
        for info in central:
            name = info.filename.encode()
            extra = struct.pack("<HHQQQ", 1, 24, info.file_size, info.compress_size, info.header_offset)
            f.write(struct.pack("<4s4B4HL2L5HLL", b"PK\x01\x02", 45, 3, 45, 0, 0, 8, 0, 0, info.CRC,
                                0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF)
                    + name + extra)
        end = f.tell()
        n = len(central)
        f.write(struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, end - start, start))
        f.write(struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1))
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    return path


# ---------------------------------------------------------------------------------------------
# A small valid workbook, and hostile variants of its parts


def data_rows(n: int = 29) -> str:
    rows = ['<row r="1"><c r="A1" t="inlineStr"><is><t>x</t></is></c>'
            '<c r="B1" t="inlineStr"><is><t>y</t></is></c></row>']
    for i in range(2, n + 2):
        rows.append(f'<row r="{i}"><c r="A{i}"><v>{i * 3}</v></c><c r="B{i}"><v>{i * 6 + 30}</v></c></row>')
    return "".join(rows)


EXPERIMENTS = ('<row r="1"><c r="A1" t="inlineStr"><is><t>setting</t></is></c>'
               '<c r="B1" t="inlineStr"><is><t>basic</t></is></c></row>'
               '<row r="2"><c r="A2" t="inlineStr"><is><t>epochs</t></is></c><c r="B2"><v>2</v></c></row>')


def sheet(rows: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}"><sheetData>{rows}</sheetData></worksheet>'


def sheet_member(head_rows: str, body: str = "", times: int = 0, tail_rows: str = "", **kw) -> Member:
    head = f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{MAIN}"><sheetData>{head_rows}'
    return Member(head.encode(), body.encode(), times, (tail_rows + "</sheetData></worksheet>").encode(), **kw)


def workbook(path: Path, data=None, experiments=None, extra_tabs=(), extra_parts=(),
             shared_strings: Member | None = None, chart_data: bool = False) -> Path:
    """data/experiments: sheet XML (str) or a Member; extra_tabs: (name, sheet XML, rels XML)."""
    tabs = [("data", data if data is not None else sheet(data_rows())),
            ("experiments", experiments if experiments is not None else sheet(EXPERIMENTS))]
    tabs += [(name, xml) for name, xml, _ in extra_tabs]
    types = [f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{CT_SHEET}"/>'
             for i in range(1, len(tabs) + 1)]
    rels = [f'<Relationship Id="rId{i}" Type="{REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, len(tabs) + 1)]
    members: list[tuple[str, object]] = []
    if chart_data:  # the data tab is a chart sheet
        rels[0] = f'<Relationship Id="rId1" Type="{REL}/chartsheet" Target="chartsheets/sheet1.xml"/>'
        members.append(("xl/chartsheets/sheet1.xml", f'<chartsheet xmlns="{MAIN}"><sheetViews/></chartsheet>'))
    if shared_strings is not None:
        rels.append(f'<Relationship Id="rIdS" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>')
        members.append(("xl/sharedStrings.xml", shared_strings))
    sheets = "".join(f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>' for i, (name, _) in enumerate(tabs, 1))
    members += [
        ("[Content_Types].xml",
         '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
         '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
         '<Default Extension="xml" ContentType="application/xml"/>'
         '<Default Extension="vml" ContentType="application/vnd.openxmlformats-officedocument.vmlDrawing"/>'
         '<Override PartName="/xl/workbook.xml" '
         'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
         + "".join(types) + "</Types>"),
        ("_rels/.rels", f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" '
         f'Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'),
        ("xl/workbook.xml", f'<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets>{sheets}</sheets></workbook>'),
        ("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{PKG_REL}">{"".join(rels)}</Relationships>'),
    ]
    for i, (_name, xml) in enumerate(tabs, 1):
        if not (chart_data and i == 1):
            members.append((f"xl/worksheets/sheet{i}.xml", xml))
    for i, (_name, _xml, sheet_rels) in enumerate(extra_tabs, 3):
        if sheet_rels:
            members.append((f"xl/worksheets/_rels/sheet{i}.xml.rels", sheet_rels))
    members += list(extra_parts)
    return write_zip(path, members)


def run_limited(path: Path, *args: str) -> tuple[int, str, float]:
    """`sheetsync run PATH` in a child limited to 500 MB of address space: (exit code, stderr,
    seconds of CPU the child used).

    The time limit is on the child's CPU time (user + system, one thread), not the wall clock:
    that is the work a hostile file makes sheetsync do, the same number on an idle machine and
    on one shared with other test runs, where the wall clock can stretch several times over.
    The wall clock is bounded too, by the timeout."""
    code = ("import resource, sys\n"
            f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}))\n"
            "from sheetsync.cli import main\n"
            f"sys.exit(main(['run', {str(path)!r}, *{list(args)!r}]))\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # this test's child is the only one that ended
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.returncode, done.stderr, cpu


def assert_refused(path: Path, *fragments: str) -> str:
    code, err, seconds = run_limited(path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 4, err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert seconds < TIME_LIMIT, seconds
    return lines[0]


# ---------------------------------------------------------------------------------------------
# The hostile files


def test_the_valid_workbook_runs_under_the_limits(tmp_path):
    code, err, seconds = run_limited(workbook(tmp_path / "ok.xlsx"))
    assert code == 0, err
    assert seconds < TIME_LIMIT


def test_a_row_beyond_the_last_row_is_corrupt_naming_it(tmp_path):
    rows = data_rows() + '<row r="2000000000"><c r="A2000000000"><v>1</v></c></row>'
    assert_refused(workbook(tmp_path / "b.xlsx", data=sheet(rows)), "corrupt", "'data' row 2,000,000,000",
                   "1,048,576")
    # the same through ElementTree (a comment sends the sheet there)
    rows = data_rows() + '<!-- x --><row r="1048577"><c r="A1048577"><v>1</v></c></row>'
    assert_refused(workbook(tmp_path / "c.xlsx", data=sheet(rows)), "'data' row 1,048,577")


@pytest.mark.parametrize("ref", ["XFE2", "ZZZZZZZZ2"])
def test_a_column_beyond_xfd_is_corrupt_naming_the_cell(tmp_path, ref):
    rows = data_rows().replace('<c r="B2">', f'<c r="{ref}">', 1)
    assert_refused(workbook(tmp_path / "b.xlsx", data=sheet(rows)), "corrupt", f"data!{ref}", "XFD")


def test_far_off_cells_in_every_row_cannot_exhaust_memory(tmp_path):
    # XFD in each of 1,000,000 rows: 16,384 cells a row held from 40 bytes of XML
    body = '<row><c r="XFD1"><v>1</v></c></row>'
    path = workbook(tmp_path / "b.xlsx", data=sheet_member(data_rows(), body, 1_000_000))
    assert_refused(path, f"more than {20_000_000:,} cells")


def test_a_comment_drawing_of_3_gib_is_never_inflated_whole(tmp_path):
    vml_head = (b'<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office">'
                b'<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="1"/></o:shapelayout>')
    shape = b'<v:shape type="#_x0000_t202" style="visibility:hidden"><v:textbox/></v:shape>' * 13000
    vml = Member(vml_head, shape, 3 * GiB // len(shape) + 1, b"</xml>")
    assert vml.size > 3 * GiB
    notes_rels = (f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rId1" Type="{REL}/vmlDrawing" '
                  'Target="../drawings/vmlDrawing1.vml"/></Relationships>')
    notes = sheet('<row r="1"><c r="A1"><v>1</v></c></row>').replace(
        "</worksheet>", f'<legacyDrawing xmlns:r="{REL}" r:id="rId1"/></worksheet>')
    path = workbook(tmp_path / "vml.xlsx", extra_tabs=[("notes", notes, notes_rels)],
                    extra_parts=[("xl/drawings/vmlDrawing1.vml", vml)])
    assert path.stat().st_size < 20 * MiB
    code, err, seconds = run_limited(path)
    assert code == 0, err
    assert seconds < TIME_LIMIT
    with zipfile.ZipFile(path) as z:  # the user's part is still there, untouched
        assert z.getinfo("xl/drawings/vmlDrawing1.vml").file_size == vml.size


def test_sheet_xml_of_gigabytes_is_refused_before_inflating(tmp_path):
    path = workbook(tmp_path / "big.xlsx", data=sheet_member(data_rows() + '<row r="40">', " " * MiB, 2048))
    assert_refused(path, "xl/worksheets/sheet1.xml", "over sheetsync's limit")


def test_sheet_xml_whose_zip_directory_lies_is_stopped_while_inflating(tmp_path):
    member = sheet_member(data_rows() + '<row r="40">', " " * MiB, 2048, declared_size=MiB)
    assert_refused(workbook(tmp_path / "lies.xlsx", data=member), "xl/worksheets/sheet1.xml", "corrupt")


@pytest.mark.parametrize("body, where", [(" " * MiB, "xl/worksheets/sheet1.xml: more than 8 MiB"),
                                         ('<c r="A40"><v>1</v></c>' * 40000, "more than 8 MiB of XML")],
                         ids=["spaces", "cells"])
def test_a_row_that_never_ends_is_refused_quickly(tmp_path, body, where):
    # within the part limit, but no </row>: the scan's buffer must not grow quadratically
    path = workbook(tmp_path / "row.xlsx", data=sheet_member(data_rows() + '<row r="40">', body,
                                                            200 * MiB // len(body)))
    assert_refused(path, "corrupt", where)


def test_an_unused_shared_string_of_2_gib_is_never_inflated(tmp_path):
    strings = Member(f'<sst xmlns="{MAIN}"><si><t>'.encode(), b"a" * MiB, 2048, b"</t></si></sst>")
    code, err, seconds = run_limited(workbook(tmp_path / "sst.xlsx", shared_strings=strings))
    assert code == 0, err
    assert seconds < TIME_LIMIT


def test_shared_strings_of_2_gib_that_are_needed_are_refused(tmp_path):
    strings = Member(f'<sst xmlns="{MAIN}"><si><t>x</t></si><si><t>'.encode(), b"a" * MiB, 2048,
                     b"</t></si></sst>")
    rows = data_rows().replace('<c r="A1" t="inlineStr"><is><t>x</t></is></c>', '<c r="A1" t="s"><v>0</v></c>')
    assert_refused(workbook(tmp_path / "sst.xlsx", data=sheet(rows), shared_strings=strings),
                   "xl/sharedStrings.xml", "over sheetsync's limit")


def test_one_shared_string_of_200_mib_is_refused_within_the_memory_limit(tmp_path):
    strings = Member(f'<sst xmlns="{MAIN}"><si><t>x</t></si><si><t>'.encode(), b"a" * MiB, 200,
                     b"</t></si></sst>")
    rows = data_rows().replace('<c r="A1" t="inlineStr"><is><t>x</t></is></c>', '<c r="A1" t="s"><v>0</v></c>')
    assert_refused(workbook(tmp_path / "sst.xlsx", data=sheet(rows), shared_strings=strings),
                   "xl/sharedStrings.xml", "without an element")


# ---------------------------------------------------------------------------------------------
# Corrupt and hostile XML, zip and numbers


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa">'
                  + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
                  + f']><worksheet xmlns="{MAIN}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&j;</t>'
                  '</is></c></row></sheetData></worksheet>')
XXE = ('<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
       f'<worksheet xmlns="{MAIN}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&e;</t>'
       '</is></c></row></sheetData></worksheet>')


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_entity_tricks_are_refused_as_corrupt_naming_the_part(tmp_path, xml):
    assert_refused(workbook(tmp_path / "x.xlsx", data=xml), "corrupt", "xl/worksheets/sheet1.xml")


def test_entity_tricks_in_shared_strings_and_workbook_xml(tmp_path):
    sst = XXE.replace("worksheet", "sst").replace(
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&e;</t></is></c></row></sheetData>',
        "<si><t>&e;</t></si>")
    rows = data_rows().replace('<c r="A1" t="inlineStr"><is><t>x</t></is></c>', '<c r="A1" t="s"><v>0</v></c>')
    assert_refused(workbook(tmp_path / "s.xlsx", data=sheet(rows), shared_strings=Member(sst.encode())),
                   "xl/sharedStrings.xml")


def test_a_corrupt_deflate_stream_is_refused_naming_the_part(tmp_path):
    member = sheet_member(data_rows(), '<row r="40"><c r="A40"><v>1</v></c></row>' * 1000, 100,
                          damage=True)
    assert_refused(workbook(tmp_path / "d.xlsx", data=member), "corrupt", "xl/worksheets/sheet1.xml")


def test_duplicate_zip_entries_are_refused(tmp_path):
    path = workbook(tmp_path / "dup.xlsx")
    members = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            members.append((info.filename, z.read(info)))
    members.append(("xl/workbook.xml", members[[n for n, _ in members].index("xl/workbook.xml")][1]))
    assert_refused(write_zip(tmp_path / "dup2.xlsx", members), "corrupt", "xl/workbook.xml twice")


@pytest.mark.parametrize("text", ["1_000", "0x1p3", "inf", "nan", " 5", "٣"])
def test_numbers_are_parsed_strictly_naming_the_cell(tmp_path, text):
    rows = data_rows().replace('<c r="A3"><v>9</v></c>', f'<c r="A3"><v>{text}</v></c>')
    assert_refused(workbook(tmp_path / "n.xlsx", data=sheet(rows)), "corrupt", "data!A3", "not a number")


def test_a_full_disk_is_exit_4_and_leaves_the_workbook(tmp_path, monkeypatch):
    path = workbook(tmp_path / "full.xlsx")
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 2000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(BackendError) as raised:
        sheetsync.run(str(path))
    assert raised.value.exit_code == 4
    assert "No space left on device" in str(raised.value) and str(path) in str(raised.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["full.xlsx"]  # no temporary file left


def test_a_data_tab_that_is_a_chart_sheet_says_so(tmp_path):
    path = workbook(tmp_path / "chart.xlsx", chart_data=True)
    code, err, _ = run_limited(path)
    assert code == 2, err
    assert "error: data: data is a chart sheet, not a worksheet" in err


def test_far_off_cells_in_a_tab_sheetsync_does_not_read_do_not_sample_the_steps(tmp_path):
    notes = sheet('<row r="1"><c r="XFD1"><v>1</v></c></row><row r="1048576"><c r="A1048576"><v>1</v></c></row>')
    notes = notes.replace("<sheetData>", '<dimension ref="A1:XFD1048576"/><sheetData>')
    path = workbook(tmp_path / "far.xlsx", extra_tabs=[("notes", notes, None)])
    report = sheetsync.run(str(path))
    assert [e.sampled for e in report.experiments] == [False]  # 58 steps, all written


def test_a_huge_tab_sheetsync_does_not_read_is_never_inflated(tmp_path):
    big = sheet_member("", '<row><c><v>1</v></c></row>' * 40_000, 2100)  # 2 GiB of rows
    path = workbook(tmp_path / "huge.xlsx", extra_tabs=[("archive", big, None)])
    code, err, seconds = run_limited(path)
    assert code == 0, err
    assert seconds < TIME_LIMIT
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("xl/worksheets/sheet3.xml").file_size == big.size > 2 * GiB


def test_all_the_parts_one_read_inflates_are_bounded_together(tmp_path, monkeypatch):
    from sheetsync.backends.xlsx import XlsxBackend

    path = workbook(tmp_path / "ok.xlsx")
    monkeypatch.setattr(budgets, "INFLATED_BYTES", 3000)
    with pytest.raises(BackendError, match="inflates more than 3,000 bytes of XML"):
        XlsxBackend(str(path)).read(["data", "experiments"])


def test_parts_parsed_whole_are_bounded(tmp_path):
    # dense XML: a parsed tree takes ~20 bytes a byte, so the limit on these parts is small
    styles = Member(f'<styleSheet xmlns="{MAIN}"><cellXfs>'.encode(), b"<xf/>" * 200_000, 9, b"</cellXfs></styleSheet>")
    rels = (f'<Relationships xmlns="{PKG_REL}"><Relationship Id="rIdSt" Type="{REL}/styles" '
            'Target="styles.xml"/></Relationships>')
    path = workbook(tmp_path / "styles.xlsx", extra_parts=[("xl/styles.xml", styles)])
    members = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            data = z.read(info) if info.filename != "xl/styles.xml" else styles
            if info.filename == "xl/_rels/workbook.xml.rels":
                data = z.read(info).replace(b"</Relationships>", rels.split(">", 1)[1].encode())
            members.append((info.filename, data))
    assert_refused(write_zip(tmp_path / "styles2.xlsx", members), "xl/styles.xml", "over sheetsync's limit of 8 MiB")
