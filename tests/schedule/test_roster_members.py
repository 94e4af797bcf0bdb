"""A roster's members stay where its owner could reach: a local roster lists workbooks of its
own folder only (the rule of a served `spreadsheet`: no absolute path, no `..`, no folders, no
symbolic link out), a Google roster lists Google Sheets only."""

from __future__ import annotations

import hashlib
import os

from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.demo import write_demo
from sheetsync.schedule.executors import InlineExecutor, build_context
from sheetsync.schedule.dispatch import Dispatcher
from sheetsync.schedule.roster import member_targets
from sheetsync.schedule.store import Schedule

KEY = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcd"


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_local_roster_runs_only_workbooks_of_its_own_folder(tmp_path):
    served = tmp_path / "served"
    (served / "sub").mkdir(parents=True)
    outside = write_demo(tmp_path / "outside.xlsx")
    write_demo(served / "sub" / "deep.xlsx")
    member = write_demo(served / "member.xlsx")
    os.symlink(outside, served / "link.xlsx")
    organiser = served / "organiser.xlsx"
    XlsxBackend.create(organiser, {"roster": [["member sheet"], [str(outside)], ["../outside.xlsx"],
                                              ["sub/deep.xlsx"], ["link.xlsx"], [f"https://docs.google.com/spreadsheets/d/{KEY}/edit"],
                                              ["member.xlsx"]]})
    untouched = {p: digest(p) for p in (outside, served / "sub" / "deep.xlsx")}

    refused: list[str] = []
    rows = XlsxBackend(str(organiser)).read(["roster"]).values["roster"]
    assert member_targets(rows, str(organiser), refused) == [str(member.resolve())]
    assert len(refused) == 5 and any("outside the folder" in r for r in refused)

    # the scheduler itself: fire the roster, run every job it made
    store_path = str(tmp_path / "schedules.sqlite3")
    ctx = build_context({"store": store_path})
    dispatcher = Dispatcher(ctx.store, InlineExecutor(ctx), open_backend=ctx.open_backend)
    ctx.store.add(Schedule("", "roster", [str(organiser)], every=3600, roster_tab="roster", owner="me",
                           created=1_800_000_000.0))
    jobs = dispatcher.tick(1_800_000_000.0)
    assert [j.target for j in jobs] == [str(member.resolve())]
    assert {p: digest(p) for p in untouched} == untouched
    assert "basic steps" in [t.title for t in XlsxBackend(str(member)).read([]).tabs]


def test_a_google_roster_lists_google_sheets_only(tmp_path):
    rows = [["member"], [KEY], [str(tmp_path / "local.xlsx")], ["book.xlsx"]]
    refused: list[str] = []
    assert member_targets(rows, "https://docs.google.com/spreadsheets/d/" + KEY.replace("1", "2") + "/edit",
                          refused) == [KEY]
    assert len(refused) == 2 and all("Google roster" in r for r in refused)


def test_a_store_from_before_members_were_recorded_is_upgraded(tmp_path):
    import re
    import sqlite3

    from sheetsync.schedule.store import SCHEMA, ScheduleStore

    path = tmp_path / "old.sqlite3"
    old = re.sub(r",(\s*--[^\n]*)?\n\s*members TEXT[^\n]*", r"\1", SCHEMA)
    assert "members" not in old
    with sqlite3.connect(path) as db:
        db.executescript(old)
        db.execute("INSERT INTO schedules (id, kind, targets, owner, created) VALUES ('a', 'roster', '[\"o.xlsx\"]', 'me', 1)")
    store = ScheduleStore(str(path))
    [schedule] = store.list()
    assert schedule.members is None  # an old roster: any member, as before
    store.add(Schedule("", "roster", ["k"], every=3600, owner="me", members=["m1"]))
    assert [s.members for s in store.list()] == [None, ["m1"]]
