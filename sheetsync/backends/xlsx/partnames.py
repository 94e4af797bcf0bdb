"""Names of new parts: fresh ones that clash with nothing that stays in the package, and VML
shape blocks no kept part uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from ... import budgets
from . import ooxml


@dataclass
class NewPart:
    """A part to add to the package: its name, content type and content."""

    name: str
    content_type: str | None  # None for .rels (covered by the Default entry)
    data: Callable[[], Iterable[str]] | bytes | str


class PartNames:
    """Fresh part names that clash with nothing that stays in the package."""

    def __init__(self, pkg: ooxml.Package, dropped: set[str]):
        self.taken = {i.filename.lower() for i in pkg.infos} - {d.lower() for d in dropped}
        self._blocks = _vml_blocks_in_use(pkg, dropped)

    def shape_blocks(self, shapes: int) -> list[int]:
        """Fresh VML shape-id blocks (o:idmap, 1024 ids each) for `shapes` comment shapes."""
        first = max(self._blocks, default=0) + 1
        blocks = list(range(first, first + shapes // 1000 + 1))
        self._blocks.update(blocks)
        return blocks

    def take(self, first: str, pattern: str) -> str:
        n = 1
        name = first
        while name.lower() in self.taken:
            name = pattern.format(n)
            n += 1
        self.taken.add(name.lower())
        return name

    def numbered(self, pattern: str) -> tuple[str, int]:
        n = 1
        while pattern.format(n).lower() in self.taken:
            n += 1
        self.taken.add(pattern.format(n).lower())
        return pattern.format(n), n


def _vml_blocks_in_use(pkg: ooxml.Package, dropped: set[str]) -> set[int]:
    # Comment shapes of all sheets share one id space; Excel repairs a file whose blocks clash.
    blocks: set[int] = set()
    for info in pkg.infos:
        if info.filename.lower().endswith(".vml") and info.filename not in dropped:
            for data in _idmaps(pkg, info.filename):
                blocks.update(int(b) for b in data.replace(b" ", b"").split(b",") if b)
    return blocks


_IDMAP = re.compile(rb"<(?:\w+:)?idmap\b[^>]*\bdata\s*=\s*[\"']([\d,\s]+)")
_VML_SHAPE = re.compile(rb"<(?:\w+:)?shape[\s>/]")


def _idmaps(pkg: ooxml.Package, part: str) -> set[bytes]:
    """The idmap data of a VML part. The idmap sits in the shape layout, before the shapes: the
    part (which can be big) is inflated only up to its first shape, a chunk at a time."""
    found: set[bytes] = set()
    tail, read = b"", 0
    with pkg.open(part, limit=1 << 62) as f:  # only the head is read: counted below instead
        while chunk := f.read(1 << 16):
            read += len(chunk)
            text = tail + chunk
            shape = _VML_SHAPE.search(text)
            text = text[:shape.start()] if shape else text
            found.update(m.group(1) for m in _IDMAP.finditer(text) if shape or m.end() < len(text))
            if shape:
                return found
            if read > budgets.PART_BYTES:
                raise pkg.too_big(part, read, budgets.PART_BYTES)
            tail = text[-4096:]  # an idmap split between two chunks is seen whole next time
    found.update(m.group(1) for m in _IDMAP.finditer(tail))
    return found
