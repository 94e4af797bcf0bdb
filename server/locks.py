"""One writer per spreadsheet: runs of the same spreadsheet queue, different ones run in parallel.

Two layers, taken in this order: a `threading.Lock` per spreadsheet key for the threads of one
process, then an exclusive `fcntl.flock` on a file named after the key in the lock folder (next
to the run store) for the worker processes of one machine (gunicorn). The kernel drops a
process's flock when the process dies, so a killed worker never leaves a spreadsheet locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from contextlib import contextmanager
from typing import Iterator


class SpreadsheetLocks:
    def __init__(self, folder: str):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}  # key -> (lock, users)

    def path_for(self, key: str) -> str:
        return os.path.join(self.folder, hashlib.sha256(key.encode()).hexdigest()[:40] + ".lock")

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Wait for, then hold, the spreadsheet `key` (across threads and processes)."""
        lock = self._enter(key)
        try:
            with lock:
                fd = os.open(self.path_for(key), os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    yield
                finally:
                    os.close(fd)  # closing releases the flock
        finally:
            self._leave(key)

    def _enter(self, key: str) -> threading.Lock:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            lock = lock or threading.Lock()
            self._locks[key] = (lock, users + 1)
            return lock

    def _leave(self, key: str) -> None:
        with self._guard:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
