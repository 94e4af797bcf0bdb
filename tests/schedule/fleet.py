"""Backend factories that RQ workers can import by name (``"fleet:open_sheet"``).

`FLEET` is a process-wide in-memory fleet (sim.py) for in-process workers (threads, RQ's
SimpleWorker). `paused_xlsx` opens a real workbook whose write waits: it writes a marker file
once the run has computed everything and is about to write, then sleeps, so a test can
SIGKILL the worker at exactly that moment.
"""

from __future__ import annotations

import os
import time

from sim import SimClock, SimSheets


class NoQuota:
    def acquire(self, key: str, n: int = 1) -> float:
        return 0.0


FLEET = SimSheets(SimClock(), NoQuota())


def open_sheet(target: str, credentials: str | None):
    return FLEET.open(target, credentials)


def paused_xlsx(target: str, credentials: str | None):
    from sheetsync.backends import open_backend

    backend = open_backend(target)
    marker = os.environ.get("SHEETSYNC_TEST_PAUSE_MARKER")
    if marker and not os.path.exists(marker + ".done"):
        real_apply = backend.apply

        def apply(plan):
            open(marker, "w").close()  # the run is computed; the write has not started
            time.sleep(60)  # the test kills us here
            real_apply(plan)

        backend.apply = apply
    return backend
