"""Backend factories that RQ workers can import by name (``"schedule_fleet:open_sheet"``).

`FLEET` is a process-wide in-memory fleet (schedule_sim.py) for in-process workers (threads, RQ's
SimpleWorker). `paused_xlsx` opens a real workbook whose atomic write waits after the
temporary file is complete and before the rename, so a test can SIGKILL the worker there.
"""

from __future__ import annotations

import os
import time

from schedule_sim import SimClock, SimSheets

# the in-process worker the tests start (by name for rq's --worker-class): the product's, prompt to stop
from sheetsync.schedule.worker import SimpleWorker as PromptWorker  # noqa: E402,F401


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
