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

import errno
import functools
import hashlib
import os
from contextlib import contextmanager
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock; the content check still refuses lost updates
    fcntl = None  # type: ignore[assignment]


def default_lock_folder() -> str:
    """The user's lock folder (beside the server's default run store): where every entry point
    on this machine meets for a Google spreadsheet."""
    from .schedule.config import state_path

    return state_path("locks")


NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}  # some network and FUSE file systems


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


class WorkbookLock:
    """An exclusive ``flock`` on a local workbook itself, held from its read to its replacement.

    Every writer of a local workbook takes it — the CLI, the server's workers, the scheduler's
    threads and RQ workers on the machine — because every one of them goes through
    `XlsxBackend`, so no lock folder has to be agreed on. The lock sits on the file's inode;
    a writer replaces the file by renaming a new inode over the path, so a waiter that wakes up
    holding the old inode sees the path now names another file and locks that one instead.
    Nothing is left beside the workbook.
    """

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> None:
        if self.fd is not None or fcntl is None:
            return
        told = False
        while True:
            fd = _open_for_lock(self.path)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not told:  # one line on stderr in the CLI (logging's last resort), a log line in servers
                        import logging  # here: a run that waits for nothing does without it (~2 ms with its imports)

                        logging.getLogger("sheetsync").warning(
                            "%s: waiting for another run of this workbook to finish", os.path.basename(self.path))
                        told = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                mine, now = os.fstat(fd), os.stat(self.path)
            except OSError as e:
                if e.errno not in NO_LOCKS:
                    os.close(fd)
                    raise
                mine = now = None
            except BaseException:
                os.close(fd)
                raise
            if mine is None:  # the file system has no locks: the content check alone guards
                os.close(fd)
                return
            if (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino):
                self.fd = fd
                return
            os.close(fd)  # the previous writer replaced the file: lock the new one

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def __del__(self):  # a backend dropped between read and write frees the workbook
        self.release()


def _open_for_lock(path: str) -> int:
    # NFS turns flock into a POSIX write lock, which needs a descriptor open for writing.
    try:
        return os.open(path, os.O_RDWR)
    except (PermissionError, IsADirectoryError):
        return os.open(path, os.O_RDONLY)


@contextmanager
def writing(backend, force: bool = False) -> Iterator[None]:
    """`backend`'s one-writer session (see `XlsxBackend.writing`); a backend without one (a
    test double) runs as it is."""
    session = getattr(backend, "writing", None)
    if session is None:
        yield
        return
    with session(force=force):
        yield


def one_writer(run):
    """`run(target, ..., backend=None, credentials=None, force=False)` inside the backend's
    one-writer session, from its first read to its write; opens the backend when not given."""

    @functools.wraps(run)
    def in_session(target, *args, backend=None, credentials=None, force: bool = False, **kwargs):
        if backend is None:
            from .backends import open_backend

            backend = open_backend(target, credentials)
        with writing(backend, force):
            return run(target, *args, backend=backend, credentials=credentials, force=force, **kwargs)

    return in_session
