"""Worksheet XML that would come out as it is: copied from the tab's previous version, not rendered.

A server or scheduler runs the same sheet again and again, and a Reset of the same experiments
writes most tabs exactly as they were. A tab's worksheet XML is a function of its plan, the
style indices its cells resolve to, the relationship ids of its side parts, and the code that
renders it; `fingerprint` hashes all of these. The part is written with a zip comment naming
its fingerprint and its own CRC-32 and size (`mark`); when a replaced tab's new fingerprint
matches the old part's mark, and the part still has that CRC and size (nothing rewrote it
meanwhile), its compressed bytes are copied under the new part's name instead of rendering and
deflating it again — the same bytes (tests/backends/test_xlsx_unchanged.py).

Excel and LibreOffice write no zip comments, so a workbook saved by them is rendered afresh.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import zipfile
from pathlib import Path

from .render import TabRenderer

MARK = b"sheetsync-xml "
_code: bytes | None = None


def _code_version() -> bytes:
    """What renders the XML, as it is in this process: the sources of this package and of the
    modules it formats cells with, and the versions of the libraries that format numbers."""
    global _code
    if _code is None:
        import numpy
        import orjson

        here = Path(__file__).resolve().parent
        sources = sorted(here.glob("*.py")) + [here.parent / "base.py", here.parents[1] / "a1.py"]
        digest = hashlib.blake2b(digest_size=16)
        for source in sources:
            digest.update(source.name.encode() + b"\0" + source.read_bytes())
        digest.update(f"{numpy.__version__} {orjson.__version__} {sys.version_info[:2]}".encode())
        _code = digest.digest()
    return _code


def fingerprint(tab: TabRenderer) -> bytes | None:
    """What decides `tab`'s worksheet XML, hashed; None for a log (appended to in place) or a
    plan that does not pickle."""
    if tab.plan.log:
        return None
    try:
        payload = pickle.dumps((tab.plan, [[(c.style, c.fast) for c in cols] for cols in tab.columns],
                                sorted((cell, o.style) for cell, o in tab.overlays.items()),
                                [tab.header_styles[id(t)] for t in tab.plan.tables],
                                tab.drawing_rid, tab.legacy_rid, tab.notes), protocol=5)
    except Exception:  # noqa: BLE001 - an unpicklable value: the tab is simply rendered
        return None
    return hashlib.blake2b(_code_version() + payload, digest_size=16).hexdigest().encode()


def mark(key: bytes, info: zipfile.ZipInfo) -> bytes:
    """The zip comment of a part written with fingerprint `key`: the key, the part's CRC-32 and size."""
    return MARK + key + b" %08x %d" % (info.CRC, info.file_size)


def reusable(info: zipfile.ZipInfo, key: bytes | None) -> bool:
    """The part `info` holds exactly the XML a tab of fingerprint `key` renders to."""
    return key is not None and info.compress_type == zipfile.ZIP_DEFLATED and info.comment == mark(key, info)
