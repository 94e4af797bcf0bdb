"""A real RQ worker process is SIGKILLed in the middle of writing a workbook: the workbook is
left byte for byte as it was (the write is a temporary file renamed over it), and the job,
abandoned, is delivered again and completes.

The worker runs jobs in its own process (``SimpleWorker``): RQ's forking worker puts its work
horse in a session of its own, out of reach of the kill, and the point is that the process
writing the sheet dies."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rq import Queue
from rq.registry import StartedJobRegistry

from sheetsync.demo import write_demo
from sheetsync.schedule.executors import QUEUE_NAME, RQExecutor, build_context
from sheetsync.schedule.work import SheetJob

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start_worker(redis_url: str, marker: Path) -> subprocess.Popen:
    env = dict(os.environ, SHEETSYNC_TEST_PAUSE_MARKER=str(marker),
               PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), str(REPO)]))
    return subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", redis_url,
                             "--logging_level", "WARNING", "--worker-class", "schedule_fleet.PromptWorker", QUEUE_NAME],
                            env=env, start_new_session=True, cwd=str(REPO))


def wait_for(predicate, timeout: float = 120.0) -> None:  # a worker's start-up, on a loaded machine
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_worker_killed_mid_write_leaves_the_workbook_unchanged_and_the_job_is_retried(
        tmp_path, redis_url, redis_client):
    book = write_demo(tmp_path / "member.xlsx")
    before = digest(book)
    config = {"store": str(tmp_path / "schedules.sqlite3"), "redis_url": redis_url,
              "backend_factory": "schedule_fleet:paused_xlsx", "lock_ttl": 1}  # the dead worker's lock lapses soon
    executor = RQExecutor(config)
    executor.submit(SheetJob(str(book), 1_800_000_000.0, "s1"))
    assert executor.pump(time.time()) == 1
    marker = tmp_path / "writing"

    worker = start_worker(redis_url, marker)
    wait_for(marker.exists)
    os.killpg(worker.pid, signal.SIGKILL)  # as a machine dies
    worker.wait(timeout=10)
    assert digest(book) == before
    assert list(tmp_path.glob(".member.xlsx.*.sheetsync-tmp"))  # it did die mid-write

    queue = Queue(QUEUE_NAME, connection=redis_client)
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 10_000)  # its lease expired
    assert queue.count == 1  # abandoned, so delivered again (RQ Retry)

    (tmp_path / "writing.done").touch()
    retry = start_worker(redis_url, marker)
    assert retry.wait(timeout=120) == 0  # generous: what is asserted is that it completes
    outcomes = build_context(config).store.outcomes()
    assert [(o.status, o.slot) for o in outcomes] == [("recomputed", 1_800_000_000.0)]
    assert digest(book) != before
    from workbooks import sheet_names

    assert "runs" in sheet_names(book) and "data" in sheet_names(book)
