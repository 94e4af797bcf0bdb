"""DrawingML for the `.xlsx` backend's charts and their drawing part, written as text.

A run writes a few dozen charts; building each through openpyxl's object tree cost ~5 ms (more
than the training of a small sheet). These templates write the same XML openpyxl writes for
the charts sheetsync makes — tests/backends/test_chart_xml.py holds them to it, byte for byte,
with openpyxl as the oracle — in a few microseconds.
"""

from __future__ import annotations


from ...a1 import range_ref
from ..base import Chart, RangeRef
from .celltext import escape, quoteattr

SERIES_COLOURS = ("4472C4", "ED7D31", "70AD47", "FFC000", "5B9BD5", "A5A5A5")
EMU_PER_PX = 9525  # an English Metric Unit is 1/914400 inch; 96 px per inch
NS = ('xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
      'xmlns="http://schemas.openxmlformats.org/drawingml/2006/chart"')
SOLID = '<a:prstDash val="solid" />'


def ref(r: RangeRef) -> str:
    """'tab'!$B$4:$B$148, as openpyxl quotes it."""
    return range_ref(r.tab, r.row0, r.col0, r.row1, r.col1, collapse=False)


def _title(text: str, size: int) -> str:
    bold = "1" if size > 1000 else "0"
    return (f'<title><tx><rich><a:bodyPr /><a:p><a:pPr><a:defRPr sz="{size}" b="{bold}" /></a:pPr>'
            f'<a:r><a:rPr sz="{size}" b="{bold}" /><a:t>{escape(text)}</a:t></a:r></a:p></rich></tx>'
            '<overlay val="0" /></title>')


def _scaling(lo: float | None, hi: float | None) -> str:
    bounds = (f'<max val="{hi:.16g}" />' if hi is not None else "") + (f'<min val="{lo:.16g}" />' if lo is not None else "")
    return f'<scaling><orientation val="minMax" />{bounds}</scaling>'


def _axis(kind: str, ax_id: int, cross: int, title: str, lo, hi, fmt: str | None, grid: bool, tail: str = "") -> str:
    out = f'<{kind}><axId val="{ax_id}" />{_scaling(lo, hi)}<delete val="0" /><axPos val="l" />'
    out += "<majorGridlines />" if grid else ""
    out += _title(title, 900) if title else ""
    out += f'<numFmt formatCode={quoteattr(fmt)} sourceLinked="0" />' if fmt else ""
    # crossing at the other axis's minimum keeps the tick labels at the edge when data run below 0
    # (log10 of a small loss, a negative input) instead of through the middle of the plot
    return out + (f'<majorTickMark val="none" /><minorTickMark val="none" /><crossAx val="{cross}" />'
                  f'<crosses val="min" />{tail}'
                  f'</{kind}>')


def _num_ref(tag: str, r: RangeRef | None) -> str:
    return f"<{tag}><numRef><f>{escape(ref(r))}</f></numRef></{tag}>" if r is not None else ""


def chart_xml(chart: Chart) -> bytes:
    """The chart part (xl/charts/chartN.xml) of a line or scatter chart."""
    scatter = chart.kind == "scatter"
    series = []
    for i, s in enumerate(chart.series):
        head = f'<ser><idx val="{i}" /><order val="{i}" /><tx><v>{escape(s.name)}</v></tx>'
        x = s.x or chart.domain
        if scatter and s.style != "line":  # filled markers: an unfilled marker shows white in LibreOffice
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            fill = f'<a:solidFill><a:srgbClr val="{colour}" /></a:solidFill>'
            look = (f'<spPr><a:ln><a:noFill />{SOLID}</a:ln></spPr><marker><symbol val="circle" /><size val="5" />'
                    f'<spPr>{fill}<a:ln>{fill}{SOLID}</a:ln></spPr></marker>')
        else:
            width = ' w="28575"' if scatter else ""
            look = (f'<spPr><a:ln{width}>{SOLID}</a:ln></spPr>'
                    f'<marker><symbol val="none" /><spPr><a:ln>{SOLID}</a:ln></spPr></marker>')
        if scatter:
            data = _num_ref("xVal", x) + _num_ref("yVal", s.y)
        else:
            data = _num_ref("cat", x) + _num_ref("val", s.y) + '<smooth val="0" />'
        series.append(head + look + data + "</ser>")
    if scatter:
        plot = (f'<scatterChart>{"".join(series)}<axId val="10" /><axId val="20" /></scatterChart>'
                + _axis("valAx", 10, 20, chart.x_title, chart.x_min, chart.x_max, chart.axis_format, True)
                + _axis("valAx", 20, 10, chart.y_title, chart.y_min, chart.y_max, chart.axis_format, True))
    else:
        plot = (f'<lineChart><grouping val="standard" />{"".join(series)}<axId val="10" /><axId val="100" />'
                "</lineChart>"
                + _axis("catAx", 10, 100, chart.x_title, chart.x_min, chart.x_max, chart.axis_format, False,
                        '<lblOffset val="100" />')
                + _axis("valAx", 100, 10, chart.y_title, chart.y_min, chart.y_max, chart.axis_format, True))
    title = _title(chart.title, 1100) if chart.title else ""
    legend = '<legend><legendPos val="b" /></legend>' if len(chart.series) > 1 else ""
    return (f"<chartSpace {NS}><chart>{title}<plotArea>{plot}</plotArea>{legend}"
            '<plotVisOnly val="1" /><dispBlanksAs val="gap" /></chart></chartSpace>').encode()


def drawing_xml(charts: list[Chart]) -> bytes:
    """The drawing part anchoring `charts` (the k-th points at relationship rId<k>)."""
    anchors = []
    for k, chart in enumerate(charts, start=1):
        row, col = chart.anchor
        cx, cy = _emu(chart.width_px), _emu(chart.height_px)
        anchors.append(
            f"<oneCellAnchor><from><col>{col}</col><colOff>0</colOff><row>{row}</row><rowOff>0</rowOff></from>"
            f'<ext cx="{cx}" cy="{cy}" /><graphicFrame><nvGraphicFramePr><cNvPr id="{k}" name="Chart {k}" />'
            '<cNvGraphicFramePr /></nvGraphicFramePr><xfrm /><a:graphic>'
            '<a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/chart">'
            f'<c:chart r:id="rId{k}" /></a:graphicData></a:graphic></graphicFrame><clientData /></oneCellAnchor>')
    return ('<wsDr xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
            'xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" '
            'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
            'xmlns="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing">'
            + "".join(anchors) + "</wsDr>").encode()


def drawing_rels(chart_parts: list[str]) -> bytes:
    """The drawing's relationships: rId<k> -> the k-th chart part (absolute, as openpyxl writes)."""
    rels = "".join('<Relationship Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/chart" '
                   f'Target="/{part}" Id="rId{k}" />' for k, part in enumerate(chart_parts, start=1))
    return f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>'.encode()


def _emu(px: int) -> int:
    # openpyxl sizes charts in cm (px / 37.795275591) and converts back to EMU with int(): the
    # same float path gives the same integer
    return int(px / 37.795275591 * 360000)
