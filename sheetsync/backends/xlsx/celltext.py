"""Cell text both ways: Excel's ``_xHHHH_`` escapes for characters XML cannot hold, and numbers
as cells hold them."""

from __future__ import annotations

import re

from ...a1 import CONTROL_CHARS as _ILLEGAL_XML  # what XML 1.0 cannot hold, and \r

_ESCAPED_LOOKALIKE = re.compile(r"_(x[0-9A-Fa-f]{4}_)")


# xml.sax.saxutils has these two, but importing it imports urllib.request, http.client and email
# (~30 ms of a run's start-up); the same text as its functions give (tests/backends/test_celltext.py).
def escape(text: str) -> str:
    """Text as XML character data: &, < and > escaped."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


_ATTRIBUTE_ESCAPES = str.maketrans({"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def quoteattr(text: str) -> str:
    """Text as a quoted XML attribute value, quotes included: double quotes unless the text holds
    a double quote and no single one."""
    text = escape(text).translate(_ATTRIBUTE_ESCAPES)
    if '"' not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace('"', "&quot;") + '"'


def xml_text(text: str) -> str:
    """Text as cell XML content: escaped, with control characters in Excel's _xHHHH_ form."""
    return escape(excel_escape(text))


def excel_escape(text: str) -> str:
    """Characters XML 1.0 cannot hold, as Excel writes them (_xHHHH_); the inverse of
    `excel_unescape`, so text that merely looks like an escape is protected too."""
    if "_x" in text:
        text = _ESCAPED_LOOKALIKE.sub(r"_x005F_\1", text)
    if _ILLEGAL_XML.search(text):
        text = _ILLEGAL_XML.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)
    return text

_EXCEL_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def excel_unescape(text: str) -> str:
    """Excel writes characters XML cannot hold as _xHHHH_ (and a literal "_x" as _x005F_x)."""
    if "_x" not in text:
        return text
    return _EXCEL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


_NUMBER_CHARS = "0123456789.eE+-"


def _number(text: str) -> int | float:
    """A cell's number; strict: what float() also takes (1_000, inf, nan, spaces) is refused."""
    if text.strip(_NUMBER_CHARS):
        raise ValueError(text)
    number = float(text)
    if number.is_integer() and text.lstrip("-").isdigit():
        return int(text)
    return number
