"""The run store: every run and its outcome in SQLite (WAL), shared by all worker processes.

A run is ``queued`` (waiting for its spreadsheet's lock), ``running``, then ``succeeded`` or
``failed``. Each unfinished run records its owner process (pid and start time, so a reused pid
is not mistaken for the owner); a run whose owner is gone is marked failed ("interrupted") —
at start-up for every run in the store, and whenever such a run is read. No run stays
``running`` forever.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from datetime import datetime, timezone

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    spreadsheet TEXT NOT NULL,
    action TEXT NOT NULL,
    mode TEXT NOT NULL,
    experiments TEXT,
    status TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    summary TEXT,
    error TEXT,
    http_status INTEGER,
    owner TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS runs_unfinished ON runs (status) WHERE status IN ('queued', 'running');
"""

UNFINISHED = ("queued", "running")
INTERRUPTED = {"code": "interrupted", "problems": [],
               "message": "the server process running this run stopped before it finished; "
                          "the sheet was left as it was before the run (writes are atomic). Run it again."}


def process_start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot), '' where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of stat; fields[0] is field 3
    except (OSError, IndexError):
        return ""


def this_process() -> str:
    pid = os.getpid()
    return f"{pid}:{process_start_time(pid)}"


def is_alive(owner: str | None) -> bool:
    """Does the process that `owner` names still run (and is it that process, not a reused pid)?"""
    if not owner:
        return False
    pid_text, _, started = owner.partition(":")
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    if is_zombie(pid):
        return False
    return not started or process_start_time(pid) in ("", started)


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


class RunStore:
    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._local = threading.local()
        self._owner = (0, "")  # (pid, this_process()): read from /proc once per process, not per run
        with self._db() as db:
            db.executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def create(self, caller: str, spreadsheet: str, action: str, mode: str,
               experiments: list[str] | None) -> str:
        run_id = uuid.uuid4().hex
        self._db().execute(
            "INSERT INTO runs (id, caller, spreadsheet, action, mode, experiments, status, owner, created)"
            " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
            (run_id, caller, spreadsheet, action, mode,
             None if experiments is None else json.dumps(experiments), self.owner(), time.time()))
        return run_id

    def owner(self) -> str:
        """This process as runs record it; a forked worker (gunicorn --preload) reads its own."""
        if self._owner[0] != os.getpid():
            self._owner = (os.getpid(), this_process())
        return self._owner[1]

    def mark_running(self, run_id: str) -> None:
        self._update(run_id, "status = 'running', started = ?", time.time())

    def progress(self, run_id: str, done: int, total: int) -> None:
        self._update(run_id, "done = ?, total = ?", int(done), int(total))

    def succeed(self, run_id: str, summary: dict) -> None:
        self._update(run_id, "status = 'succeeded', summary = ?, http_status = 200, finished = ?, done = total",
                     json.dumps(summary), time.time())

    def fail(self, run_id: str, error: dict, http_status: int) -> None:
        self._update(run_id, "status = 'failed', error = ?, http_status = ?, finished = ?",
                     json.dumps(error), http_status, time.time())

    def _update(self, run_id: str, assignments: str, *values) -> None:
        self._db().execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values, run_id))

    def get(self, run_id: str) -> dict | None:
        row = self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None and row["status"] in UNFINISHED and not is_alive(row["owner"]):
            self.fail(run_id, INTERRUPTED, 500)
            row = self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else as_record(row)

    def reap_interrupted(self) -> int:
        """Mark failed every unfinished run whose owner process is gone; how many were."""
        rows = self._db().execute("SELECT id, owner FROM runs WHERE status IN ('queued', 'running')").fetchall()
        dead = [r["id"] for r in rows if not is_alive(r["owner"])]
        for run_id in dead:
            self.fail(run_id, INTERRUPTED, 500)
        return len(dead)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def as_record(row: sqlite3.Row) -> dict:
    return {
        "id": row["id"],
        "caller": row["caller"],
        "status": row["status"],
        "spreadsheet": row["spreadsheet"],
        "action": row["action"],
        "mode": row["mode"],
        "experiments": None if row["experiments"] is None else json.loads(row["experiments"]),
        "progress": {"done": row["done"], "total": row["total"]},
        "summary": None if row["summary"] is None else json.loads(row["summary"]),
        "error": None if row["error"] is None else json.loads(row["error"]),
        "http_status": row["http_status"],
        "created": iso(row["created"]),
        "started": iso(row["started"]),
        "finished": iso(row["finished"]),
    }
