"""The schedule store: schedules, their outcomes, and what each sheet last looked like (SQLite, WAL).

Tables:

- ``schedules``: what to recompute (a sheet, a list, or a roster tab) and when (``every``
  seconds or ``cron``), with the next fire time the trigger process computed.
- ``outcomes``: one row per sheet per slot: recomputed, skipped (unchanged), duplicate,
  failed; with the inputs hash, attempts and the message. Every outcome lands here.
- ``sheets``: per target, the inputs hash of the last successful recomputation (the change
  test) and the last outcome (the leaderboard reads it).
- ``claims``: idempotency keys (sheet, inputs hash, slot): ``started`` then ``done``. A
  second delivery of a done key is a duplicate and writes nothing; a started key whose worker
  died is taken over by the retry (the sheet lock makes that safe).

Every connection is short-lived, so worker threads and processes can share the file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,             -- sheet | list | roster
    targets TEXT NOT NULL,          -- JSON list; for a roster: [organiser sheet]
    roster_tab TEXT,
    every INTEGER,
    cron TEXT,
    force INTEGER NOT NULL DEFAULT 0,
    owner TEXT NOT NULL,
    created REAL NOT NULL,
    next_fire REAL,
    last_fire REAL,
    warning TEXT,
    run_now REAL,                   -- a run-now request waiting for the trigger process
    credentials TEXT,               -- a service-account file (CLI only; never from HTTP)
    members TEXT                    -- roster: JSON list of the members its owner could open (NULL: any)
);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id TEXT,
    target TEXT NOT NULL,
    slot REAL NOT NULL,
    status TEXT NOT NULL,
    inputs_hash TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    message TEXT,
    report TEXT,
    finished REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_by_target ON outcomes (target, slot);
CREATE TABLE IF NOT EXISTS sheets (
    target TEXT PRIMARY KEY,
    last_hash TEXT,
    last_outcome TEXT
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    stamp REAL NOT NULL
);
"""


@dataclass
class Schedule:
    id: str
    kind: str
    targets: list[str]
    every: int | None = None
    cron: str | None = None
    roster_tab: str | None = None
    force: bool = False
    owner: str = "local"
    created: float = 0.0
    next_fire: float | None = None
    last_fire: float | None = None
    warning: str | None = None
    run_now: float | None = None
    credentials: str | None = None
    # A roster registered over HTTP: the members its owner could open when registering; the
    # scheduler runs no other member (None: a roster of the scheduler's own user, any member).
    members: list[str] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outcome:
    """What happened to one sheet in one slot."""

    target: str
    slot: float
    status: str  # recomputed | skipped | duplicate | failed
    schedule_id: str | None = None
    inputs_hash: str | None = None
    attempts: int = 1
    message: str = ""
    report: dict = field(default_factory=dict)
    finished: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class ScheduleStore:
    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            db.executescript(SCHEMA)
            columns = {r[1] for r in db.execute("PRAGMA table_info(schedules)")}
            if "members" not in columns:  # a store from before rosters recorded their members
                db.execute("ALTER TABLE schedules ADD COLUMN members TEXT")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (opened once: a dispatcher records thousands of outcomes)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a crash loses at most the last outcome
            self._local.db = db
        yield db

    # -- schedules ---------------------------------------------------------------------------

    def add(self, schedule: Schedule) -> Schedule:
        schedule.id = schedule.id or uuid.uuid4().hex[:12]
        schedule.created = schedule.created or time.time()
        with self._db() as db:
            db.execute("INSERT INTO schedules (id, kind, targets, roster_tab, every, cron, force, owner, "
                       "created, next_fire, last_fire, warning, credentials, members) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (schedule.id, schedule.kind, json.dumps(schedule.targets), schedule.roster_tab,
                        schedule.every, schedule.cron, int(schedule.force), schedule.owner,
                        schedule.created, schedule.next_fire, schedule.last_fire, schedule.warning,
                        schedule.credentials, None if schedule.members is None else json.dumps(schedule.members)))
        return schedule

    def list(self, owner: str | None = None) -> list[Schedule]:
        with self._db() as db:
            rows = (db.execute("SELECT * FROM schedules WHERE owner = ? ORDER BY created", (owner,))
                    if owner is not None else db.execute("SELECT * FROM schedules ORDER BY created"))
            return [schedule_of(r) for r in rows]

    def get(self, schedule_id: str) -> Schedule | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
        return schedule_of(row) if row else None

    def remove(self, schedule_id: str) -> bool:
        with self._db() as db:
            return db.execute("DELETE FROM schedules WHERE id = ?", (schedule_id,)).rowcount > 0

    def set_fire(self, schedule_id: str, last_fire: float | None, next_fire: float | None,
                 warning: str | None) -> None:
        with self._db() as db:
            db.execute("UPDATE schedules SET last_fire = COALESCE(?, last_fire), next_fire = ?, warning = ? "
                       "WHERE id = ?", (last_fire, next_fire, warning, schedule_id))

    def request_run(self, schedule_id: str, when: float) -> bool:
        with self._db() as db:
            return db.execute("UPDATE schedules SET run_now = ? WHERE id = ?", (when, schedule_id)).rowcount > 0

    def clear_run_now(self, schedule_id: str, when: float) -> None:
        with self._db() as db:  # only the request we served: a newer one stays
            db.execute("UPDATE schedules SET run_now = NULL WHERE id = ? AND run_now = ?", (schedule_id, when))

    # -- outcomes and sheets -----------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        outcome.finished = outcome.finished or time.time()
        with self._db() as db:
            db.execute("INSERT INTO outcomes (schedule_id, target, slot, status, inputs_hash, attempts, "
                       "message, report, finished) VALUES (?,?,?,?,?,?,?,?,?)",
                       (outcome.schedule_id, outcome.target, outcome.slot, outcome.status,
                        outcome.inputs_hash, outcome.attempts, outcome.message,
                        json.dumps(outcome.report), outcome.finished))
            if outcome.status in ("recomputed", "failed"):  # skips and duplicates change nothing
                db.execute("INSERT INTO sheets (target, last_outcome) VALUES (?, ?) ON CONFLICT(target) "
                           "DO UPDATE SET last_outcome = excluded.last_outcome",
                           (outcome.target, json.dumps(outcome.to_dict())))

    def outcomes(self, target: str | None = None) -> list[Outcome]:
        with self._db() as db:
            rows = (db.execute("SELECT * FROM outcomes WHERE target = ? ORDER BY id", (target,))
                    if target else db.execute("SELECT * FROM outcomes ORDER BY id"))
            return [outcome_of(r) for r in rows]

    def last_outcome(self, target: str) -> Outcome | None:
        with self._db() as db:
            row = db.execute("SELECT last_outcome FROM sheets WHERE target = ?", (target,)).fetchone()
        return Outcome(**json.loads(row[0])) if row and row[0] else None

    # -- the work state (`WorkState` protocol, see work.py) ---------------------------------

    def last_hash(self, target: str) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT last_hash FROM sheets WHERE target = ?", (target,)).fetchone()
        return row[0] if row else None

    def set_hash(self, target: str, inputs_hash: str) -> None:
        with self._db() as db:
            db.execute("INSERT INTO sheets (target, last_hash) VALUES (?, ?) ON CONFLICT(target) "
                       "DO UPDATE SET last_hash = excluded.last_hash", (target, inputs_hash))

    def claim(self, key: str) -> bool:
        """Take the idempotency key; False when a delivery with this key already finished."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT status FROM claims WHERE key = ?", (key,)).fetchone()
            if row and row[0] == "done":
                db.execute("ROLLBACK")
                return False
            db.execute("INSERT OR REPLACE INTO claims (key, status, stamp) VALUES (?, 'started', ?)",
                       (key, time.time()))
            db.execute("COMMIT")
            return True

    def finish(self, key: str) -> None:
        with self._db() as db:
            db.execute("UPDATE claims SET status = 'done', stamp = ? WHERE key = ?", (time.time(), key))


def schedule_of(row: sqlite3.Row) -> Schedule:
    data = dict(row)
    data["targets"] = json.loads(data["targets"])
    data["force"] = bool(data["force"])
    data["members"] = None if data.get("members") is None else json.loads(data["members"])
    return Schedule(**data)


def outcome_of(row: sqlite3.Row) -> Outcome:
    data = dict(row)
    data.pop("id")
    data["report"] = json.loads(data["report"] or "{}")
    return Outcome(**data)
