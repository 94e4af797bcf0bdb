"""Runs, started from requests and carried out by worker threads.

`RunService.start` records a queued run and hands it to a thread pool; the worker waits for the
spreadsheet's lock, marks the run running, calls `sheetsync.runner.run` (the one function every
entry point calls) and records the outcome. The request waits up to SYNC_BUDGET seconds: a run
finished by then is answered whole (200), a longer one with its id (202) to poll.
"""

from __future__ import annotations

import logging
import os
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from sheetsync.errors import SheetsyncError
from sheetsync.schedule.coordination import LockTimeout

from .errors import ApiError, from_sheetsync
from .spreadsheets import Sheet
from .store import RunStore

log = logging.getLogger(__name__)

PROGRESS_EVERY = 0.25  # seconds between progress writes to the store


@dataclass
class Job:
    run_id: str
    sheet: Sheet
    action: str
    mode: str
    experiments: list[str] | None
    google: bool


class RunService:
    def __init__(self, store: RunStore, locks, threads: int, budget: float):
        self.store, self.locks, self.budget = store, locks, budget
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sheetsync-run")

    def start(self, caller: str, sheet: Sheet, action: str, mode: str, experiments, google: bool):
        """Record and start a run; (record, finished) once done or after the time budget."""
        run_id = self.store.create(caller, sheet.display, action, mode, experiments)
        future = self.pool.submit(self.execute, Job(run_id, sheet, action, mode, experiments, google))
        wait([future], timeout=self.budget)
        return self.store.get(run_id), future.done()

    def execute(self, job: Job) -> None:
        try:
            with self.locks.hold(job.sheet.lock_key):
                self.store.mark_running(job.run_id)
                report = self._run(job)
            self.store.succeed(job.run_id, summary(report, job.sheet.display))
        except ApiError as e:
            self.store.fail(job.run_id, e.body()["error"], e.status)
        except LockTimeout:  # another run held the sheet for longer than a run may wait
            self.store.fail(job.run_id, {"code": "spreadsheet_busy", "problems": [],
                                         "message": "another run of this spreadsheet held it too long; try again"}, 409)
        except SheetsyncError as e:
            failure = from_sheetsync(e, job.google, folder=None if job.google else os.path.dirname(job.sheet.target))
            self.store.fail(job.run_id, failure.body()["error"], failure.status)
        except Exception as e:  # noqa: BLE001 - a bug: the run fails, the worker lives on
            log.error("run %s failed: internal error %s", job.run_id, type(e).__name__)
            self.store.fail(job.run_id, {"code": "internal_error", "problems": [],
                                         "message": "internal error; it was logged"}, 500)

    def _run(self, job: Job):
        from sheetsync.runner import run

        return run(job.sheet.target, experiments=job.experiments, action=job.action, mode=job.mode,
                   backend=job.sheet.open(), progress=self._progress(job.run_id))

    def _progress(self, run_id: str):
        last = [0.0]
        lock = threading.Lock()

        def report(done: int, total: int, phase: str = "train") -> None:
            if phase != "train":  # the store's progress counts training steps
                return
            now = time.monotonic()
            with lock:
                if now - last[0] < PROGRESS_EVERY and done < total:
                    return
                last[0] = now
            self.store.progress(run_id, done, total)

        return report

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


def summary(report, display: str) -> dict:
    data = finite(report.to_dict())
    data.pop("target", None)
    return {"spreadsheet": display, **data}


def finite(value):
    """JSON-safe: NaN and infinities become null (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
