"""`sheetsync schedule add|list|remove|run-now` on local workbooks: the run-now recomputes
here and prints each sheet's outcome; errors are one line with the usage exit code."""

from __future__ import annotations

import json

from sheetsync.cli import main
from sheetsync.demo import write_demo


def test_add_list_run_now_remove(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHEETSYNC_SCHEDULE_STORE", str(tmp_path / "state" / "schedules.sqlite3"))
    a, b = write_demo(tmp_path / "a.xlsx"), write_demo(tmp_path / "b.xlsx")
    assert main(["schedule", "add", str(a), str(b), "--every", "30m", "--json"]) == 0
    schedule = json.loads(capsys.readouterr().out)[0]
    assert schedule["every"] == 1800 and schedule["kind"] == "list"
    assert main(["schedule", "list"]) == 0
    assert schedule["id"] in capsys.readouterr().out
    assert main(["schedule", "run-now", schedule["id"]]) == 0
    out = capsys.readouterr().out
    assert f"{a}: recomputed" in out and f"{b}: recomputed" in out
    assert main(["schedule", "run-now", schedule["id"], "--queue"]) == 0
    assert main(["schedule", "remove", schedule["id"]]) == 0
    capsys.readouterr()
    assert main(["schedule", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_bad_schedules_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SHEETSYNC_SCHEDULE_STORE", str(tmp_path / "schedules.sqlite3"))
    assert main(["schedule", "add", "a.xlsx", "--every", "10"]) == 64
    assert main(["schedule", "add", "a.xlsx", "--cron", "sometimes"]) == 64
    assert main(["schedule", "add", "--every", "1h"]) == 64
    assert main(["schedule", "remove", "nope"]) == 64
    err = capsys.readouterr().err
    assert "from 60 seconds" in err and "cron" in err and "no schedule 'nope'" in err
    assert "Traceback" not in err
