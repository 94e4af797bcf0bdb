"""Atomic writes: a temporary file beside the workbook, flushed and fsynced, then
``os.replace``; the original's permission bits are kept, and a file someone else saved
meanwhile wins (`WorkbookChanged`)."""

from __future__ import annotations

import os
import stat
import tempfile
from typing import BinaryIO, Callable

from ...errors import BackendError
from ..guard import TEMP_SUFFIX, WorkbookChanged, temp_prefix


def write_atomically(path: str, write: Callable[[BinaryIO], None], before: os.stat_result | None) -> None:
    """Write a temporary file beside `path`, fsync it, and rename it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path) + f"{os.getpid()}.", suffix=TEMP_SUFFIX,
                                   dir=folder)
    except OSError as e:
        raise BackendError(f"{path}: cannot write beside the workbook ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _copy_permissions(before, tmp)
        _refuse_if_changed(path, before)
        _replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk, a quota, a file-size limit
            raise BackendError(f"{path}: could not write the workbook ({e.strerror or e}); it was "
                               "left as it was") from None
        raise
    _fsync_folder(folder)


def _replace(tmp: str, path: str) -> None:
    try:
        os.replace(tmp, path)
    except PermissionError:
        # Windows refuses while Excel holds the file open.
        raise BackendError(f"{path}: cannot replace the workbook (is it open in Excel? close it "
                           "and run again)") from None


def _copy_permissions(before: os.stat_result | None, tmp: str) -> None:
    if before is None:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        return
    os.chmod(tmp, stat.S_IMODE(before.st_mode))
    try:
        os.chown(tmp, before.st_uid, before.st_gid)
    except OSError:
        pass  # only root may give a file away; a normal user's own file keeps its owner anyway


def _refuse_if_changed(path: str, before: os.stat_result | None) -> None:
    # Someone (Excel, another run) saved the workbook while we wrote: theirs wins, ours is dropped.
    if before is None:
        return
    now = os.stat(path)
    if ((now.st_mtime_ns, now.st_ctime_ns, now.st_size, now.st_ino, now.st_dev)
            != (before.st_mtime_ns, before.st_ctime_ns, before.st_size, before.st_ino, before.st_dev)):
        raise WorkbookChanged(path)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
