"""A replaced tab whose worksheet XML would come out as it is gets its previous part's bytes
(`backends.xlsx.unchanged`): the same workbook as rendering it, and a fresh rendering whenever
anything that decides the XML (the plan, the code) or the part itself changed."""

from __future__ import annotations

import zipfile

import pytest

from sheetsync.backends.xlsx import XlsxBackend, unchanged
from sheetsync.backends.xlsx import surgery

from xlsx_builders import members, plain_workbook, small_plan, steps_tab


@pytest.fixture
def reuses(monkeypatch):
    """The worksheet parts each apply copies from the previous version, as a list per apply."""
    seen = []
    plain = surgery.Surgery._unchanged_sheets

    def counted(self):
        keys, reused = plain(self)
        seen.append(sorted(reused))
        return keys, reused

    monkeypatch.setattr(surgery.Surgery, "_unchanged_sheets", counted)
    return seen


def test_the_same_plan_again_copies_the_sheet_and_writes_the_same_workbook(tmp_path, reuses, monkeypatch):
    book, fresh = tmp_path / "book.xlsx", tmp_path / "fresh.xlsx"
    plain_workbook(book)
    XlsxBackend(book).apply(small_plan())
    fresh.write_bytes(book.read_bytes())
    XlsxBackend(book).apply(small_plan())
    assert len(reuses[-1]) == 2  # both tabs' worksheets (the runs tab here is a plain tab, not a log)
    with zipfile.ZipFile(book) as z:
        assert z.testzip() is None  # every member's CRC holds, the copied ones too
        marked = [i for i in z.infolist() if i.comment.startswith(unchanged.MARK)]
        assert len(marked) == 2 and all(unchanged.reusable(i, i.comment.split()[1]) for i in marked)
    monkeypatch.setattr(unchanged, "reusable", lambda info, key: False)
    XlsxBackend(fresh).apply(small_plan())  # rendered afresh
    assert reuses[-1] == []
    assert members(book) == members(fresh)


def test_a_changed_plan_is_rendered(tmp_path, reuses):
    book = tmp_path / "book.xlsx"
    plain_workbook(book)
    XlsxBackend(book).apply(small_plan())
    changed = small_plan()
    changed.tabs[0] = steps_tab("basic steps", seed=1)  # other numbers
    XlsxBackend(book).apply(changed)
    assert len(reuses[-1]) == 1  # the other tab only
    reference = tmp_path / "reference.xlsx"
    plain_workbook(reference)
    XlsxBackend(reference).apply(changed)
    read = XlsxBackend(book).read(["basic steps"]).values["basic steps"]
    assert read == XlsxBackend(reference).read(["basic steps"]).values["basic steps"]


@pytest.mark.parametrize("tamper", [False, True])
def test_a_part_rewritten_under_its_mark_is_rendered(tmp_path, reuses, tamper):
    book = tmp_path / "book.xlsx"
    plain_workbook(book)
    XlsxBackend(book).apply(small_plan())
    with zipfile.ZipFile(book) as z:
        marked = [i for i in z.infolist() if i.comment.startswith(unchanged.MARK)]
        parts = {i.filename: z.read(i) for i in z.infolist()}
    tampered = book.with_name("tampered.xlsx")
    with zipfile.ZipFile(tampered, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.comment = next((i.comment for i in marked if i.filename == name), b"")
            if info.comment and tamper:
                data = data.replace(b"</sheetData>", b"</sheetData>" + b" " * 3)  # another text, the mark kept
            out.writestr(info, data)
    XlsxBackend(tampered).apply(small_plan())
    assert len(reuses[-1]) == (0 if tamper else 2)  # re-zipped as it was, it is still the same XML


def test_other_code_renders_afresh(tmp_path, reuses, monkeypatch):
    book = tmp_path / "book.xlsx"
    plain_workbook(book)
    XlsxBackend(book).apply(small_plan())
    monkeypatch.setattr(unchanged, "_code", b"another version of the renderer")
    XlsxBackend(book).apply(small_plan())
    assert reuses[-1] == []


def test_a_reset_of_the_demo_copies_its_tabs_and_writes_what_rendering_writes(tmp_path, reuses, monkeypatch):
    from datetime import datetime

    import sheetsync.layout.runs as runs
    from sheetsync.demo import write_demo
    from sheetsync.runner import run

    class FixedClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

    monkeypatch.setattr(runs, "datetime", FixedClock)
    book, fresh = tmp_path / "demo.xlsx", tmp_path / "fresh.xlsx"
    write_demo(book)
    run(str(book), action="reset")
    fresh.write_bytes(book.read_bytes())
    run(str(book), action="reset")
    assert len(reuses[-1]) >= 17  # every tab but the run log (appended) and any that changed
    monkeypatch.setattr(unchanged, "reusable", lambda info, key: False)
    run(str(fresh), action="reset")
    assert members(book) == members(fresh)
