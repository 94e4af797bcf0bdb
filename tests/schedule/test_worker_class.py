"""sheetsync's RQ worker class: it stops promptly and still hears RQ's commands.

RQ 3's own worker polls its command channel every 60 s and redis-py 8.2 waits for that poll when
the worker stops, so a worker could take a minute to exit (see sheetsync/schedule/worker.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from rq import Worker as RQWorker
from rq.command import send_shutdown_command

from sheetsync.schedule.executors import QUEUE_NAME

ARGS = ["-m", "rq.cli", "worker", "-w", "sheetsync.schedule.worker.Worker",
        "-c", "sheetsync.schedule.rq_settings", QUEUE_NAME]
EXIT_WITHIN = 30.0  # seconds, from a loaded 2-core machine's start-up; RQ's own class: up to 60 s more


def start(redis_url: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, *ARGS[:1], *ARGS[1:], "--url", redis_url, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def test_a_burst_worker_exits_promptly_after_an_empty_queue(redis_url, redis_client):
    started = time.monotonic()
    proc = start(redis_url, "--burst")
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert time.monotonic() - started < EXIT_WITHIN


def test_a_worker_hears_a_shutdown_command_and_exits_promptly(redis_url, redis_client):
    proc = start(redis_url)
    try:
        deadline = time.monotonic() + 60
        while not RQWorker.all(connection=redis_client):  # registered once its loop has started
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.1)
        (worker,) = RQWorker.all(connection=redis_client)
        asked = time.monotonic()
        send_shutdown_command(redis_client, worker.name)
        proc.wait(timeout=120)
        assert time.monotonic() - asked < EXIT_WITHIN / 3
    finally:
        if proc.poll() is None:
            proc.kill()
