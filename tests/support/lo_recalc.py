"""Recalculate a workbook in LibreOffice and print every cell's value as a full double.

Run with Debian's python3 (it has LibreOffice's `uno` bridge), not the project's Python:

    /usr/bin/python3 tests/support/lo_recalc.py book.xlsx "basic steps" [more tabs...]

Prints JSON {tab: [[value or null, ...], ...]} with floats as repr strings, so no digit is lost
(LibreOffice's own --convert-to writes 15 significant digits; see
docs/spreadsheet-numbers.md, "Stored versus shown"). A private profile and port keep runs independent.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.sheet.FormulaResult import ERROR as FORMULA_ERROR


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(path, tabs):
    port = free_port()
    profile = tempfile.mkdtemp(prefix="lo-profile-")
    office = subprocess.Popen(
        ["soffice", "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
         f"-env:UserInstallation=file://{profile}",
         f"--accept=socket,host=127.0.0.1,port={port};urp;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        local = uno.getComponentContext()
        resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
        deadline = time.time() + 60
        while True:
            try:
                ctx = resolver.resolve(f"uno:socket,host=127.0.0.1,port={port};urp;StarOffice.ComponentContext")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
        doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(os.path.abspath(path)), "_blank", 0,
                                           (prop("Hidden", True),))
        doc.calculateAll()
        out = {}
        for tab in tabs:
            sheet = doc.Sheets.getByName(tab)
            cursor = sheet.createCursor()
            cursor.gotoEndOfUsedArea(False)
            rows, cols = cursor.RangeAddress.EndRow + 1, cursor.RangeAddress.EndColumn + 1
            data = sheet.getCellRangeByPosition(0, 0, cols - 1, rows - 1).getDataArray()
            # Only formula cells can hold an error: ask for those whose result is one (a single
            # call) instead of asking every cell (one bridge round trip each, minutes a book).
            found = {}
            for address in sheet.queryFormulaCells(FORMULA_ERROR).getRangeAddresses():
                for r in range(address.StartRow, address.EndRow + 1):
                    for c in range(address.StartColumn, address.EndColumn + 1):
                        if code := sheet.getCellByPosition(c, r).getError():
                            found[r, c] = code
            errors = {f"{r},{c}": found[r, c] for r, c in sorted(found)}
            out[tab] = {"values": [[repr(v) if isinstance(v, float) else v for v in row] for row in data],
                        "errors": errors}
        doc.close(True)
        print(json.dumps(out))
    finally:
        try:
            desktop.terminate()
        except Exception:
            pass
        office.terminate()
        try:
            office.wait(timeout=20)
        except subprocess.TimeoutExpired:
            office.kill()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
