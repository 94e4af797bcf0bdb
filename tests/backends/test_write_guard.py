"""A local write never loses anyone's work: a workbook saved by someone else while sheetsync
trained is not replaced, a workbook open in LibreOffice or Excel is not written (unless forced),
and temp files of a killed writer are removed by the next write."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

import sheetsync.runner as runner
from sheetsync import cli
from sheetsync.backends import guard
from sheetsync.backends.guard import WorkbookChanged, WorkbookOpenElsewhere
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.demo import write_demo
from sheetsync.errors import BackendError


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def book(tmp_path):
    return write_demo(tmp_path / "book.xlsx")


def saved_elsewhere_while_training(monkeypatch, book, tmp_path):
    """Someone saves the workbook (as an office suite does: a new file renamed over it) while
    sheetsync trains; returns the digest of what they saved."""
    theirs = tmp_path / "theirs.xlsx"
    write_demo(theirs)
    XlsxBackend(str(theirs)).apply(_note_plan())  # different bytes from the book
    saved = digest(theirs)
    real_train = runner.train

    def train_while_someone_saves(*args, **kwargs):
        if theirs.exists():
            shutil.copy(theirs, str(book) + ".saving")
            os.replace(str(book) + ".saving", book)
            theirs.unlink()
        return real_train(*args, **kwargs)

    monkeypatch.setattr(runner, "train", train_while_someone_saves)
    return saved


def _note_plan():
    from sheetsync.backends.base import Plan, TabPlan, Text

    return Plan(tabs=[TabPlan("note", texts=[Text(0, 0, "saved by someone else")])])


# The file's identity is its stat when it had been still for a while, its content hash when it
# had just changed (timestamps are coarse): both ways, in both directions.
STILL_AND_FRESH = pytest.mark.parametrize("fresh_ns", [0, 10 ** 18], ids=["still", "fresh"])


@STILL_AND_FRESH
def test_a_workbook_saved_by_someone_else_during_training_is_not_replaced(monkeypatch, book, tmp_path, fresh_ns):
    monkeypatch.setattr(guard, "FRESH_NS", fresh_ns)
    saved = saved_elsewhere_while_training(monkeypatch, book, tmp_path)
    with pytest.raises(WorkbookChanged, match="the workbook changed since it was read; run again"):
        runner.run(str(book), experiments=["basic"])
    assert digest(book) == saved  # their save stands


@STILL_AND_FRESH
def test_a_file_read_and_written_by_one_run_is_not_mistaken_for_changed(monkeypatch, book, fresh_ns):
    monkeypatch.setattr(guard, "FRESH_NS", fresh_ns)
    backend = XlsxBackend(str(book))
    with backend.writing():
        backend.read(["data"])
        backend.read(["experiments"])
        backend.apply(_note_plan())
    assert "note" in [t.title for t in XlsxBackend(str(book)).read([]).tabs]


def test_the_cli_says_so_with_exit_code_4(monkeypatch, book, tmp_path, capsys):
    saved = saved_elsewhere_while_training(monkeypatch, book, tmp_path)
    assert cli.main(["run", str(book), "-e", "basic"]) == 4
    err = capsys.readouterr().err
    assert "changed since it was read; run again" in err and "Traceback" not in err
    assert digest(book) == saved


def test_the_server_answers_409_without_its_folder(monkeypatch, book, tmp_path):
    from sheetsync.server import create_app

    saved = saved_elsewhere_while_training(monkeypatch, book, tmp_path)
    app = create_app({"MODE": "local", "LOCAL_FOLDER": str(tmp_path), "LOCAL_TOKEN": "t" * 24,
                      "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3"), "SYNC_BUDGET": 60})
    answer = app.test_client().post("/v1/runs", json={"spreadsheet": "book.xlsx", "experiments": ["basic"]},
                                    headers={"Authorization": "Bearer " + "t" * 24})
    app.extensions["sheetsync"].runs.shutdown()
    assert answer.status_code == 409, answer.json
    assert answer.json["error"]["code"] == "workbook_changed"
    assert answer.json["error"]["message"].startswith("book.xlsx: the workbook changed since it was read")
    assert str(tmp_path) not in answer.get_data(as_text=True)
    assert digest(book) == saved


def test_a_run_continues_the_file_it_read_when_nobody_else_writes(book):
    first = runner.run(str(book), experiments=["basic"])
    second = runner.run(str(book), experiments=["basic"])
    assert second.experiments[0].total_epochs == first.experiments[0].total_epochs + 5


@pytest.mark.parametrize("lock_name", [".~lock.book.xlsx#", "~$book.xlsx", "~$ok.xlsx"])
def test_a_workbook_open_in_an_office_suite_is_not_written(book, lock_name, capsys):
    (book.parent / lock_name).write_text("someone,host,/home/someone,05.12.2026 10:00,file:///x;")
    before = digest(book)
    assert cli.main(["run", str(book), "-e", "basic"]) == 4
    err = capsys.readouterr().err
    assert lock_name in err and ("LibreOffice" in err or "Excel" in err) and "--force" in err
    assert digest(book) == before
    with pytest.raises(WorkbookOpenElsewhere):
        runner.run(str(book), experiments=["basic"])
    assert digest(book) == before


def test_force_writes_anyway(book, capsys):
    (book.parent / ".~lock.book.xlsx#").write_text("x")
    assert cli.main(["run", str(book), "-e", "basic", "--force"]) == 0
    assert cli.main(["reset", str(book), "-e", "basic", "--force"]) == 0
    report = runner.run(str(book), experiments=["basic"], force=True)
    assert report.experiments[0].total_epochs == 10


def test_push_refuses_and_forces_alike(book, tmp_path, capsys):
    (tmp_path / "lab.toml").write_text('[basic]\noptimizer = "sgd"\nlr = 0.0001\n')
    (tmp_path / "data.csv").write_text("x,y\n1,32\n2,34\n3,36\n")
    pushed = tmp_path / "pushed.xlsx"
    args = ["push", str(tmp_path / "lab.toml"), "--data", str(tmp_path / "data.csv"), "--to", str(pushed)]
    assert cli.main(args) == 0
    (tmp_path / "~$pushed.xlsx").write_text("x")
    before = digest(pushed)
    assert cli.main(args) == 4
    assert digest(pushed) == before
    assert cli.main(args + ["--force"]) == 0


def test_temp_files_of_a_dead_writer_are_removed_by_the_next_write(book):
    dead = book.parent / ".book.xlsx.4194305.abcd.sheetsync-tmp"  # above any pid_max: no such process
    alive = book.parent / f".book.xlsx.{os.getppid()}.efgh.sheetsync-tmp"  # a live process's
    unknown = book.parent / ".book.xlsx.ijkl.sheetsync-tmp"  # no pid: cannot prove it abandoned
    for f in (dead, alive, unknown):
        f.write_bytes(b"PK" + b"\0" * 1000)
    runner.run(str(book), experiments=["basic"])
    assert not dead.exists() and alive.exists() and unknown.exists()


def test_reading_alone_never_waits_for_a_writer(book):
    writer = XlsxBackend(str(book))
    with writer.writing():
        writer.read(["data"])
        assert XlsxBackend(str(book)).read(["data"]).values["data"]  # a trace, say: not blocked


def test_a_missing_workbook_is_one_clear_error(tmp_path):
    with pytest.raises(BackendError, match="no such workbook"):
        runner.run(str(tmp_path / "gone.xlsx"))


def test_the_server_answers_409_for_a_workbook_open_in_libreoffice(book, tmp_path):
    from sheetsync.server import create_app

    (tmp_path / ".~lock.book.xlsx#").write_text("x")
    before = digest(book)
    app = create_app({"MODE": "local", "LOCAL_FOLDER": str(tmp_path), "LOCAL_TOKEN": "t" * 24,
                      "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3"), "SYNC_BUDGET": 60})
    answer = app.test_client().post("/v1/runs", json={"spreadsheet": "book.xlsx", "experiments": ["basic"]},
                                    headers={"Authorization": "Bearer " + "t" * 24})
    app.extensions["sheetsync"].runs.shutdown()
    assert answer.status_code == 409, answer.json
    assert answer.json["error"]["code"] == "workbook_in_use"
    assert ".~lock.book.xlsx#" in answer.json["error"]["message"]
    assert str(tmp_path) not in answer.get_data(as_text=True)
    assert digest(book) == before


def test_server_errors_name_workbooks_relative_to_the_served_folder(book, tmp_path):
    import openpyxl

    from sheetsync.server import create_app

    app = create_app({"MODE": "local", "LOCAL_FOLDER": str(tmp_path), "LOCAL_TOKEN": "t" * 24,
                      "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3"), "SYNC_BUDGET": 60})

    wb = openpyxl.load_workbook(book)
    wb.create_sheet("compare")  # a tab of the user's named like one of sheetsync's
    wb.save(book)
    answer = app.test_client().post("/v1/runs", json={"spreadsheet": "book.xlsx"},
                                    headers={"Authorization": "Bearer " + "t" * 24})
    app.extensions["sheetsync"].runs.shutdown()
    assert answer.status_code == 409, answer.json
    assert answer.json["error"]["message"].startswith("book.xlsx: the tab 'compare'")
    assert str(tmp_path) not in answer.get_data(as_text=True)


def test_a_second_writer_waits_and_says_so(book, tmp_path):
    import subprocess
    import sys
    import time
    from pathlib import Path

    first = XlsxBackend(str(book))
    with first.writing():
        first.read(["data"])
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        second = subprocess.Popen([sys.executable, "-m", "sheetsync", "run", str(book), "-e", "basic"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        said = second.stderr.readline()  # once it reaches the lock we hold
        assert said.strip() == "book.xlsx: waiting for another run of this workbook to finish"
        time.sleep(0.5)
        assert second.poll() is None  # still waiting for us
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "Traceback" not in err


def test_a_file_system_without_locks_still_runs_guarded_by_the_content_check(book, monkeypatch):
    import errno

    from sheetsync import locks

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    report = runner.run(str(book), experiments=["basic"])
    assert report.experiments[0].total_epochs == 5
