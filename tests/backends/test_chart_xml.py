"""The `.xlsx` chart parts, written as text by backends/xlsx/chart_xml.py, are the XML openpyxl writes
for the same charts (openpyxl, the oracle here, builds them through its object tree), and
LibreOffice draws them."""

from __future__ import annotations

import itertools

import pytest

from sheetsync.a1 import range_ref
from sheetsync.backends.base import Chart, RangeRef, Series, col_letter
from sheetsync.backends.xlsx.chart_xml import chart_xml, drawing_rels, drawing_xml
from sheetsync.errors import BackendError

_SERIES_COLOURS = ("4472C4", "ED7D31", "70AD47", "FFC000", "5B9BD5", "A5A5A5")


def native_chart(chart: Chart):  # the oracle
    """An openpyxl line or scatter chart whose series point at `RangeRef`s."""
    from openpyxl.chart import LineChart, ScatterChart
    from openpyxl.chart.data_source import AxDataSource, NumDataSource, NumRef
    from openpyxl.chart.marker import Marker
    from openpyxl.chart.series import Series as LineSeries, SeriesLabel, XYSeries
    from openpyxl.chart.shapes import GraphicalProperties
    from openpyxl.drawing.line import LineProperties

    scatter = chart.kind == "scatter"
    if chart.kind not in ("line", "scatter"):
        raise BackendError(f"chart {chart.title!r}: kind must be 'line' or 'scatter', not {chart.kind!r}")
    native = ScatterChart() if scatter else LineChart()
    for s in chart.series:
        series = XYSeries() if scatter else LineSeries()
        series.tx = SeriesLabel(v=s.name)
        x = s.x or chart.domain
        y_source = NumDataSource(numRef=NumRef(f=_ref(s.y)))
        if scatter:
            series.yVal = y_source
            series.xVal = AxDataSource(numRef=NumRef(f=_ref(x))) if x else None
            if s.style == "line":  # a curve through the points (the model over a sorted grid)
                series.marker = Marker(symbol="none")
                series.graphicalProperties = GraphicalProperties(ln=LineProperties(w=28575))
            else:  # filled markers: an unfilled marker shows white in LibreOffice
                colour = _SERIES_COLOURS[len(native.series) % len(_SERIES_COLOURS)]
                series.marker = Marker(symbol="circle", size=5)
                series.marker.graphicalProperties = GraphicalProperties(solidFill=colour)
                series.marker.graphicalProperties.line.solidFill = colour
                series.graphicalProperties = GraphicalProperties(ln=LineProperties(noFill=True))
        else:
            series.val = y_source
            series.cat = AxDataSource(numRef=NumRef(f=_ref(x))) if x else None
            series.smooth = False
        native.series.append(series)
    native.title = _title(chart.title, 1100) if chart.title else None
    native.x_axis.title = _title(chart.x_title, 900) if chart.x_title else None
    native.y_axis.title = _title(chart.y_title, 900) if chart.y_title else None
    if len(chart.series) < 2:  # one series: its name is the title already
        native.legend = None
    else:
        native.legend.position = "b"
    native.x_axis.delete = False
    native.y_axis.delete = False
    native.x_axis.crosses = native.y_axis.crosses = "min"
    for axis, lo, hi in ((native.x_axis, chart.x_min, chart.x_max), (native.y_axis, chart.y_min, chart.y_max)):
        if lo is not None:
            axis.scaling.min = lo
        if hi is not None:
            axis.scaling.max = hi
        if chart.axis_format:
            from openpyxl.chart.data_source import NumFmt

            axis.numFmt = NumFmt(formatCode=chart.axis_format, sourceLinked=False)
    native.width = chart.width_px / 37.795275591  # openpyxl sizes charts in cm
    native.height = chart.height_px / 37.795275591
    native.anchor = f"{col_letter(chart.anchor[1])}{chart.anchor[0] + 1}"
    return native


def _title(text: str, size: int):
    """A chart or axis title at `size` hundredths of a point (not the 18 pt default that fills a
    small chart)."""
    from openpyxl.chart.text import RichText, Text as ChartText
    from openpyxl.chart.title import Title
    from openpyxl.drawing.text import CharacterProperties, Paragraph, ParagraphProperties, RegularTextRun

    props = CharacterProperties(sz=size, b=size > 1000)
    paragraph = Paragraph(pPr=ParagraphProperties(defRPr=props), r=[RegularTextRun(rPr=props, t=text)])
    return Title(tx=ChartText(rich=RichText(p=[paragraph])), overlay=False)



def _ref(r) -> str:
    return range_ref(r.tab, r.row0, r.col0, r.row1, r.col1)


def charts():
    tabs = ["thread steps", "it's & <odd>", "plain"]
    for kind, tab, n, bounds, fmt, title in itertools.product(
            ["line", "scatter"], tabs, [1, 2, 3], [(None, None, None, None), (-2.0, 20.0, 0.1234567890123456, 1e22)],
            [None, "0.00"], ["Loss, steps 1–28", "", "a & b < c"]):
        series = []
        for k in range(n):
            y = RangeRef(tab, 3, 5 + k, 148, 6 + k)
            x = RangeRef(tab, 3, 1, 148, 2) if kind == "scatter" else None
            series.append(Series(f"s{k} <&>", y, x, "line" if k == 1 else ("markers" if kind == "scatter" else None)))
        yield Chart(kind, title, series, "x ≥ 0", "" if n == 2 else "y", domain=RangeRef(tab, 3, 0, 148, 1),
                    anchor=(0, 8 + n), width_px=340 + n, height_px=240, x_min=bounds[0], x_max=bounds[1],
                    y_min=bounds[2], y_max=bounds[3], axis_format=fmt)


@pytest.mark.parametrize("chart", list(charts()), ids=lambda c: f"{c.kind}-{len(c.series)}")
def test_chart_xml_is_what_openpyxl_writes(chart):
    from openpyxl.xml.functions import tostring

    assert chart_xml(chart) == tostring(native_chart(chart)._write())


def test_drawing_and_its_rels_are_what_openpyxl_writes():
    from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
    from openpyxl.xml.functions import tostring

    some = list(charts())[:7]
    drawing = SpreadsheetDrawing()
    for k, chart in enumerate(some, start=1):
        native = native_chart(chart)
        native._id = k
        drawing.charts.append(native)
    paths = [f"xl/charts/chart{k}.xml" for k in range(1, len(some) + 1)]
    assert drawing_xml(some) == tostring(drawing._write())
    assert drawing_rels(paths) == tostring(drawing._write_rels())
