"""One writer per spreadsheet: runs of the same spreadsheet queue, different ones run in parallel.

Each holder opens its own descriptor of a lock file named after the spreadsheet key (in the
lock folder next to the run store) and takes an exclusive `fcntl.flock` on it. flock locks
belong to the open file description, so two descriptors conflict whether they are in two
threads of one process or in two gunicorn workers: one mechanism covers both. Every waiter
waits in the kernel on equal terms (no process is favoured because its own next thread is
already running), and the kernel drops a process's locks when it dies, so a killed worker never
leaves a spreadsheet locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from contextlib import contextmanager
from typing import Iterator


class SpreadsheetLocks:
    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def path_for(self, key: str) -> str:
        return os.path.join(self.folder, hashlib.sha256(key.encode()).hexdigest()[:40] + ".lock")

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Wait for, then hold, the spreadsheet `key` (across threads and processes)."""
        fd = os.open(self.path_for(key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock
