"""`sheetsync schedule add` and ``POST /v1/schedules`` check a schedule alike: an interval from
1 minute to 31 days (no overflow), a cron line that fires at least once, a target that exists
(CLI: a workbook on disk or a Google Sheets URL or key). Each refusal is one clear line."""

from __future__ import annotations

import pytest

from sheetsync.server import create_app
from sheetsync.cli import main
from sheetsync.demo import write_demo
from sheetsync.schedule.store import ScheduleStore

TOKEN = "local-token-for-validation-tests-01"


@pytest.fixture
def book(tmp_path):
    return write_demo(tmp_path / "member.xlsx")


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = tmp_path / "schedules.sqlite3"
    monkeypatch.setenv("SHEETSYNC_SCHEDULE_STORE", str(path))
    return path


@pytest.fixture
def client(book, tmp_path):
    app = create_app({"MODE": "local", "LOCAL_FOLDER": str(book.parent), "LOCAL_TOKEN": TOKEN,
                      "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3")})
    yield app.test_client()
    app.extensions["sheetsync"].runs.shutdown()


BAD_TIMING = [
    (["--cron", "0 0 31 2 *"], {"cron": "0 0 31 2 *"}, "never fires"),
    (["--cron", "0 0 31 4,6,9,11 *"], {"cron": "0 0 31 4,6,9,11 *"}, "never fires"),
    (["--every", "32d"], {"every": 32 * 86400}, "31"),
    (["--every", "99999999999999999999d"], {"every": 10 ** 20}, "31"),
    (["--every", "59s"], {"every": 59}, "60"),
]


@pytest.mark.parametrize("cli_args, body, says", BAD_TIMING, ids=[b[0][1] for b in BAD_TIMING])
def test_timing_is_refused_alike_by_the_cli_and_the_api(book, store, client, capsys, cli_args, body, says):
    assert main(["schedule", "add", str(book), *cli_args]) == 64
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    answer = client.post("/v1/schedules", headers={"Authorization": f"Bearer {TOKEN}"},
                         json={"spreadsheets": [book.name], **body})
    assert answer.status_code == 400, answer.json
    assert ScheduleStore(str(store)).list() == []


def test_31_days_and_a_leap_day_are_accepted(book, store, capsys):
    assert main(["schedule", "add", str(book), "--every", "31d"]) == 0
    assert main(["schedule", "add", str(book), "--cron", "0 0 29 2 *"]) == 0
    assert len(ScheduleStore(str(store)).list()) == 2


@pytest.mark.parametrize("target, says", [
    ("absent.xlsx", "no such workbook"),
    ("notes.txt", "not a workbook path"),
    ("https://docs.google.com/spreadsheets/d/e/2PACX-1vQabcdefghijklmnopqrstuvwxyz/pubhtml", "TARGET"),
])
def test_invalid_targets_are_refused(tmp_path, store, capsys, monkeypatch, target, says):
    monkeypatch.chdir(tmp_path)
    assert main(["schedule", "add", target, "--every", "1h"]) == 64
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err
    assert main(["schedule", "add", "--roster", target, "--every", "1h"]) == 64
    assert ScheduleStore(str(store)).list() == []
