"""A chunk of a table's rows laid out as XML by a few lines of C (`rows`), for the writer.

`render.RowsRenderer` has every cell's text already (numbers written by orjson, other cells
rendered whole) and a row template; in Python it puts them together with one %-format of the
template repeated per row, which needs a Python string per cell first: most of writing a
2,000,000-cell steps tab. This C function takes each column's texts as one buffer instead
(orjson's output as it is, comma-separated; rendered cells NUL-separated) and copies them into
the template row by row, writing the row numbers itself. A number's text "null" (NaN or an
infinity) leaves its cell without a value, as the Python path does.

Only an optimisation: compiled once into sheetsync's kernel cache (`sheetsync.native`); without a
compiler `rows` returns None and the renderer takes its Python path, which writes the same
bytes (tests/backends/test_render_chunks.py compares the two).
"""

from __future__ import annotations

import ctypes

import numpy as np

from ... import native

ROW_NUMBER, CELL, VALUE = "\x01", "\x02", "\x03"  # a template's slots (XML cannot hold these)

SOURCE = r"""
#include <string.h>

/* `n` rows made from the template `tpl`: its bytes as they are, except 1 = the row's number
   (`first`, `first + 1`, ... as plain decimals), 2 = the next cell of the next column as given
   (texts separated by NUL), 3 = the next number of the next column as <v>text</v> (texts
   separated by commas; nothing for "null"). The k-th 2 or 3 of a row reads column k. Writes
   into `out` (at most `capacity` bytes); returns the length, or -1 if it would not fit or a
   column ran out. */
long render_rows(const char *tpl, long tpl_len, long first, long n, const char **cols,
                 const long *lens, long n_cols, char *out, long capacity)
{
    long at[256];
    if (n_cols > 256) return -1;
    for (long j = 0; j < n_cols; j++) at[j] = 0;
    char digits[24];
    int n_digits = 0;
    {
        char rev[24];
        long v = first;
        do { rev[n_digits++] = (char)('0' + v % 10); v /= 10; } while (v);
        for (int i = 0; i < n_digits; i++) digits[i] = rev[n_digits - 1 - i];
    }
    long o = 0;
    for (long r = 0; r < n; r++) {
        long j = 0;
        for (long t = 0; t < tpl_len; t++) {
            char c = tpl[t];
            if (c > 3 || c < 1) {  /* markup: copy the run up to the next slot */
                long u = t;
                while (u < tpl_len && (tpl[u] > 3 || tpl[u] < 1)) u++;
                if (o + (u - t) > capacity) return -1;
                memcpy(out + o, tpl + t, u - t);
                o += u - t;
                t = u - 1;
            } else if (c == 1) {
                if (o + n_digits > capacity) return -1;
                memcpy(out + o, digits, n_digits);
                o += n_digits;
            } else {
                if (j >= n_cols || at[j] > lens[j]) return -1;
                const char *s = cols[j] + at[j];
                char stop = c == 2 ? '\0' : ',';
                const char *e = memchr(s, stop, lens[j] - at[j]);
                long m = e ? e - s : lens[j] - at[j];
                at[j] += m + 1;
                j++;
                if (c == 3 && m == 4 && memcmp(s, "null", 4) == 0) continue;
                if (o + m + (c == 3 ? 7 : 0) > capacity) return -1;
                if (c == 3) { memcpy(out + o, "<v>", 3); o += 3; }
                memcpy(out + o, s, m);
                o += m;
                if (c == 3) { memcpy(out + o, "</v>", 4); o += 4; }
            }
        }
        int i = n_digits - 1;  /* the next row's number, as decimal digits */
        while (i >= 0 && digits[i] == '9') digits[i--] = '0';
        if (i >= 0) digits[i]++;
        else { memmove(digits + 1, digits, n_digits); digits[0] = '1'; n_digits++; }
    }
    return o;
}
"""


def _load():
    """The compiled renderer (`sheetsync.native`); None when there is no working C compiler."""
    c_long, pointer = ctypes.c_long, ctypes.c_void_p
    return native.function("rowwrite", SOURCE, "render_rows", c_long,
                           [ctypes.c_char_p, c_long, c_long, c_long, pointer, pointer, c_long, pointer, c_long])


def rows(template: bytes, first: int, n: int, columns: list[bytes]) -> bytes | None:
    """`n` rows of `template` numbered from `first`, the k-th CELL or VALUE slot of each row
    filled from `columns[k]`; None without the compiled renderer."""
    function = _load()
    if function is None or len(columns) > 256:
        return None
    slots = sum(template.count(s.encode()) for s in (ROW_NUMBER, CELL, VALUE))
    per_row = len(template) - slots + template.count(ROW_NUMBER.encode()) * len(str(first + n))
    capacity = n * per_row + sum(map(len, columns)) + 7 * n * template.count(VALUE.encode())
    out = np.empty(capacity, dtype=np.uint8)
    pointers = (ctypes.c_char_p * len(columns))(*columns)  # the bytes objects' own buffers, no copy
    lengths = (ctypes.c_long * len(columns))(*map(len, columns))
    written = function(template, len(template), first, n, ctypes.cast(pointers, ctypes.c_void_p),
                       ctypes.cast(lengths, ctypes.c_void_p), len(columns), out.ctypes.data, capacity)
    if written < 0:
        raise RuntimeError("rowwrite: a column's texts do not match the rows asked for")
    return out[:written].tobytes()
