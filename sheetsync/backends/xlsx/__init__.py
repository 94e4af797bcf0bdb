"""The local workbook backend: read an ``.xlsx``/``.xlsm`` file, apply a `Plan` to it.

Nothing of the user's is lost, because the user's workbook is never loaded and re-saved: an
openpyxl round trip drops shapes and text boxes, pictures (without Pillow), custom XML, the VBA
project (without ``keep_vba``), the titles in ``docProps/app.xml``, and whatever else it does not
model (form controls, slicers, pivot caches). `apply` performs package surgery instead (see
`ooxml`): every part of the file is copied as it is (its compressed bytes, not even re-deflated),
except

- the parts of owned tabs being replaced or removed (worksheet, its rels, drawing, charts,
  comments, VML) — removed only when nothing that stays still refers to them;
- ``[Content_Types].xml``, ``xl/workbook.xml``, ``xl/_rels/workbook.xml.rels``,
  ``xl/styles.xml`` (appended to, never renumbered) and ``docProps/app.xml`` (titles) — small
  textual edits;
- ``xl/calcChain.xml`` — dropped when it lists cells of a removed sheet (Excel rebuilds it);

and the owned tabs' parts are generated here — except a log appended to (the run log,
`TabPlan.append_after`), whose part keeps its rows' compressed bytes and gets the new rows at its
end (`append`: the part is written in deflate segments so that costs the same at any length).
Worksheet XML is streamed (a steps table has millions of cells): inline strings, floats as the
shortest text that reads back bit for bit (orjson's notation, e.g. ``1e16`` and ``0.00001``; ``repr`` for the odd cell), NaN and
infinities as blank cells, Excel's ``_xHHHH_`` escapes for characters XML cannot hold; numeric
tables a chunk of rows per format call (`RowsRenderer`), deflated in blocks by worker threads
while the next rows render (`write_streamed`). Every cell keeps its ``r`` attribute. Comments (with their VML) and native charts come from
openpyxl's serialisers, fed directly. Tabs go where `order.arrange` says: a replaced tab keeps its place.

Ownership mark: every tab sheetsync creates carries a hidden, sheet-local defined name
``_sheetsync_owned`` (``localSheetId`` = the tab, value ``'<tab>'!$A$1``). Excel and LibreOffice
keep sheet-local names through a save (tested for LibreOffice), move them with the sheet when it
is renamed or moved, and delete them with the sheet, so the mark follows the tab rather than its
title: a user's tab that merely has the same name is never taken for ours. (Copying an owned tab
in Excel copies the mark too; the copy has another name, so no plan writes it.)

Writes are atomic: a temporary file beside the workbook, flushed and fsynced, then
``os.replace``; the original's permission bits are kept. Refused with a clear error before
anything is written: a read-only file, a user tab in the plan's way (`OwnershipError`), an
encrypted or Strict Open XML or corrupt file, a workbook whose structure is protected, and a file
that someone else saved while we were writing (theirs wins).

Reading parses the sheet XML in one streaming pass (openpyxl gives either a formula cell's cached
value or its formula per pass, never both, and reads a formula without a cached value as empty),
with openpyxl's helpers for date formats and serial dates. The pass is a text scan
(`SheetScan`) for the cell shapes real files hold, ElementTree for any other cell and for any
sheet the scan cannot vouch for; both give the same values (tests/backends/test_xlsx_fast_paths.py).

The rooms, one reason to change each:

- `backend`: `XlsxBackend`, the `Backend` contract (read a `Snapshot`, apply a `Plan`);
- `reading`: `WorkbookReader`, cells through ElementTree; `scan`: `SheetScan`, the fast path;
  `rowscan`: long stretches of number rows through a few lines of C;
- `render`: an owned tab's worksheet XML and side parts; `chart_xml`: its charts;
- `surgery`: what one apply changes in the package, `partnames` the names of new parts,
  `owned` the ownership mark, `ooxml` the package's parts read and edited as text;
- `append`: rows added to an owned log's part without rewriting it;
- `zipstream`: zip members copied and deflated in blocks; `atomic`: the atomic file replace;
- `celltext`: cell text both ways (Excel's escapes, numbers).
"""

from .backend import XlsxBackend
from .reading import WorkbookReader
from .scan import SheetScan

__all__ = ["SheetScan", "WorkbookReader", "XlsxBackend"]
