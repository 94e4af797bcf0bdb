"""Backend factories that RQ workers can import by name (``"schedule_fleet:open_sheet"``).

`FLEET` is a process-wide in-memory fleet (schedule_sim.py) for in-process workers (threads, RQ's
SimpleWorker). `paused_xlsx` opens a real workbook whose atomic write waits after the
temporary file is complete and before the rename, so a test can SIGKILL the worker there.
"""

from __future__ import annotations

import os
import time

from rq.worker import SimpleWorker

from schedule_sim import SimClock, SimSheets


class PromptWorker(SimpleWorker):
    """RQ's SimpleWorker, but its command listener polls every 0.1 s instead of every 60 s.

    RQ 3.0 listens for commands (shutdown, kill-horse) in a redis pubsub thread that waits up to
    60 s for a message; since redis-py 8.2 the worker's teardown joins that thread, so every
    burst worker took up to a minute to exit after its last job (6 of the suite's slowest
    minutes, and the cause of test_worker_killed's timeouts under load). Commands still arrive.
    """

    def subscribe(self):
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=0.1, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)


class NoQuota:
    def acquire(self, key: str, n: int = 1) -> float:
        return 0.0


FLEET = SimSheets(SimClock(), NoQuota())


def open_sheet(target: str, credentials: str | None):
    return FLEET.open(target, credentials)


def paused_xlsx(target: str, credentials: str | None):
    """The local backend, but its atomic write stops between the finished temporary file and
    the rename (marker file written) — the worst moment to die — unless ``<marker>.done`` exists."""
    from sheetsync.backends import open_backend

    marker = os.environ.get("SHEETSYNC_TEST_PAUSE_MARKER")
    if marker and not os.path.exists(marker + ".done"):
        real_replace = os.replace

        def replace_after_a_pause(src, dst):
            open(marker, "w").close()
            time.sleep(60)  # the test kills us here
            real_replace(src, dst)

        os.replace = replace_after_a_pause  # this worker process exists for this one test
    return open_backend(target)
