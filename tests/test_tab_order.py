"""Running some experiments leaves every tab where it was (backends.order, .xlsx side)."""

import openpyxl
import pytest

from sheetsync.backends.order import NEW, OLD, arrange
from sheetsync.runner import run
from workbooks import write_book


def titles(path):
    return openpyxl.load_workbook(path, read_only=True).sheetnames


def test_one_experiment_keeps_every_tab_in_its_place(tmp_path):
    book = write_book(tmp_path / "book.xlsx")
    run(str(book))
    before = titles(book)
    assert before[:5] == ["data", "experiments", "basic steps", "basic epochs", "basic map"]
    run(str(book), experiments=["basic"])  # was: basic's tabs, compare, runs and state moved to the end
    assert titles(book) == before
    run(str(book), experiments=["relu", "momentum"], action="reset")
    assert titles(book) == before


def test_a_tab_the_learner_moved_stays_where_they_put_it(tmp_path):
    book = write_book(tmp_path / "book.xlsx")
    run(str(book), experiments=["basic"])
    wb = openpyxl.load_workbook(book)
    wb.move_sheet("basic epochs", offset=-3)  # before data
    wb.save(book)  # (openpyxl keeps the ownership marks: they are defined names)
    moved = titles(book)
    assert moved[0] == "basic epochs"
    run(str(book), experiments=["basic"])
    assert titles(book) == moved
    run(str(book), experiments=["adam"])  # new tabs: beside their neighbours in the plan
    after = titles(book)
    assert after[0] == "basic epochs"
    assert [t for t in after if t not in moved] == [t for t in after if t.startswith("adam ")]
    adam = after.index("adam steps")  # right after basic's last tab, before compare
    assert after[adam - 1].startswith("basic ") and after[adam + 1] == "adam epochs"
    assert after[-3:] == ["compare", "runs", "sheetsync state"]


@pytest.mark.parametrize("existing, plan, replaced, expected", [
    (["data"], ["s", "e"], set(), ["data", "s", "e"]),  # a first run: after the user's tabs
    (["data", "s", "e", "log"], ["s", "e", "log"], {1, 2, 3}, ["data", "s", "e", "log"]),
    (["e", "data", "log"], ["s", "e", "log"], {0, 2}, ["s", "e", "data", "log"]),  # s before its neighbour
    (["data", "S", "log", "notes"], ["s", "e", "e2", "log"], {1, 2}, ["data", "s", "e", "e2", "log", "notes"]),
])
def test_arrange(existing, plan, replaced, expected):
    order = arrange(existing, plan, replaced)
    assert [existing[i] if kind == OLD else plan[i] for kind, i in order] == expected
    assert sorted(i for kind, i in order if kind == NEW) == list(range(len(plan)))
