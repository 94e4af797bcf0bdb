"""One writer per Google spreadsheet on a machine: a run of a sheet waits, before its first
read, for any other run of it (CLI, server, scheduler) to finish, and then reads afresh."""

from __future__ import annotations

import threading
import time

from sheets_support import KEY, SA_EMAIL

from sheetsync.demo import demo_tabs
from sheetsync.locks import SpreadsheetLocks, default_lock_folder
from sheetsync.runner import run


def test_a_run_waits_for_the_other_writer_of_the_sheet(fake, make_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    book = fake.create(KEY, shared_with={SA_EMAIL}, tabs=("data", "experiments"))
    for tab, rows in demo_tabs().items():
        book.by_title(tab).fill(rows)
    held, release = threading.Event(), threading.Event()
    released_at = []

    def other_writer():  # another process's run, as far as the lock file can tell
        with SpreadsheetLocks(default_lock_folder()).hold("writer:google:" + KEY):
            held.set()
            release.wait(10)
            released_at.append(time.monotonic())

    other = threading.Thread(target=other_writer)
    other.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    report = run(KEY, experiments=["basic"], backend=make_backend())
    finished = time.monotonic()
    other.join()
    assert released_at and finished > released_at[0]
    assert report.experiments[0].total_epochs == 5
