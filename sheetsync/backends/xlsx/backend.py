"""`XlsxBackend`: read a local workbook into a `Snapshot`, apply a `Plan` to it (see the
package's docstring for what is kept and how)."""

from __future__ import annotations

import contextlib
import os
import stat
import zipfile
from typing import Iterator, Sequence
from xml.etree import ElementTree as ET

from ...errors import BackendError
from ...locks import WorkbookLock
from ..base import Plan, Snapshot
from ..guard import FileIdentity, refuse_open_elsewhere, remove_abandoned_temps
from . import ooxml
from .atomic import write_atomically
from .reading import WorkbookReader
from .surgery import Surgery


class XlsxBackend:
    """A local ``.xlsx``/``.xlsm`` workbook."""

    appends = True  # reads `heads`, applies `TabPlan.append_after` (see surgery.Append)

    def __init__(self, path: str | os.PathLike, force: bool = False):
        self.path = os.fspath(path)
        self.force = force  # write even while the workbook is open in LibreOffice or Excel
        self._lock = WorkbookLock(self.path)
        self._depth = 0  # nested `writing` sessions
        self._read_as: FileIdentity | None = None  # the file as the first read of a session saw it

    @contextlib.contextmanager
    def writing(self, force: bool | None = None, *, fresh: bool = True) -> Iterator[None]:
        """Be the one writer of this workbook from its first read to its replacement.

        Every entry point's run happens inside one (`runner.run`, the scheduler), so the CLI,
        the server and the scheduler's threads and RQ workers on this machine queue for the
        same workbook; reads outside a session (trace, tests) never wait."""
        if force is not None:
            self.force = force
        if self._depth == 0:
            try:
                self._lock.acquire()
            except FileNotFoundError:
                raise BackendError(f"{self.path}: no such workbook") from None
            except OSError as e:
                raise BackendError(f"{self.path}: cannot open the workbook ({e.strerror})") from None
            if fresh:  # a new session: what an earlier read saw says nothing about this one
                self._read_as = None
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._read_as = None
                self._lock.release()

    # -- reading ------------------------------------------------------------------------------

    def read(self, tabs: Sequence[str], heads: Sequence[str] = ()) -> Snapshot:
        if self._read_as is None or not self._depth:
            self._read_as = FileIdentity.of(self.path)
        else:
            self._read_as.still(self.path)  # every read of a session sees the same file
        pkg = ooxml.Package(self.path)
        try:
            return WorkbookReader(pkg).snapshot(list(tabs), list(heads))
        except (KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise BackendError(f"{self.path}: the workbook is corrupt ({e})") from None
        except (ET.ParseError, IndexError, OverflowError, RecursionError) as e:
            raise BackendError(f"{self.path}: the workbook is corrupt ({e})") from None
        finally:
            pkg.close()

    # -- writing ------------------------------------------------------------------------------

    def apply(self, plan: Plan) -> None:
        if not plan.tabs and not plan.remove:
            return
        refuse_read_only(self.path)
        with self.writing(fresh=False):
            if not self.force:
                refuse_open_elsewhere(self.path)
            if self._read_as is not None:  # what was trained on must still be there
                now = self._read_as.still(self.path)
            else:
                now = FileIdentity.of(self.path, hashed=False)
            remove_abandoned_temps(self.path)
            pkg = ooxml.Package(self.path)
            try:
                surgery = Surgery(pkg, plan)
                write_atomically(self.path, surgery.write, now.stat)
            except (KeyError, zipfile.BadZipFile, EOFError) as e:
                raise BackendError(f"{self.path}: the workbook is corrupt ({e})") from None
            finally:
                pkg.close()
            self._read_as = None  # the file is now ours; a later apply reads it afresh

    @classmethod
    def create(cls, path: str | os.PathLike, tabs: dict[str, list[list]]) -> "XlsxBackend":
        """A brand-new workbook of plain user tabs (not owned); refuses an existing path."""
        from openpyxl import Workbook

        path = os.fspath(path)
        if not path.lower().endswith(".xlsx"):
            raise BackendError(f"{path}: sheetsync creates .xlsx workbooks; name it ….xlsx")
        if os.path.exists(path):
            raise BackendError(f"{path}: already exists; sheetsync creates only new workbooks")
        wb = Workbook()
        wb.remove(wb.active)
        for title, rows in (tabs or {"Sheet1": []}).items():
            ws = wb.create_sheet(title)
            for row in rows:
                ws.append(list(row))
        write_atomically(path, wb.save, None)
        return cls(path)


def refuse_read_only(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BackendError(f"{path}: no such workbook") from None
    # Root may replace a file without write bits; the bits are the user's intent, so check them.
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise BackendError(f"{path}: the workbook is read-only; make it writable to let sheetsync "
                           "write its tabs")
