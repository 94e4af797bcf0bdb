"""One sheet, one slot: decide whether it changed, recompute it if so, record what happened.

`recompute(job, ctx)`:

1. wait for the spreadsheet's lock (one writer per spreadsheet: README, "One writer per workbook");
2. ONE read round of the data, experiments, runs and state tabs — exactly the runner's first
   read, so when the sheet is recomputed the runner is handed the same backend and its read
   costs nothing more (Google: 2 requests to check, 3 to recompute);
3. the inputs hash (`inputs.py`); unchanged since the last recomputation and not forced:
   ``skipped``;
4. the idempotency key (sheet, inputs hash, slot): a delivery of a key already done is a
   ``duplicate`` and writes nothing (RQ may deliver a job twice; a run-now may race a slot);
5. `sheetsync.runner.run` — one atomic write of the outputs and the sheet's run log;
6. the outcome goes to the store.

Transient failures (quota, 5xx, no answer, a lock held too long) raise `Transient` after
recording a ``retrying`` outcome, so the executor re-delivers the job later with backoff and
the worker moves on to other sheets at once; the last attempt records ``failed``. Anything
else fails the sheet at once and the error is recorded; no sheet's failure touches another.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

from sheetsync.backends.guard import WorkbookChanged, WorkbookOpenElsewhere
from sheetsync.errors import BackendError, InputError, SheetsyncError
from sheetsync.locks import writing
from sheetsync.layout.runs import RUNS_TAB, first_read
from sheetsync.layout.state import STATE_TAB
from sheetsync.parse import DATA_TAB, EXPERIMENTS_TAB

from .coordination import LockTimeout
from .inputs import flavours, inputs_hash
from .store import Outcome, ScheduleStore

FIRST_READ = [DATA_TAB, EXPERIMENTS_TAB, RUNS_TAB, STATE_TAB]
MAX_ATTEMPTS = 4
RETRY_DELAYS = (30.0, 120.0, 480.0)  # seconds before attempts 2, 3, 4: past a quota minute


@dataclass
class SheetJob:
    target: str
    slot: float  # the schedule's fire time this job belongs to (epoch seconds)
    schedule_id: str | None = None
    force: bool = False
    credentials: str | None = None
    attempt: int = 1
    not_before: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class WorkState(Protocol):
    def last_hash(self, target: str) -> str | None: ...
    def set_hash(self, target: str, inputs_hash: str) -> None: ...
    def claim(self, key: str) -> bool: ...
    def finish(self, key: str) -> None: ...


@dataclass
class Context:
    store: ScheduleStore  # outcomes
    state: WorkState  # hashes and claims: the store itself, or Redis
    locks: object  # .hold(key) context manager
    open_backend: Callable[[str, str | None], object]
    clock: Callable[[], float] = time.time
    max_attempts: int = MAX_ATTEMPTS


class Transient(Exception):
    """Try this job again later (the outcome so far is recorded)."""

    def __init__(self, job: SheetJob, delay: float, message: str):
        super().__init__(message)
        self.job, self.delay = job, delay


def recompute(job: SheetJob, ctx: Context) -> Outcome:
    try:
        outcome = _attempt(job, ctx)
    except Exception as e:  # noqa: BLE001 - one sheet's failure is recorded, never propagated
        outcome = _failure(job, ctx, e)
    outcome.attempts = job.attempt
    outcome.schedule_id = job.schedule_id
    outcome.finished = ctx.clock()
    ctx.store.record(outcome)
    if outcome.status == "retrying":
        raise Transient(job, retry_delay(job.attempt), outcome.message)
    return outcome


def _attempt(job: SheetJob, ctx: Context) -> Outcome:
    with ctx.locks.hold(sheet_key(job.target)):
        backend = ctx.open_backend(job.target, job.credentials)
        with writing(backend):  # the workbook's own lock, shared with the CLI and the server
            return _decide_and_run(job, ctx, backend)


def _decide_and_run(job: SheetJob, ctx: Context, backend) -> Outcome:
    snapshot = first_read(backend, FIRST_READ)
    digest = inputs_hash(snapshot)
    if not job.force and ctx.state.last_hash(job.target) == digest:
        return Outcome(job.target, job.slot, "skipped", inputs_hash=digest, message="inputs unchanged")
    key = idempotency_key(job.target, digest, job.slot)
    if not ctx.state.claim(key):
        return Outcome(job.target, job.slot, "duplicate", inputs_hash=digest,
                       message="this slot already recomputed these inputs")
    outcome = _run(job, backend, digest)
    for row in outcome.report.get("experiments", []):
        row["flavour"] = flavours(snapshot).get(row["name"], "")
    ctx.state.set_hash(job.target, digest)
    ctx.state.finish(key)
    return outcome


def _run(job: SheetJob, backend, digest: str) -> Outcome:
    from sheetsync.runner import run

    try:
        report = run(job.target, backend=backend)
    except InputError as e:  # the runner wrote the problems to the sheet's run log
        return Outcome(job.target, job.slot, "failed", inputs_hash=digest,
                       message=f"input errors: {e}"[:2000])
    return Outcome(job.target, job.slot, "recomputed", inputs_hash=digest, report=summary(report))


def _failure(job: SheetJob, ctx: Context, error: Exception) -> Outcome:
    message = str(error) if isinstance(error, SheetsyncError) else f"{type(error).__name__}: {error}"
    retry = is_transient(error) and job.attempt < ctx.max_attempts
    return Outcome(job.target, job.slot, "retrying" if retry else "failed", message=message[:2000])


def is_transient(error: Exception) -> bool:
    """Worth another try later: quota, server trouble, no answer, a lock held too long."""
    if isinstance(error, (LockTimeout, ConnectionError, TimeoutError, WorkbookChanged, WorkbookOpenElsewhere)):
        return True
    if isinstance(error, BackendError) and hasattr(error, "status"):
        status = error.status
        return status is None or status in (408, 429) or 500 <= status <= 599
    return False


def retry_delay(attempt: int) -> float:
    """Backoff with jitter (half to all of the step), so sheets that failed together — a Google
    outage — do not all come back in the same second."""
    return RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)] * random.uniform(0.5, 1.0)


def idempotency_key(target: str, digest: str, slot: float) -> str:
    return hashlib.sha256(f"{sheet_key(target)}|{digest}|{slot:.0f}".encode()).hexdigest()[:32]


def sheet_key(target: str) -> str:
    """One name per spreadsheet, whichever way it was written (URL or key; path)."""
    from sheetsync.backends import is_local

    if is_local(target):
        return "local:" + str(Path(target).resolve())
    try:
        from sheetsync.backends.targets import parse_target

        return "google:" + (parse_target(target) or target)
    except (ImportError, BackendError):
        return "google:" + target


def summary(report) -> dict:
    """What the leaderboard and the API show of a run: per experiment, loss and flavour."""
    return {"data_hash": report.data_hash, "seconds": report.seconds,
            "experiments": [{"name": e.name, "loss": e.loss, "epochs": e.total_epochs,
                             "diverged": bool(e.diverged)} for e in report.experiments]}
