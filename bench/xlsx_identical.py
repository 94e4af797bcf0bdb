"""Check: the workbooks this tree writes are byte for byte the ones another commit writes.

Not a test (it needs a second checkout of the code); run
`python bench/xlsx_identical.py [REV]` (default: main). REV's `sheetsync/` is extracted with
`git archive` into a temporary folder; the demo workbook is written once (the same input for
both), then each side, in a fresh process, runs it twice in values mode and a copy of it once
in formula mode, with the run log's clock fixed. Every zip member's uncompressed bytes are compared; exit status 1 names
the members that differ.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in each side's own process, with PYTHONPATH pointing at that side's code.
SIDE = r"""
import shutil, sys
import sheetsync.layout.runs as runs
from datetime import datetime

class FixedClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)

runs.datetime = FixedClock  # the run log's "when" column
from sheetsync.runner import run

demo, out = sys.argv[1:]
shutil.copy(demo, out + "/demo.xlsx")
shutil.copy(demo, out + "/formulas.xlsx")
run(out + "/demo.xlsx")
run(out + "/demo.xlsx")  # a continued run: histories read back and written again
run(out + "/formulas.xlsx", mode="formulas", action="reset")
"""


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def write_side(code: Path, demo: Path, out: Path) -> None:
    out.mkdir()
    subprocess.run([sys.executable, "-c", SIDE, str(demo), str(out)], check=True,
                   env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin",
                        "SHEETSYNC_CACHE_DIR": str(out.parent / "kernels")})


def main(rev: str = "main") -> int:
    with tempfile.TemporaryDirectory(prefix="sheetsync-identical-") as tmp:
        tmp = Path(tmp)
        theirs = tmp / "code"
        theirs.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "sheetsync"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(theirs)], input=archive, check=True)
        demo = tmp / "input.xlsx"  # one input for both: its docProps hold the time it was made
        subprocess.run([sys.executable, "-c", f"from sheetsync.demo import write_demo; write_demo({str(demo)!r})"],
                       check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        write_side(theirs, demo, tmp / "before")
        write_side(ROOT, demo, tmp / "after")
        differ = 0
        for book in ("demo.xlsx", "formulas.xlsx"):
            before, after = members(tmp / "before" / book), members(tmp / "after" / book)
            names = sorted(set(before) | set(after))
            bad = [n for n in names if before.get(n) != after.get(n)]
            size = sum(len(v) for v in after.values())
            print(f"{book}: {len(names)} members, {size:,} bytes uncompressed, "
                  f"{'identical' if not bad else 'DIFFERENT: ' + ', '.join(bad)} (vs {rev})")
            differ += len(bad)
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
