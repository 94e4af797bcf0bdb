"""Our XML escaping is xml.sax.saxutils' (which a run does not import: it pulls in urllib)."""

from xml.sax import saxutils

import pytest

from sheetsync.backends.xlsx.celltext import escape, quoteattr

TEXTS = ["", "plain", "a & b", "<tag>", "x > y", "&amp;", 'say "hi"', "it's", "both \" and '", "tab\there",
         "line\nbreak", "cr\rlf", "ünïcode ✓", "'\"&<>\n\r\t"]


@pytest.mark.parametrize("text", TEXTS)
def test_escaping_is_saxutils(text):
    assert escape(text) == saxutils.escape(text)
    assert quoteattr(text) == saxutils.quoteattr(text)
