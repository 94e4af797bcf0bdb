"""What keeps a local write from losing anyone's work: the file's identity as it was read, the
lock files of an office suite that has it open, and temp files a killed writer left behind.

- `FileIdentity`: inode, size, times and a SHA-256 of the content. Taken at the first read of
  a run and compared before the new file replaces the old one, so a workbook saved by someone
  else while sheetsync trained is never replaced ("the workbook changed since it was read").
- `refuse_open_elsewhere`: LibreOffice marks an open ``book.xlsx`` with ``.~lock.book.xlsx#``,
  Excel with ``~$book.xlsx``; the learner's next save there would throw sheetsync's tabs away,
  so a write is refused (unless forced) and the message names the lock file.
- temp files are named ``.book.xlsx.<pid>.<random>.sheetsync-tmp``; one whose process is gone
  was abandoned (SIGKILL, power cut) and is removed by the next write, under the workbook lock.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field

from ..errors import BackendError

TEMP_SUFFIX = ".sheetsync-tmp"


class WorkbookChanged(BackendError):
    """The file is not the one this run read: someone saved it meanwhile."""

    status = 409

    def __init__(self, path: str):
        super().__init__(f"{path}: the workbook changed since it was read; run again")


class WorkbookOpenElsewhere(BackendError):
    """LibreOffice or Excel has the workbook open: its next save would drop sheetsync's tabs."""

    status = 409


FRESH_NS = 1_000_000_000  # a file changed this recently: its times may not tell a next write apart


@dataclass(frozen=True)
class FileIdentity:
    """The file a run read: its stat (device, inode, size, modified and changed times) and,
    when it changed too recently for the times to tell a next write apart (timestamps are
    coarse, a few ms), the SHA-256 of its bytes.

    Any write changes the inode's change time (no program can set it back) and an office suite's
    save is a new inode, so an unchanged stat of a file that had been still for a second proves
    the bytes are the ones read, at no cost; a fresh file is hashed (27 ms for 23 MB)."""

    key: tuple[int, int, int, int, int]
    sha256: str | None
    stat: os.stat_result = field(compare=False, repr=False)

    @classmethod
    def of(cls, path: str, hashed: bool | None = None) -> "FileIdentity":
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if hashed is None:
                    hashed = abs(time.time_ns() - st.st_ctime_ns) < FRESH_NS
                digest = hashlib.file_digest(f, "sha256").hexdigest() if hashed else None
        except FileNotFoundError:
            raise BackendError(f"{path}: no such workbook") from None
        except IsADirectoryError:
            raise BackendError(f"{path}: is a folder, not a workbook") from None
        except PermissionError:
            raise BackendError(f"{path}: permission denied; sheetsync cannot read the workbook") from None
        return cls((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), digest, st)

    def still(self, path: str) -> "FileIdentity":
        """The file at `path` now, if it is the one this identity saw; else `WorkbookChanged`."""
        now = FileIdentity.of(path, hashed=False)
        if now.key != self.key:
            raise WorkbookChanged(path)  # written, replaced, or touched since: refuse to guess
        if self.sha256 is not None:
            now = FileIdentity.of(path, hashed=True)
            if now.key != self.key or now.sha256 != self.sha256:
                raise WorkbookChanged(path)
        return now


def office_lock_files(path: str) -> list[str]:
    """The names an office suite gives the lock file of `path`, in its folder."""
    name = os.path.basename(path)
    names = [f".~lock.{name}#", f"~${name}"]
    if len(name) > 2:
        names += [f"~${name[1:]}", f"~${name[2:]}"]  # Excel shortens long names
    return names


def refuse_open_elsewhere(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    for lock in office_lock_files(path):
        if os.path.lexists(os.path.join(folder, lock)):
            suite = "LibreOffice" if lock.startswith(".~lock.") else "Excel"
            raise WorkbookOpenElsewhere(
                f"{path}: the workbook is open in {suite} (lock file {lock}); its next save would "
                "throw sheetsync's tabs away. Close it and run again, or pass --force to write anyway")


def temp_prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def remove_abandoned_temps(path: str) -> list[str]:
    """Remove temp files of `path` whose writer's process is gone; call under the workbook lock."""
    folder = os.path.dirname(os.path.abspath(path))
    prefix = temp_prefix(path)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue  # not ours to judge: a name without a pid, or a writer still running
        try:
            os.unlink(os.path.join(folder, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
