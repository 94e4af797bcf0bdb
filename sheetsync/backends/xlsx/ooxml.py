"""OOXML package surgery: change an ``.xlsx``/``.xlsm`` zip without re-saving what is not ours.

A workbook is a zip of XML parts tied together by relationship (``.rels``) files and listed in
``[Content_Types].xml``. openpyxl (and any loader) re-creates a workbook from the parts it models
and silently drops the rest (shapes, form controls, slicers, pivot caches, custom XML, ...). So the
local backend never re-saves a loaded workbook: every part is copied as it is, and only these
package-level parts are edited:

- ``[Content_Types].xml``: ``Override`` entries of parts removed and added;
- ``xl/workbook.xml``: the ``<sheets>`` list, the ``localSheetId`` of ``<definedName>``s (they
  are sheet *positions*), ``activeTab``/``firstSheet`` of ``<workbookView>``s, and
  ``fullCalcOnLoad`` when formulas are written without cached values;
- ``xl/_rels/workbook.xml.rels``: relationships of sheets removed and added (and ``calcChain``);
- ``xl/styles.xml``: number formats, fonts, fills and cell formats APPENDED, never renumbered;
- ``docProps/app.xml``: the list of sheet titles, when it has the usual shape.

The edits are textual (regular expressions over the original text, with ElementTree used only
to *read*): ElementTree would rewrite namespace prefixes on output, which breaks
``mc:Ignorable`` declarations and makes Excel report the file as corrupt.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass
from urllib.parse import unquote
from xml.etree import ElementTree as ET

from ... import budgets
from ...errors import BackendError

try:  # Intel's ISA-L inflate: the same bytes as zlib's, about twice as fast
    from isal import isal_zlib as inflate_lib
except ImportError:  # a platform without isal's wheels
    inflate_lib = zlib
from .celltext import escape, quoteattr

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_STRICT = "http://purl.oclc.org/ooxml/spreadsheetml/main"
NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
NS_CT = "http://schemas.openxmlformats.org/package/2006/content-types"

# ElementTree's names of the main namespace's elements
MAIN = "{%s}" % NS_MAIN
C_TAG, V_TAG, F_TAG, ROW_TAG = MAIN + "c", MAIN + "v", MAIN + "f", MAIN + "row"

REL_OFFICE_DOCUMENT = NS_R + "/officeDocument"
REL_WORKSHEET = NS_R + "/worksheet"
REL_STYLES = NS_R + "/styles"
REL_SHARED_STRINGS = NS_R + "/sharedStrings"
REL_CALC_CHAIN = NS_R + "/calcChain"
REL_DRAWING = NS_R + "/drawing"
REL_COMMENTS = NS_R + "/comments"
REL_VML = NS_R + "/vmlDrawing"

CT_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
CT_STYLES = "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"
CT_DRAWING = "application/vnd.openxmlformats-officedocument.drawing+xml"
CT_CHART = "application/vnd.openxmlformats-officedocument.drawingml.chart+xml"
CT_COMMENTS = "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml"
CT_VML = "application/vnd.openxmlformats-officedocument.vmlDrawing"
CT_RELS = "application/vnd.openxmlformats-package.relationships+xml"

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted OOXML is wrapped in an OLE file

# ---------------------------------------------------------------------------------------------
# Reading the package


@dataclass
class Rel:
    """One relationship of a .rels part."""

    id: str
    type: str
    target: str  # part name without the leading '/', or the raw target when external
    external: bool = False


def rels_part(part: str) -> str:
    """'xl/workbook.xml' -> 'xl/_rels/workbook.xml.rels' ('' is the package root)."""
    folder, base = posixpath.split(part)
    return posixpath.join(folder, "_rels", base + ".rels")


def resolve_target(source: str, target: str) -> str:
    target = unquote(target)
    if target.startswith("/"):
        return target[1:]
    return posixpath.normpath(posixpath.join(posixpath.dirname(source), target))


def relative_target(source: str, part: str) -> str:
    return posixpath.relpath(part, posixpath.dirname(source) or ".")


class Package:
    """Read access to the parts of a workbook zip, by case-insensitive part name (as OPC says).

    Every part is inflated through `open`, which bounds it: the zip directory's size is checked
    before inflating (`budgets.PART_BYTES`, or `WHOLE_PART_BYTES` for a part read whole) and the
    bytes actually inflated are counted while reading, per part and for the whole package
    (`budgets.INFLATED_BYTES`). A corrupt deflate stream, a bad CRC or a truncated member is
    refused as corrupt, naming the part.
    """

    def __init__(self, path: str):
        self.path = path
        self.zip = open_zip(path)
        self.infos = self.zip.infolist()
        self._names: dict[str, str] = {}
        for info in self.infos:
            low = info.filename.lower()
            if low in self._names:  # which copy counts would be up to the reader: refuse
                self.zip.close()
                raise BackendError(f"{path}: the workbook is corrupt (the zip holds {info.filename} "
                                   "twice)")
            self._names[low] = info.filename
        self._rels: dict[str, list[Rel]] = {}
        self.inflated = 0  # bytes inflated so far, all parts together

    def close(self) -> None:
        self.zip.close()

    def has(self, part: str) -> bool:
        return part.lower() in self._names

    def name(self, part: str) -> str:
        return self._names[part.lower()]

    def read(self, part: str, limit: int = budgets.WHOLE_PART_BYTES) -> bytes:
        with self.open(part, limit) as f:
            return f.read()

    def text(self, part: str) -> str:
        data = self.read(part)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.corrupt(part, f"not UTF-8: {e.reason} at byte {e.start}") from None

    def open(self, part: str, limit: int = budgets.PART_BYTES) -> "BoundedPart":
        name = self.name(part)
        info = self.zip.getinfo(name)
        if info.file_size > limit:
            raise self.too_big(name, info.file_size, limit)
        try:
            raw = self.zip.open(info)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as e:
            raise self.corrupt(name, str(e)) from None
        if info.compress_type == zipfile.ZIP_DEFLATED:  # zipfile checks the CRC and sizes as ever
            raw._decompressor = inflate_lib.decompressobj(-15)
        return BoundedPart(self, name, raw, limit)

    def corrupt(self, part: str, why: str) -> BackendError:
        return BackendError(f"{self.path}: the workbook is corrupt ({part}: {why})")

    def too_big(self, part: str, size: int, limit: int) -> BackendError:
        return BackendError(f"{self.path}: {part} inflates to {_size(size)}, over sheetsync's limit "
                            f"of {_size(limit)} for one part; the workbook is corrupt or too big")


    def rels(self, part: str) -> list[Rel]:
        """Relationships of `part` ('' for the package root), targets resolved to part names."""
        if part not in self._rels:
            self._rels[part] = self._read_rels(part)
        return self._rels[part]

    def _read_rels(self, part: str) -> list[Rel]:
        path = "_rels/.rels" if part == "" else rels_part(part)
        if not self.has(path):
            return []
        rels = []
        for el in parse_xml(self.read(path), self.path, path).iter(f"{{{NS_PKG_RELS}}}Relationship"):
            external = el.get("TargetMode") == "External"
            target = el.get("Target", "")
            rels.append(Rel(el.get("Id", ""), el.get("Type", ""),
                            target if external else resolve_target(part, target), external))
        return rels

    def workbook_part(self) -> str:
        for rel in self.rels(""):
            if rel.type.endswith("/officeDocument") and self.has(rel.target):
                return rel.target
        raise BackendError(f"{self.path}: not an Excel workbook (no workbook part; .xlsb and "
                           "other formats are not supported, save it as .xlsx)")


def _size(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


class BoundedPart:
    """A part being inflated: counts its bytes, and turns zip and zlib failures into
    `BackendError`s naming the part."""

    def __init__(self, pkg: "Package", name: str, raw, limit: int):
        self.pkg, self.name, self.raw, self.limit = pkg, name, raw, limit
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.raw.read(n)
        except (zipfile.BadZipFile, zlib.error, inflate_lib.error, EOFError, OSError) as e:
            raise self.pkg.corrupt(self.name, f"the compressed data is damaged: {e}") from None
        self.count += len(data)
        self.pkg.inflated += len(data)
        if self.count > self.limit:  # the directory said less: the file lies about its sizes
            raise self.pkg.too_big(self.name, self.count, self.limit)
        if self.pkg.inflated > budgets.INFLATED_BYTES:
            raise BackendError(f"{self.pkg.path}: reading it inflates more than "
                               f"{_size(budgets.INFLATED_BYTES)} of XML; the workbook is corrupt or too big")
        return data

    def close(self) -> None:
        self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_zip(path: str) -> zipfile.ZipFile:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if head == OLE_MAGIC:
            raise BackendError(f"{path}: the workbook is password-protected (encrypted) or in the "
                               "old .xls format; remove the password or save it as .xlsx")
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise BackendError(f"{path}: no such workbook") from None
    except IsADirectoryError:
        raise BackendError(f"{path}: is a directory, not a workbook") from None
    except PermissionError:
        raise BackendError(f"{path}: permission denied") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as e:
        raise BackendError(f"{path}: not a valid .xlsx workbook (the file is not a readable zip "
                           f"package: {e})") from None


def parse_xml(data: bytes, path: str, part: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise BackendError(f"{path}: the workbook is corrupt ({part}: {e})") from None


def all_rels_graph(pkg: Package) -> dict[str, list[str]]:
    """part -> internal parts it references, for every part that has a .rels file."""
    graph: dict[str, list[str]] = {}
    for info in pkg.infos:
        name = info.filename
        if not name.endswith(".rels"):
            continue
        folder, base = posixpath.split(name)
        source = posixpath.join(posixpath.dirname(folder), base[: -len(".rels")])
        source = "" if name == "_rels/.rels" else source
        graph[source] = [r.target for r in pkg.rels(source) if not r.external]
    return graph


def unreachable(candidates: set[str], graph: dict[str, list[str]], cut: set[str]) -> set[str]:
    """The candidates that no longer hang off the package root once the `cut` parts are gone.

    Parts are compared lower-cased. A part shared with something that stays (an image used by a
    user drawing too, say) is reachable and therefore kept.
    """
    seen: set[str] = set()
    stack = [""]
    while stack:
        part = stack.pop()
        for target in graph.get(part, []):
            low = target.lower()
            if low in seen or low in cut:
                continue
            seen.add(low)
            stack.append(target)
    return {c for c in candidates if c.lower() not in seen}


def closure(roots: list[str], graph: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    stack = list(roots)
    while stack:
        part = stack.pop()
        if part in found:
            continue
        found.add(part)
        stack.extend(graph.get(part, []))
    return found


# ---------------------------------------------------------------------------------------------
# Small text-editing helpers


def element_pattern(tag: str) -> re.Pattern:
    """An element with any namespace prefix, self-closing or with content (non-nested)."""
    return re.compile(rf"<(?:\w+:)?{tag}\b[^>]*?(?:/>|>.*?</(?:\w+:)?{tag}\s*>)", re.S)


def container_span(text: str, tag: str) -> tuple[int, int, str] | None:
    """(start, end, prefix) of the whole `<tag>...</tag>` (or `<tag/>`) element, or None."""
    m = re.search(rf"<((?:\w+:)?){tag}\b[^>]*?(?:/>|>.*?</\1{tag}\s*>)", text, re.S)
    return (m.start(), m.end(), m.group(1)) if m else None


def set_attr(tag_text: str, name: str, value: str | None) -> str:
    """Set (or remove, with None) attribute `name` in the start tag `tag_text` begins with."""
    end = tag_text.index(">")
    start_tag, rest = tag_text[: end + 1], tag_text[end + 1:]
    pattern = re.compile(rf"\s{re.escape(name)}\s*=\s*(\"[^\"]*\"|'[^']*')")
    if pattern.search(start_tag):
        repl = "" if value is None else f" {name}={quoteattr(value)}"
        start_tag = pattern.sub(lambda m: repl, start_tag, count=1)
    elif value is not None:
        cut = len(start_tag) - (2 if start_tag.endswith("/>") else 1)
        start_tag = f"{start_tag[:cut]} {name}={quoteattr(value)}{start_tag[cut:]}"
    return start_tag + rest


def root_prefix_for(text: str, namespace: str) -> str | None:
    """The prefix ('r:') the root element declares for `namespace`, '' if default, else None."""
    root = re.search(r"<(?![?!])[^>]*>", text)
    if not root:
        return None
    for prefix, uri in re.findall(r"xmlns(?::(\w+))?\s*=\s*[\"']([^\"']*)[\"']", root.group(0)):
        if uri == namespace:
            return f"{prefix}:" if prefix else ""
    return None


def insert_before_close(text: str, tag: str, addition: str) -> str:
    """Insert `addition` before `</tag>` of the root (expanding `<tag .../>` if need be)."""
    m = re.search(rf"</((?:\w+:)?){tag}\s*>\s*$", text)
    if m:
        return text[: m.start()] + addition + text[m.start():]
    m = re.search(rf"<((?:\w+:)?){tag}\b([^>]*?)/>\s*$", text)
    if not m:
        raise BackendError(f"unexpected XML: no </{tag}>")
    return text[: m.start()] + f"<{m.group(1)}{tag}{m.group(2)}>{addition}</{m.group(1)}{tag}>"


# ---------------------------------------------------------------------------------------------
# [Content_Types].xml and .rels files


def edit_content_types(text: str, remove: set[str], add: list[tuple[str, str]]) -> str:
    """Drop Overrides of removed parts (names lower-cased) and add Overrides for new parts."""
    removed = {p.lower() for p in remove}

    def keep(m: re.Match) -> str:
        part = re.search(r"PartName\s*=\s*[\"']([^\"']*)[\"']", m.group(0))
        name = unquote(part.group(1)).lstrip("/").lower() if part else ""
        return "" if name in removed else m.group(0)

    text = element_pattern("Override").sub(keep, text)
    prefix = root_prefix_for(text, NS_CT) or ""
    if not re.search(r"<(?:\w+:)?Default\b[^>]*Extension\s*=\s*[\"']rels[\"']", text, re.I):
        add = [("*.rels", CT_RELS)] + add
    entries = []
    for part, ctype in add:
        if part.startswith("*."):
            entries.append(f'<{prefix}Default Extension="{part[2:]}" ContentType="{ctype}"/>')
        else:
            entries.append(f'<{prefix}Override PartName="/{escape(part)}" ContentType="{ctype}"/>')
    return insert_before_close(text, "Types", "".join(entries))


def edit_rels(text: str, remove_ids: set[str], add: list[tuple[str, str, str]]) -> str:
    """Drop relationships by Id and add (id, type, target) ones."""

    def keep(m: re.Match) -> str:
        rid = re.search(r"\sId\s*=\s*[\"']([^\"']*)[\"']", m.group(0))
        return "" if rid and rid.group(1) in remove_ids else m.group(0)

    text = element_pattern("Relationship").sub(keep, text)
    prefix = root_prefix_for(text, NS_PKG_RELS) or ""
    entries = "".join(f"<{prefix}Relationship Id={quoteattr(i)} Type={quoteattr(t)} "
                      f"Target={quoteattr(target)}/>" for i, t, target in add)
    return insert_before_close(text, "Relationships", entries)


def new_rels(rels: list[tuple[str, str, str]]) -> str:
    body = "".join(f"<Relationship Id={quoteattr(i)} Type={quoteattr(t)} Target={quoteattr(g)}/>"
                   for i, t, g in rels)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="{NS_PKG_RELS}">{body}</Relationships>')


def free_rel_id(used: set[str]) -> str:
    n = 1
    while f"rId{n}" in used:
        n += 1
    used.add(f"rId{n}")
    return f"rId{n}"


# ---------------------------------------------------------------------------------------------
# xl/workbook.xml


@dataclass
class SheetEntry:
    """One <sheet/> of xl/workbook.xml."""

    name: str
    sheet_id: int
    rid: str
    state: str  # visible | hidden | veryHidden
    xml: str  # the original <sheet/> element, kept verbatim


@dataclass
class DefinedName:
    """One <definedName/> of xl/workbook.xml."""

    name: str
    local: int | None  # sheet position, for sheet-local names
    xml: str


class WorkbookXml:
    """The parts of xl/workbook.xml sheetsync edits, read once, written back with small edits."""

    def __init__(self, text: str, path: str, part: str):
        self.text = text
        root = parse_xml(text.encode("utf-8"), path, part)
        if root.tag == f"{{{NS_STRICT}}}workbook":
            raise BackendError(f"{path}: the workbook is saved as 'Strict Open XML', which sheetsync "
                               "cannot edit safely; save it as 'Excel Workbook (.xlsx)'")
        if root.tag != f"{{{NS_MAIN}}}workbook":
            raise BackendError(f"{path}: not an Excel workbook ({part} is {root.tag})")
        self.sheets = self._sheets(root, path)
        self.defined_names = self._defined_names(root, path)
        pr = root.find(f"{{{NS_MAIN}}}workbookPr")
        self.date1904 = pr is not None and pr.get("date1904") in ("1", "true")
        protection = root.find(f"{{{NS_MAIN}}}workbookProtection")
        self.structure_locked = protection is not None and protection.get("lockStructure") in ("1", "true")

    def _sheets(self, root: ET.Element, path: str) -> list[SheetEntry]:
        elements = root.findall(f"{{{NS_MAIN}}}sheets/{{{NS_MAIN}}}sheet")
        span = container_span(self.text, "sheets")
        texts = element_pattern("sheet").findall(self.text[span[0]:span[1]]) if span else []
        if len(texts) != len(elements):
            raise BackendError(f"{path}: unexpected layout of the sheet list in workbook.xml")
        return [SheetEntry(el.get("name", ""), int(el.get("sheetId", "0")), el.get(f"{{{NS_R}}}id", ""),
                           el.get("state", "visible"), xml) for el, xml in zip(elements, texts)]

    def _defined_names(self, root: ET.Element, path: str) -> list[DefinedName]:
        elements = root.findall(f"{{{NS_MAIN}}}definedNames/{{{NS_MAIN}}}definedName")
        span = container_span(self.text, "definedNames")
        texts = element_pattern("definedName").findall(self.text[span[0]:span[1]]) if span else []
        if len(texts) != len(elements):
            raise BackendError(f"{path}: unexpected layout of the defined names in workbook.xml")
        names = []
        for el, xml in zip(elements, texts):
            local = el.get("localSheetId")
            names.append(DefinedName(el.get("name", ""), int(local) if local is not None else None, xml))
        return names

    def rewrite(self, sheets: list[str], names: list[str], position: dict[int, int],
                full_calc: bool) -> str:
        """The new text: `sheets` and `names` are element texts; `position` maps old sheet
        positions to new ones (views pointing at a removed sheet go to the first sheet)."""
        text = _replace_children(self.text, "sheets", sheets, required=True)
        text = _replace_children(text, "definedNames", names, required=False)
        text = re.sub(r"<(?:\w+:)?workbookView\b[^>]*>",
                      lambda m: _remap_view(m.group(0), position), text)
        if full_calc:
            text = _set_full_calc(text)
        return text

    def main_prefix(self) -> str:
        m = re.search(r"<((?:\w+:)?)sheets\b", self.text)
        return m.group(1) if m else ""

    def r_prefix(self) -> str | None:
        return root_prefix_for(self.text, NS_R)


def _replace_children(text: str, tag: str, children: list[str], required: bool) -> str:
    """`<tag>` with new children (its start tag kept); removed when empty and not required."""
    span = container_span(text, tag)
    if span is None and not children:
        return text
    if span is None:
        return _insert_defined_names(text, "".join(children))
    start, end, prefix = span
    if not children and not required:
        return text[:start] + text[end:]
    opening = re.match(r"<[^>]*?(/?)>", text[start:end]).group(0)
    opening = opening[:-2] + ">" if opening.endswith("/>") else opening
    return f"{text[:start]}{opening}{''.join(children)}</{prefix}{tag}>{text[end:]}"


def _remap_view(tag: str, position: dict[int, int]) -> str:
    for attr in ("activeTab", "firstSheet"):
        m = re.search(rf"\s{attr}\s*=\s*[\"'](\d+)[\"']", tag)
        if m:
            tag = set_attr(tag, attr, str(position.get(int(m.group(1)), 0)))
    return tag


def _set_full_calc(text: str) -> str:
    m = re.search(r"<(?:\w+:)?calcPr\b[^>]*>", text)
    if m:
        return text[: m.start()] + set_attr(m.group(0), "fullCalcOnLoad", "1") + text[m.end():]
    prefix = re.search(r"<((?:\w+:)?)sheets\b", text).group(1)
    anchor = _after_last(text, ["definedNames", "externalReferences", "functionGroups", "sheets"])
    return f'{text[:anchor]}<{prefix}calcPr fullCalcOnLoad="1"/>{text[anchor:]}'


def _insert_defined_names(text: str, body: str) -> str:
    prefix = re.search(r"<((?:\w+:)?)sheets\b", text).group(1)
    anchor = _after_last(text, ["externalReferences", "functionGroups", "sheets"])
    return f"{text[:anchor]}<{prefix}definedNames>{body}</{prefix}definedNames>{text[anchor:]}"


def _after_last(text: str, tags: list[str]) -> int:
    """End offset of the first of `tags` present (schema order: definedNames follows these)."""
    for tag in tags:
        span = container_span(text, tag)
        if span:
            return span[1]
    raise BackendError("unexpected workbook.xml: no <sheets>")


def sheet_element(prefix: str, r_prefix: str | None, name: str, sheet_id: int, rid: str,
                  hidden: bool) -> str:
    state = ' state="hidden"' if hidden else ""
    if r_prefix:
        return f"<{prefix}sheet name={quoteattr(name)} sheetId=\"{sheet_id}\"{state} {r_prefix}id=\"{rid}\"/>"
    return (f"<{prefix}sheet xmlns:r=\"{NS_R}\" name={quoteattr(name)} sheetId=\"{sheet_id}\"{state} "
            f"r:id=\"{rid}\"/>")


def with_local_sheet_id(xml: str, position: int) -> str:
    return set_attr(xml, "localSheetId", str(position))


def defined_name_element(prefix: str, name: str, position: int, formula: str) -> str:
    return (f'<{prefix}definedName name="{name}" localSheetId="{position}" hidden="1">'
            f"{escape(formula)}</{prefix}definedName>")


def calc_chain_sheet_ids(data: bytes) -> set[int]:
    """Sheet ids the calc chain refers to (an entry without `i` repeats the previous one)."""
    ids, current = set(), 0
    for m in re.finditer(rb"<(?:\w+:)?c\b([^>]*)>", data):
        i = re.search(rb"\si\s*=\s*[\"'](\d+)[\"']", m.group(1))
        if i:
            current = int(i.group(1))
        ids.add(current)
    return ids


# ---------------------------------------------------------------------------------------------
# docProps/app.xml


def update_app_titles(text: str, old: list[str], new: list[str]) -> str:
    """Replace the worksheet titles in app.xml; leave it untouched if its shape is unexpected
    (it is advisory: Excel rewrites it on save and never validates it)."""
    heading = container_span(text, "HeadingPairs")
    titles = container_span(text, "TitlesOfParts")
    if not heading or not titles:
        return text
    counts = [(m.start(), m.end(), int(m.group(2)))
              for m in re.finditer(r"<((?:\w+:)?)i4>(\d+)</\1i4>", text[heading[0]:heading[1]])]
    items = list(re.finditer(r"<((?:\w+:)?)lpstr>(.*?)</\1lpstr>", text[titles[0]:titles[1]], re.S))
    values = [_unescape(m.group(2)) for m in items]
    offset = 0
    for k, (_s, _e, count) in enumerate(counts):
        if count == len(old) and values[offset: offset + count] == old:
            return _rewrite_app(text, heading, titles, counts[k], items, offset, old, new)
        offset += count
    return text


def _rewrite_app(text, heading, titles, count, items, offset, old, new) -> str:
    vt = items[0].group(1) if items else "vt:"
    tspan = text[titles[0]:titles[1]]
    before = tspan[: items[offset].start()] if old else tspan[: items[0].start()]
    after = tspan[items[offset + len(old) - 1].end():] if old else tspan[items[0].start():]
    body = "".join(f"<{vt}lpstr>{escape(n)}</{vt}lpstr>" for n in new)
    tspan = before + body + after
    tspan = re.sub(r"(<(?:\w+:)?vector\b[^>]*\bsize\s*=\s*[\"'])(\d+)",
                   lambda m: m.group(1) + str(len(items) - len(old) + len(new)), tspan, count=1)
    hspan = text[heading[0]:heading[1]]
    hspan = hspan[: count[0]] + re.sub(r">\d+<", f">{len(new)}<", hspan[count[0]:count[1]]) + hspan[count[1]:]
    return text[: heading[0]] + hspan + text[heading[1]: titles[0]] + tspan + text[titles[1]:]


def _unescape(s: str) -> str:
    return (s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&apos;", "'").replace("&amp;", "&"))


# ---------------------------------------------------------------------------------------------
# xl/styles.xml


MINIMAL_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<styleSheet xmlns="{NS_MAIN}">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


# The number formats every spreadsheet knows by id without a <numFmt> (ECMA-376 part 1, 18.8.30;
# ids 23-36 are locale-specific and left out, as openpyxl leaves them out). A format among these
# is referred to by its id. Checked against openpyxl's table in tests/backends/test_number_formats.py.
BUILTIN_NUMBER_FORMATS = {
    0: "General", 1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00",
    5: '"$"#,##0_);("$"#,##0)', 6: '"$"#,##0_);[Red]("$"#,##0)',
    7: '"$"#,##0.00_);("$"#,##0.00)', 8: '"$"#,##0.00_);[Red]("$"#,##0.00)',
    9: "0%", 10: "0.00%", 11: "0.00E+00", 12: "# ?/?", 13: "# ??/??",
    14: "mm-dd-yy", 15: "d-mmm-yy", 16: "d-mmm", 17: "mmm-yy", 18: "h:mm AM/PM", 19: "h:mm:ss AM/PM",
    20: "h:mm", 21: "h:mm:ss", 22: "m/d/yy h:mm",
    37: "#,##0_);(#,##0)", 38: "#,##0_);[Red](#,##0)", 39: "#,##0.00_);(#,##0.00)",
    40: "#,##0.00_);[Red](#,##0.00)",
    41: r'_(* #,##0_);_(* \(#,##0\);_(* "-"_);_(@_)',
    42: r'_("$"* #,##0_);_("$"* \(#,##0\);_("$"* "-"_);_(@_)',
    43: r'_(* #,##0.00_);_(* \(#,##0.00\);_(* "-"??_);_(@_)',
    44: r'_("$"* #,##0.00_)_("$"* \(#,##0.00\)_("$"* "-"??_)_(@_)',
    45: "mm:ss", 46: "[h]:mm:ss", 47: "mmss.0", 48: "##0.0E+0", 49: "@",
}


class StyleSheet:
    """Hands out cell format indices for (number format, bold, fill) and appends what is new.

    Entries equal to ones already there (sheetsync's own from an earlier run, or the user's
    number formats) are reused, so repeated runs do not grow the file.
    """

    def __init__(self, text: str):
        self.text = text
        self.prefix = re.search(r"<((?:\w+:)?)styleSheet\b", text).group(1)
        self.formats = self._existing_formats()
        self.fonts = self._children("fonts", "font")
        self.fills = self._children("fills", "fill")
        self.xfs = self._children("cellXfs", "xf")
        self._new = {"numFmts": [], "fonts": [], "fills": [], "cellXfs": []}
        self._cache: dict[tuple, int] = {}

    def _children(self, container: str, tag: str) -> list[str]:
        span = container_span(self.text, container)
        if not span:
            raise BackendError(f"unexpected styles.xml: no <{container}>")
        return element_pattern(tag).findall(self.text[span[0]:span[1]])

    def _existing_formats(self) -> dict[str, int]:
        formats = {code: number for number, code in BUILTIN_NUMBER_FORMATS.items()}
        for m in re.finditer(r"<(?:\w+:)?numFmt\b([^>]*)/?>", self.text):
            attrs = dict(re.findall(r"(\w+)\s*=\s*\"([^\"]*)\"", m.group(1)))
            if "numFmtId" in attrs and "formatCode" in attrs:
                formats.setdefault(_unescape(attrs["formatCode"]), int(attrs["numFmtId"]))
        return formats

    def xf(self, number_format: str | None, bold: bool = False, fill: str | None = None,
           wrap: bool = False) -> int:
        """The cellXfs index for this combination (0, the default, when nothing is asked)."""
        key = (number_format or "General", bold, (fill or "").upper(), wrap)
        if key == ("General", False, "", False):
            return 0
        if key not in self._cache:
            self._cache[key] = self._make_xf(*key)
        return self._cache[key]

    def _make_xf(self, number_format: str, bold: bool, fill: str, wrap: bool) -> int:
        fmt_id = self._format_id(number_format)
        font_id = self._index("fonts", self.fonts, self._bold_font()) if bold else 0
        fill_id = self._index("fills", self.fills, self._fill(fill)) if fill else 0
        p = self.prefix
        attrs = (f'numFmtId="{fmt_id}" fontId="{font_id}" fillId="{fill_id}" borderId="0" '
                 f'xfId="0" applyNumberFormat="1" applyFont="1" applyFill="1"')
        if wrap:  # long sentences wrap inside their (merged) cell, read from the top
            xml = f'<{p}xf {attrs} applyAlignment="1"><{p}alignment wrapText="1" vertical="top"/></{p}xf>'
        else:
            xml = f'<{p}xf {attrs}/>'
        return self._index("cellXfs", self.xfs, xml)

    def _index(self, container: str, existing: list[str], xml: str) -> int:
        if xml in existing:
            return existing.index(xml)
        existing.append(xml)
        self._new[container].append(xml)
        return len(existing) - 1

    def _format_id(self, code: str) -> int:
        if code not in self.formats:
            fmt_id = max([163, *self.formats.values()]) + 1
            self.formats[code] = fmt_id
            self._new["numFmts"].append(
                f"<{self.prefix}numFmt numFmtId=\"{fmt_id}\" formatCode={quoteattr(code)}/>")
        return self.formats[code]

    def _bold_font(self) -> str:
        # The user's default font made bold, so headers match the rest of the workbook.
        base = self.fonts[0] if self.fonts else f"<{self.prefix}font></{self.prefix}font>"
        if base.endswith("/>"):
            base = base[:-2] + f"></{self.prefix}font>"
        base = re.sub(r"<(?:\w+:)?b\b[^>]*/>", "", base)
        cut = base.index(">") + 1
        return f"{base[:cut]}<{self.prefix}b/>{base[cut:]}"

    def _fill(self, rgb: str) -> str:
        p = self.prefix
        return (f'<{p}fill><{p}patternFill patternType="solid"><{p}fgColor rgb="FF{rgb[-6:]}"/>'
                f'<{p}bgColor indexed="64"/></{p}patternFill></{p}fill>')

    def changed(self) -> bool:
        return any(self._new.values())

    def render(self) -> str:
        text = self.text
        for container in ("cellXfs", "fills", "fonts"):
            text = self._append(text, container, self._new[container])
        if self._new["numFmts"]:
            text = self._append_formats(text)
        return text

    def _append(self, text: str, container: str, added: list[str]) -> str:
        if not added:
            return text
        start, end, prefix = container_span(text, container)
        block = text[start:end]
        total = len(element_pattern(container[:-1] if container != "cellXfs" else "xf")
                    .findall(block)) + len(added)
        if block.endswith("/>"):
            block = block[:-2] + f"></{prefix}{container}>"
        close = block.rindex("<")
        block = block[:close] + "".join(added) + block[close:]
        block = set_attr(block, "count", str(total))
        return text[:start] + block + text[end:]

    def _append_formats(self, text: str) -> str:
        if container_span(text, "numFmts"):
            return self._append(text, "numFmts", self._new["numFmts"])
        m = re.search(r"<(?:\w+:)?styleSheet\b[^>]*>", text)
        p = self.prefix
        block = f'<{p}numFmts count="{len(self._new["numFmts"])}">{"".join(self._new["numFmts"])}</{p}numFmts>'
        return text[: m.end()] + block + text[m.end():]
