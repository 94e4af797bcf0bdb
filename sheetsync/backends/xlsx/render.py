"""Rendering one owned tab (`TabRenderer`): its worksheet XML, streamed, and its side parts
(comments with their VML, drawing, native charts)."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import orjson

from ...errors import BackendError
from ..base import TabPlan, Text, col_letter
from . import chart_xml, ooxml, rowwrite
from .celltext import escape, excel_escape, xml_text
from .partnames import NewPart, PartNames
from .zipstream import SEGMENT

CHUNK_ROWS = 4096


def cell_xml(ref: str, value: Any, style: int, formula: str | None = None) -> str:
    """One <c> element; NaN and infinities are blank cells (a spreadsheet has no such numbers)."""
    s = f' s="{style}"' if style else ""
    f = f"<f>{xml_text(formula.removeprefix('='))}</f>" if formula else ""
    if _blank(value):
        return f'<c r="{ref}"{s}>{f}</c>' if (f or s) else ""
    if isinstance(value, (bool, np.bool_)):
        return f'<c r="{ref}"{s} t="b">{f}<v>{int(value)}</v></c>'
    if isinstance(value, (int, np.integer)):
        return f'<c r="{ref}"{s}>{f}<v>{int(value)}</v></c>'
    if isinstance(value, (float, np.floating)):
        return f'<c r="{ref}"{s}>{f}<v>{float(value)!r}</v></c>'
    text = value if isinstance(value, str) else str(value)
    if f:
        return f'<c r="{ref}"{s} t="str">{f}<v>{xml_text(text)}</v></c>'
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{xml_text(text)}</t></is></c>'


@dataclass
class Overlay:
    """A cell whose look (fill) or content (a Text) differs from what its table says."""

    fill: str | None = None
    text: Text | None = None
    style: int = 0


@dataclass
class ColumnData:
    values: Any  # numpy array or list
    formulas: Sequence[str | None] | None
    style: int
    fast: bool  # numeric numpy array without formulas


class TabRenderer:
    """The parts of one owned tab: worksheet XML (streamed), comments + VML, drawing + charts."""

    def __init__(self, plan: TabPlan, styles: ooxml.StyleSheet, names: PartNames):
        self.plan = plan
        check_tables_apart(plan)
        self.part, _ = names.numbered("xl/worksheets/sheet{}.xml")
        self.header_styles = {}
        self.columns = [self._columns(t, styles) for t in plan.tables]
        self.overlays = self._overlays(styles)
        self.notes = self._notes()
        self.needs_recalc = self._needs_recalc()
        self._parts = self._side_parts(names)

    # -- preparation (styles resolved up front so the rows can stream) -----------------------

    def _columns(self, table, styles: ooxml.StyleSheet) -> list[ColumnData]:
        self.header_styles[id(table)] = styles.xf(None, bold=table.bold_header)
        out = []
        for col in table.columns:
            values = plain_values(col.values)
            if isinstance(values, np.ndarray) and values.dtype.kind not in "fiub":
                values = values.tolist()
            fast = isinstance(values, np.ndarray) and values.dtype.kind in "fiu" and not col.formulas
            out.append(ColumnData(values, col.formulas, styles.xf(col.number_format, wrap=col.wrap), fast))
        return out

    def _overlays(self, styles: ooxml.StyleSheet) -> dict[tuple[int, int], Overlay]:
        overlays: dict[tuple[int, int], Overlay] = {}
        for h in self.plan.highlights:
            for r in range(h.row, h.row + h.n_rows):
                for c in range(h.col, h.col + h.n_cols):
                    overlays.setdefault((r, c), Overlay()).fill = h.color
        for t in self.plan.texts:
            overlays.setdefault((t.row, t.col), Overlay()).text = t
        for (r, c), o in overlays.items():
            fmt, bold = self._format_at(r, c)
            wrap = False
            if o.text is not None:
                fmt, bold, wrap = o.text.number_format, o.text.bold, o.text.wrap
            o.style = styles.xf(fmt, bold, o.fill, wrap)
        return overlays

    def _format_at(self, row: int, col: int) -> tuple[str | None, bool]:
        for table in self.plan.tables:
            j = col - table.col
            if 0 <= j < len(table.columns):
                if row == table.row:
                    return None, table.bold_header
                if table.row < row <= table.row + table.n_rows:
                    return table.columns[j].number_format, False
        return None, False

    def _notes(self) -> list[tuple[int, int, str]]:
        notes = [(t.row, t.col + j, c.note) for t in self.plan.tables
                 for j, c in enumerate(t.columns) if c.note]
        notes += [(x.row, x.col, x.note) for x in self.plan.texts if x.note]
        notes += [(h.row, h.col, h.note) for h in self.plan.highlights if h.note]
        unique = {}
        for r, c, note in notes:
            unique[(r, c)] = note if (r, c) not in unique else unique[(r, c)] + "\n" + note
        return [(r, c, n) for (r, c), n in sorted(unique.items())]

    def _needs_recalc(self) -> bool:
        if any(t.formula and t.value is None for t in self.plan.texts):
            return True
        for table, cols in zip(self.plan.tables, self.columns):
            for data in cols:
                if data.formulas and any(f and _blank(v) for f, v in zip(data.formulas, data.values)):
                    return True
        return False

    # -- side parts ---------------------------------------------------------------------------

    def _side_parts(self, names: PartNames) -> list[NewPart]:
        rels, parts = [], []
        self.drawing_rid = self.legacy_rid = None
        if self.plan.charts:
            drawing, n = names.numbered("xl/drawings/drawing{}.xml")
            parts += self._chart_parts(drawing, names)
            self.drawing_rid = "rId1"
            rels.append(("rId1", ooxml.REL_DRAWING, ooxml.relative_target(self.part, drawing)))
        if self.notes:
            comments, _ = names.numbered("xl/comments{}.xml")
            vml, _ = names.numbered("xl/drawings/vmlDrawing{}.vml")
            comments_xml, vml_xml = comment_parts(self.notes, names.shape_blocks(len(self.notes)))
            parts += [NewPart(comments, ooxml.CT_COMMENTS, comments_xml), NewPart(vml, ooxml.CT_VML, vml_xml)]
            self.legacy_rid = "rId3"
            rels += [("rId2", ooxml.REL_COMMENTS, ooxml.relative_target(self.part, comments)),
                     ("rId3", ooxml.REL_VML, ooxml.relative_target(self.part, vml))]
        main = [NewPart(self.part, ooxml.CT_WORKSHEET, self.sheet_xml)]
        if rels:
            main.append(NewPart(ooxml.rels_part(self.part), None, ooxml.new_rels(rels)))
        return main + parts

    def _chart_parts(self, drawing_part: str, names: PartNames) -> list[NewPart]:
        charts = self.plan.charts
        for chart in charts:
            if chart.kind not in ("line", "scatter"):
                raise BackendError(f"chart {chart.title!r}: kind must be 'line' or 'scatter', not {chart.kind!r}")
        paths = [names.numbered("xl/charts/chart{}.xml")[0] for _ in charts]
        return [NewPart(drawing_part, ooxml.CT_DRAWING, chart_xml.drawing_xml(charts)),
                NewPart(ooxml.rels_part(drawing_part), None, chart_xml.drawing_rels(paths))] + [
            NewPart(path, ooxml.CT_CHART, chart_xml.chart_xml(chart)) for path, chart in zip(paths, charts)]

    def parts(self) -> list[NewPart]:
        return self._parts

    # -- the worksheet XML --------------------------------------------------------------------

    def sheet_xml(self) -> Iterator[str]:
        yield ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               f'<worksheet xmlns="{ooxml.NS_MAIN}" xmlns:r="{ooxml.NS_R}">')
        yield self._dimension() + self._views() + self._widths() + "<sheetData>"
        if self.plan.log:  # the head, the rows and the end deflated apart (`append`)
            yield SEGMENT
        yield from self._rows()
        if self.plan.log:
            yield SEGMENT
        yield "</sheetData>"
        yield self._merges() + self._color_scales()
        if self.drawing_rid:
            yield f'<drawing r:id="{self.drawing_rid}"/>'
        if self.legacy_rid:
            yield f'<legacyDrawing r:id="{self.legacy_rid}"/>'
        yield "</worksheet>"

    def _merges(self) -> str:
        spans = [t for t in self.plan.texts if t.span > 1]
        if not spans:
            return ""
        refs = "".join(f'<mergeCell ref="{col_letter(t.col)}{t.row + 1}:{col_letter(t.col + t.span - 1)}{t.row + 1}"/>'
                       for t in spans)
        return f'<mergeCells count="{len(spans)}">{refs}</mergeCells>'

    def _color_scales(self) -> str:
        out = []
        for k, cs in enumerate(self.plan.color_scales, start=1):
            ref = f"{col_letter(cs.col)}{cs.row + 1}:{col_letter(cs.col + cs.n_cols - 1)}{cs.row + cs.n_rows}"
            points = cs.points()
            cfvos = "".join(_cfvo(where, value) for where, value, _ in points)
            colours = "".join(f'<color rgb="FF{c.upper()}"/>' for _, _, c in points)
            out.append(f'<conditionalFormatting sqref="{ref}"><cfRule type="colorScale" priority="{k}">'
                       f'<colorScale>{cfvos}{colours}</colorScale></cfRule></conditionalFormatting>')
        return "".join(out)

    def _dimension(self) -> str:
        rows, cols = self.plan.extent()
        for r, c in self.overlays:
            rows, cols = max(rows, r + 1), max(cols, c + 1)
        if not rows or not cols:
            return '<dimension ref="A1"/>'
        return f'<dimension ref="A1:{col_letter(cols - 1)}{rows}"/>'

    def _views(self) -> str:
        rows, cols = self.plan.frozen_rows, self.plan.frozen_cols
        if not rows and not cols:
            return '<sheetViews><sheetView workbookViewId="0"/></sheetViews>'
        pane = {(True, True): "bottomRight", (True, False): "bottomLeft", (False, True): "topRight"}[(rows > 0, cols > 0)]
        split = (f' xSplit="{cols}"' if cols else "") + (f' ySplit="{rows}"' if rows else "")
        return (f'<sheetViews><sheetView workbookViewId="0"><pane{split} topLeftCell="{col_letter(cols)}{rows + 1}" '
                f'activePane="{pane}" state="frozen"/><selection pane="{pane}"/></sheetView></sheetViews>')

    def _widths(self) -> str:
        widths = {}
        for table in self.plan.tables:
            for j, col in enumerate(table.columns):
                if col.width:
                    widths[table.col + j] = col.width
        if not widths:
            return ""
        cols = "".join(f'<col min="{c + 1}" max="{c + 1}" width="{w:g}" customWidth="1"/>'
                       for c, w in sorted(widths.items()))
        return f"<cols>{cols}</cols>"

    def _rows(self) -> Iterator[str]:
        sources = [self._table_rows(t, cols) for t, cols in zip(self.plan.tables, self.columns)]
        sources.append(self._loose_cells())
        merged = heapq.merge(*sources, key=lambda item: item[0])
        heights = self.plan.row_heights
        current, pieces = -1, []
        for row, col, xml in merged:
            if col < 0:  # whole <row> elements that no other source has cells in
                if pieces:
                    yield _row_xml(current, pieces, heights.get(current))
                current, pieces = -1, []
                yield xml
                continue
            if row != current:
                if pieces:
                    yield _row_xml(current, pieces, heights.get(current))
                current, pieces = row, []
            pieces.append((col, xml))
        if pieces:
            yield _row_xml(current, pieces, heights.get(current))

    def _busy_rows(self, table, besides=()) -> list[tuple[int, int]]:
        """Spans of sheet rows (first, last) where something besides `table` (and the tables in
        `besides`) has cells or the row has a height: there the table's rows are assembled with
        the rest, cell by cell."""
        spans = [(r, r) for r in self.plan.row_heights]
        spans += [(t.row, t.row + t.n_rows) for t in self.plan.tables
                  if t is not table and all(t is not b for b in besides)]
        spans += [(r, r) for r, c in self.overlays if not self._in_table(r, c)]
        return spans

    def _side_by_side(self, table) -> list:
        """The tables on exactly `table`'s rows, itself included, left to right (an epochs
        history and its chart data): where nothing else shares those rows, their rows are
        written together a chunk at a time by the leftmost (`_table_rows`)."""
        return sorted((t for t in self.plan.tables if (t.row, t.n_rows) == (table.row, table.n_rows)),
                      key=lambda t: t.col)

    def _loose_cells(self) -> Iterator[tuple[int, int, str]]:
        """Texts and highlighted cells outside every table."""
        for (r, c), o in sorted(self.overlays.items()):
            if self._in_table(r, c):
                continue
            t = o.text
            xml = cell_xml(f"{col_letter(c)}{r + 1}", t.value if t else None, o.style, t.formula if t else None)
            if not xml:
                xml = f'<c r="{col_letter(c)}{r + 1}" s="{o.style}"/>'
            yield r, c, xml

    def _in_table(self, row: int, col: int) -> bool:
        return any(t.col <= col < t.col + len(t.columns) and t.row <= row <= t.row + t.n_rows
                   for t in self.plan.tables)

    def _table_rows(self, table, columns: list[ColumnData]) -> Iterator[tuple[int, int, str]]:
        """The table's cells as (row, col, cells), a row at a time where other cells share its
        rows; elsewhere whole <row> elements, a chunk of rows at a time, as (first row, -1, rows)
        (the fast path: a steps table is alone in all its rows but those beside its charts)."""
        letters = [col_letter(table.col + j) for j in range(len(columns))]
        patches = self._table_patches(table)
        busy = self._busy_rows(table)
        group = self._side_by_side(table)  # [table] when no other table shares its rows exactly
        busy_but_group = self._busy_rows(table, besides=group)

        def alone(first: int, last: int) -> bool:
            return not any(a <= last and first <= b for a, b in busy)

        def alone_but_group(first: int, last: int) -> bool:
            return len(group) > 1 and not any(a <= last and first <= b for a, b in busy_but_group)

        header_style = self.header_styles[id(table)]
        header = [cell_xml(f"{letters[j]}{table.row + 1}", c.header, header_style)
                  for j, c in enumerate(table.columns)]
        for (r, j), xml in patches.pop(-1, {}).items():
            header[j] = xml
        if alone(table.row, table.row):
            yield table.row, -1, _row_xml(table.row, [(0, "".join(header))])
        else:
            yield table.row, table.col, "".join(header)
        framed = RowsRenderer(letters, columns, table.row + 2, framed=True)
        separate = RowsRenderer(letters, columns, table.row + 2, framed=False)
        partners = [] if group[0] is not table else [self._renderer(t) for t in group[1:]]
        for c0 in range(0, table.n_rows, CHUNK_ROWS):
            chunk = c0 // CHUNK_ROWS
            for i0, i1 in _segments(c0, min(table.n_rows, c0 + CHUNK_ROWS), busy, table.row + 1):
                own = _within(patches.get(chunk, {}), i0, i1)
                if alone(table.row + 1 + i0, table.row + i1):
                    yield table.row + 1 + i0, -1, framed.framed(i0, i1, own)
                    continue
                if alone_but_group(table.row + 1 + i0, table.row + i1):
                    if partners:  # the leftmost writes the group's rows, each as _rows would assemble it
                        parts = [separate.separate(i0, i1, own)]
                        parts += [r.separate(i0, i1, _within(pp.get(chunk, {}), i0, i1)) for r, pp in partners]
                        first = table.row + 2 + i0  # 1-based
                        yield table.row + 1 + i0, -1, "".join(
                            f'<row r="{first + k}">' + "".join(cells) + "</row>" for k, cells in enumerate(zip(*parts)))
                    continue  # the others' rows there are in the leftmost's
                for k, xml in enumerate(separate.separate(i0, i1, own)):
                    yield table.row + 1 + i0 + k, table.col, xml

    def _renderer(self, table) -> tuple["RowsRenderer", dict]:
        """A table's row renderer (cells only) and its overlaid cells by chunk."""
        columns = self.columns[self.plan.tables.index(table)]
        letters = [col_letter(table.col + j) for j in range(len(columns))]
        return RowsRenderer(letters, columns, table.row + 2, framed=False), self._table_patches(table)

    def _table_patches(self, table) -> dict[int, dict[tuple[int, int], str]]:
        """Overlaid cells inside `table`, rendered, grouped by chunk (-1: the header row)."""
        patches: dict[int, dict[tuple[int, int], str]] = {}
        columns = self.columns[self.plan.tables.index(table)]
        for (r, c), o in self.overlays.items():
            j, i = c - table.col, r - table.row - 1
            if not (0 <= j < len(table.columns) and -1 <= i < table.n_rows):
                continue
            ref = f"{col_letter(c)}{r + 1}"
            if o.text is not None:
                value, formula = o.text.value, o.text.formula
            elif i == -1:
                value, formula = table.columns[j].header, None
            else:
                data = columns[j]
                value, formula = data.values[i], data.formulas[i] if data.formulas else None
            xml = cell_xml(ref, value, o.style, formula) or f'<c r="{ref}" s="{o.style}"/>'
            patches.setdefault(-1 if i == -1 else i // CHUNK_ROWS, {})[(i, j)] = xml
        return patches


def _segments(i0: int, i1: int, busy: list[tuple[int, int]], row0: int) -> list[tuple[int, int]]:
    """Data rows i0..i1 of a table (data row i on sheet row row0 + i) cut where a busy span of
    sheet rows (first, last) starts or ends: each piece is wholly inside or outside every span,
    so only the rows something shares are assembled cell by cell (a steps table's diagnosis
    sits beside its first dozen rows, not its first 4,096)."""
    cuts = {i0, i1}
    for a, b in busy:
        cuts.update(c for c in (a - row0, b + 1 - row0) if i0 < c < i1)
    cuts = sorted(cuts)
    return list(zip(cuts, cuts[1:]))


def _within(patches: dict[tuple[int, int], str], i0: int, i1: int) -> dict[tuple[int, int], str]:
    return {key: xml for key, xml in patches.items() if i0 <= key[0] < i1}


def check_tables_apart(plan: TabPlan) -> None:
    """Two tables on one cell would give Excel a row with a cell twice, which it 'repairs'."""
    boxes = [(t.row, t.row + t.n_rows + 1, t.col, t.col + len(t.columns)) for t in plan.tables]
    for k, (r0, r1, c0, c1) in enumerate(boxes):
        for s0, s1, d0, d1 in boxes[k + 1:]:
            if r0 < s1 and s0 < r1 and c0 < d1 and d0 < c1:
                raise BackendError(f"tab {plan.name!r}: two tables overlap; the layout must keep them apart")


def plain_values(values: Any) -> Any:
    """A pandas column as numpy (nullable numbers as floats with NaN for missing), else as is."""
    if not hasattr(values, "to_numpy"):
        return values
    if getattr(values.dtype, "kind", "O") in "iufb" and values.isna().any():
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return values.to_numpy()


def _blank(value: Any) -> bool:
    if value is None or isinstance(value, str) and not value:
        return True
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    return type(value).__name__ in ("NAType", "NaTType")  # pandas' missing values


def _row_xml(row: int, pieces: list[tuple[int, str]], height: float | None = None) -> str:
    if len(pieces) > 1:
        pieces.sort(key=lambda p: p[0])
    ht = f' ht="{height:g}" customHeight="1"' if height else ""
    return f'<row r="{row + 1}"{ht}>' + "".join(xml for _, xml in pieces) + "</row>"


def column_cells(letter: str, rownums: list[str], data: ColumnData, i0: int, i1: int) -> list[str]:
    """The cells of one column's rows i0..i1, one string each ('' for a blank)."""
    values = data.values[i0:i1]
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not data.formulas and all(type(v) is str for v in values):
        return text_cells(letter, rownums, values, data.style)
    formulas = data.formulas[i0:i1] if data.formulas else [None] * len(rownums)
    return [cell_xml(letter + r, v, data.style, f) for r, v, f in zip(rownums, values, formulas)]


def text_cells(letter: str, rownums: list[str], values: list[str], style: int) -> list[str]:
    """`cell_xml` of a column of texts, each distinct text escaped once (a run log repeats its
    actions, flavours and outcomes thousands of times)."""
    s = f' s="{style}"' if style else ""
    blank = f"{s}></c>" if s else None
    space = ' xml:space="preserve"'
    ends = {v: f'{s} t="inlineStr"><is><t{space if v != v.strip() else ""}>{xml_text(v)}</t></is></c>'
            for v in set(values) if v}
    head = f'<c r="{letter}'
    return [head + r + '"' + ends[v] if v else (head + r + '"' + blank if blank else "")
            for r, v in zip(rownums, values)]


class RowsRenderer:
    """The data rows of one table as XML, a chunk of rows at a time.

    The fast path for big numeric tables: each column's numbers are written as text in C by
    orjson (`number_buffer`), other columns' cells are rendered beforehand (`column_cells`), and
    the C row renderer (`rowwrite`) lays the texts into a row template, row after row: no Python
    work per cell or per row. Without it (no C compiler), one %-format of the template repeated
    once per row does it, with the same bytes. A NaN or infinity is written as an empty cell.
    Rows holding an overlaid cell are rendered apart (`odd_row`) and swapped in. Tables of
    numbers only are rendered as bytes (no encoding afterwards), others as str.
    """

    def __init__(self, letters: list[str], columns: list[ColumnData], first_row: int, framed: bool):
        self.letters, self.columns, self.first_row, self.framed_rows = letters, columns, first_row, framed
        self.as_bytes = all(c.fast for c in columns)
        slots = "".join(f'<c r="{letter}{rowwrite.ROW_NUMBER}"{_style_attr(c.style)}>{rowwrite.VALUE}</c>'
                        if c.fast else rowwrite.CELL for letter, c in zip(letters, columns))
        self.slots = f'<row r="{rowwrite.ROW_NUMBER}">{slots}</row>' if framed else slots  # one row, for C
        self.row = (self.slots.replace(rowwrite.ROW_NUMBER, "%s").replace(rowwrite.CELL, "%s")
                    .replace(rowwrite.VALUE, "<v>%s</v>"))  # the same, for %
        self.width = (1 if framed else 0) + sum(2 if c.fast else 1 for c in columns)
        self._templates: dict[tuple[int, bool], Any] = {}

    def framed(self, i0: int, i1: int, patches: dict[tuple[int, int], str]) -> str | bytes:
        """Rows i0..i1 as <row> elements, one text."""
        text, odd, cells = self._render(i0, i1, patches, separate=False)
        if not odd:
            return text
        rows = text.split(self._sep)[:-1]
        for k, cell_patches in odd.items():
            rownum = self.first_row + i0 + k
            row = odd_row(self.letters, self.columns, cells, k, i0 + k, str(rownum), cell_patches)
            rows[k] = self._text(f'<row r="{rownum}">{row}</row>')
        return self._sep[:0].join(rows)

    def separate(self, i0: int, i1: int, patches: dict[tuple[int, int], str]) -> list[str]:
        """The cells of rows i0..i1, one string per row."""
        text, odd, cells = self._render(i0, i1, patches, separate=True)
        if self.as_bytes:
            text = text.decode("ascii")
        rows = text.split("\0")[:-1]
        for k, cell_patches in odd.items():
            rows[k] = odd_row(self.letters, self.columns, cells, k, i0 + k, str(self.first_row + i0 + k),
                              cell_patches)
        return rows

    @property
    def _sep(self):
        return b"\0" if self.as_bytes else "\0"

    def _text(self, text: str):
        return text.encode("utf-8") if self.as_bytes else text

    def _render(self, i0: int, i1: int, patches: dict[tuple[int, int], str], separate: bool):
        """(text of the chunk, {odd row: its patches}, the cells of the columns not `fast`).

        The text separates rows by NUL (which no cell holds: XML cannot) when `separate` or
        when some row is odd and must be swapped."""
        columns, n = self.columns, i1 - i0
        odd: dict[int, list[tuple[int, str]]] = {}
        for (i, j), xml in patches.items():
            odd.setdefault(i - i0, []).append((j, xml))
        separated = separate or bool(odd)
        rownums = None if self.as_bytes else list(map(str, range(self.first_row + i0, self.first_row + i1)))
        cells = [None if data.fast else column_cells(self.letters[j], rownums, data, i0, i1)
                 for j, data in enumerate(columns)]
        numbers = [number_buffer(data.values[i0:i1]) if data.fast else None for data in columns]
        text = rowwrite.rows(self.slots.encode("utf-8") + (b"\0" if separated else b""), self.first_row + i0, n,
                             [b if c is None else "\0".join(c).encode("utf-8") for b, c in zip(numbers, cells)])
        if text is None:  # no C compiler
            text = self._formatted(i0, i1, numbers, cells, rownums, separated)
        elif not self.as_bytes:
            text = text.decode("utf-8")
        return text, odd, cells

    def _formatted(self, i0: int, i1: int, numbers: list, cells: list, rownums: list[str] | None, separated: bool):
        """The chunk by one %-format of the row template repeated, the row numbers and texts laid
        out by slice assignments; a NaN's "null" then taken out of the whole text at once."""
        n = i1 - i0
        texts = [c if b is None else b.split(b",") if self.as_bytes else b.decode("ascii").split(",")
                 for b, c in zip(numbers, cells)]
        rownums = number_texts(np.arange(self.first_row + i0, self.first_row + i1), True) if self.as_bytes else rownums
        args: list = [None] * (n * self.width)
        w, at = self.width, 0
        if self.framed_rows:
            args[0::w] = rownums
            at = 1
        for b, column in zip(numbers, texts):
            if b is not None:
                args[at::w] = rownums
                at += 1
            args[at::w] = column
            at += 1
        text = self._template(n, separated) % tuple(args)
        if any(b is not None and b"null" in b for b in numbers):
            null = self._text(_NULL_VALUE)
            text = text.replace(null, null[:0])
        return text

    def _template(self, n: int, separated: bool):
        key = (n, separated)
        if key not in self._templates:
            row = self.row + ("\0" if separated else "")
            self._templates[key] = self._text(row * n)
        return self._templates[key]


_NULL_VALUE = "<v>null</v>"  # number_texts' NaN or infinity in a fast cell: taken out, the cell left empty
_NUMBER_DTYPES = {np.dtype(t) for t in ("float64", "int8", "int16", "int32", "int64",
                                       "uint8", "uint16", "uint32", "uint64")}


def number_buffer(block: np.ndarray) -> bytes:
    """The numbers of a 1-D array as cell texts, comma-separated; NaN and infinities as "null"
    (written blank).

    orjson writes a float as the shortest text that reads back as the same double (as repr
    does, in another notation: 0.00001 for 1e-05, 1e16 for 1e+16, always with a "." or an
    exponent, so it never reads back as an integer), an integer in decimal, and does it in C,
    ~20x faster than repr per float. Other float types are widened to float64 first (exact,
    the value `tolist` gives)."""
    if len(block) == 0:
        return b""
    if block.dtype not in _NUMBER_DTYPES:
        block = block.astype(np.float64 if block.dtype.kind == "f" else np.int64)
    return orjson.dumps(np.ascontiguousarray(block), option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]


def number_texts(block: np.ndarray, as_bytes: bool = False) -> list[str] | list[bytes]:
    """`number_buffer`'s texts one by one."""
    if len(block) == 0:
        return []
    data = number_buffer(block)
    return data.split(b",") if as_bytes else data.decode("ascii").split(",")


def _style_attr(style: int) -> str:
    return f' s="{style}"' if style else ""


def odd_row(letters: list[str], columns: list[ColumnData], cells: list, k: int, index: int, rownum: str,
            patches: list[tuple[int, str]]) -> str:
    """Data row `index` (row k of its chunk, sheet row `rownum`) cell by cell, as the chunk's
    template writes it (`cells`: the rendered cells of the columns not `fast`), with the overlaid
    cells from `patches` in place of its own."""
    row = []
    for j, data in enumerate(columns):
        if not data.fast:
            row.append(cells[j][k])
            continue
        text = number_texts(data.values[index:index + 1])[0]
        value = "" if text == "null" else f"<v>{text}</v>"
        row.append(f'<c r="{letters[j]}{rownum}"{_style_attr(data.style)}>{value}</c>')
    for j, xml in patches:
        row[j] = xml
    return "".join(row)


# =============================================================================================
# Comments (the XML openpyxl's CommentSheet writes, from templates: tests/backends/test_comment_parts.py)

_COMMENTS_HEAD = ('<comments xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><authors>'
                  "<author>sheetsync</author></authors><commentList>")
_VML_HEAD = ('<xml xmlns:ns0="urn:schemas-microsoft-com:office:office" xmlns:ns1="urn:schemas-microsoft-com:vml" '
             'xmlns:ns2="urn:schemas-microsoft-com:office:excel"><ns0:shapelayout ns1:ext="edit">'
             '<ns0:idmap ns1:ext="edit" data="{blocks}" /></ns0:shapelayout><ns1:shapetype id="_x0000_t202" '
             'coordsize="21600,21600" ns0:spt="202" path="m,l,21600r21600,l21600,xe"><ns1:stroke joinstyle="miter" />'
             '<ns1:path gradientshapeok="t" ns0:connecttype="rect" /></ns1:shapetype>')
# a hidden note box, 240 x 120 px, beside its cell (row and column 0-based)
_VML_SHAPE = ('<ns1:shape type="#_x0000_t202" style="position:absolute; margin-left:59.25pt;margin-top:1.5pt;'
              'width:240px;height:120px;z-index:1;visibility:hidden" fillcolor="#ffffe1" ns0:insetmode="auto" '
              'id="_x0000_s{id}"><ns1:fill color2="#ffffe1" /><ns1:shadow color="black" obscured="t" />'
              '<ns1:path ns0:connecttype="none" /><ns1:textbox style="mso-direction-alt:auto">'
              '<div style="text-align:left" /></ns1:textbox><ns2:ClientData ObjectType="Note"><ns2:MoveWithCells />'
              "<ns2:SizeWithCells /><ns2:AutoFill>False</ns2:AutoFill><ns2:Row>{row}</ns2:Row>"
              "<ns2:Column>{col}</ns2:Column></ns2:ClientData></ns1:shape>")


def comment_parts(notes: list[tuple[int, int, str]], blocks: list[int]) -> tuple[bytes, bytes]:
    """comments.xml and its VML (Excel shows a note only when both exist).

    The shapes are numbered from our own `blocks` of 1,024 ids (the idmap lists them), so they
    never collide with the user's comments on other sheets; a block's first two ids are left
    unused, as openpyxl leaves them.
    """
    comments = [_COMMENTS_HEAD]
    for r, c, note in notes:
        text = excel_escape(note)
        stripped = text.strip()
        space = ' xml:space="preserve"' if stripped and stripped != text else ""  # as openpyxl decides
        t = f"<t{space}>{escape(text)}</t>" if text else "<t />"
        comments.append(f'<comment ref="{col_letter(c)}{r + 1}" authorId="0" shapeId="0"><text>{t}</text></comment>')
    comments.append("</commentList></comments>")
    first_id = blocks[0] * 1024 + 2
    vml = [_VML_HEAD.format(blocks=",".join(map(str, blocks)))]
    vml += [_VML_SHAPE.format(id=first_id + k, row=r, col=c) for k, (r, c, _) in enumerate(notes)]
    vml.append("</xml>")
    return "".join(comments).encode("utf-8"), "".join(vml).encode("utf-8")


def _cfvo(where: str, value: float | None) -> str:
    """A colour scale's point: a fixed number, else the block's min, median (50th percentile) or max."""
    if value is not None:
        return f'<cfvo type="num" val="{value!r}"/>'
    return '<cfvo type="percentile" val="50"/>' if where == "median" else f'<cfvo type="{where}"/>'
