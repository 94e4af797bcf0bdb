"""Long stretches of plain number rows read by a few lines of C (`number_rows`), for big tabs.

`SheetScan` reads a stretch of rows of one shape with a regular expression and converts each
column's texts to numbers; for a data tab of a million rows that costs several times the
inflating. For the commonest big shape — numbers in columns A, B, ..., rows numbered in
sequence, the shape's own markup between them — this C scanner walks the text once,
checking every byte against the shape's template and converting each number as `_number` does
(exactly: integers as integers, the rest by the C library's correctly rounded `strtod`). It
stops at the first byte it cannot vouch for and says how far it got; `SheetScan` reads the rest
as before, so whatever the scanner leaves (odd numbers, other rows, bad cells) gets the same
values and the same errors as ever (tests/backends/test_xlsx_rowscan.py).

Only an optimisation, used for big chunks of text only (`MIN_BYTES`): it is compiled once by the
system C compiler into sheetsync's kernel cache (`sheetsync.native`); without a compiler, or if
it fails to build, `number_rows` returns None.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ... import native

MIN_BYTES = 1 << 20  # a chunk of text worth the call (and, once per machine, the compile)
ROW_NUMBER, DIGITS, NUMBER = "\x01", "\x02", "\x03"  # a template's slots (XML cannot hold these)

SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIECES 256

/* Rows of text `s` (from `pos` on) made as the template `tpl` says: its bytes as they are,
   except 1 = the row's number (`first`, `first + 1`, ... written as plain decimals), 2 = any
   digits (a cell's row in its reference, which readers ignore), 3 = a number: the characters
   0-9 . e E + - with nothing else, read as Python's float() reads it; integers (an optional
   minus and up to 18 digits) also as int64, flagged in `is_int`. Each row may follow white
   space. Stops before the first row that is not exactly so, or after `max_rows` rows;
   returns the number of rows read and sets *end to the offset after the last one. */
long number_rows(const char *s, long pos, long len, const char *tpl, long tpl_len, long first,
                 long max_rows, double *num, int64_t *whole, unsigned char *is_int, long *end)
{
    long start[MAX_PIECES], size[MAX_PIECES];  /* the template as pieces: markup runs and slots */
    int pieces = 0;
    for (long t = 0; t < tpl_len; pieces++) {
        if (pieces == MAX_PIECES) { *end = pos; return 0; }
        start[pieces] = t;
        if (tpl[t] >= 1 && tpl[t] <= 3) { size[pieces] = 0; t++; continue; }
        long u = t;
        while (u < tpl_len && !(tpl[u] >= 1 && tpl[u] <= 3)) u++;
        size[pieces] = u - t;
        t = u;
    }
    long n = 0, k = 0;  /* rows read, numbers read */
    char text[64], digits[24];
    int n_digits = 0;
    long next = first;  /* the row number `digits` holds */
    {
        char rev[24];
        long v = next;
        do { rev[n_digits++] = (char)('0' + v % 10); v /= 10; } while (v);
        for (int i = 0; i < n_digits; i++) digits[i] = rev[n_digits - 1 - i];
    }
    *end = pos;
    while (n < max_rows) {
        long p = pos, kk = k;
        while (p < len && (s[p] == ' ' || s[p] == '\t' || s[p] == '\r' || s[p] == '\n')) p++;
        int ok = 1;
        for (int i = 0; ok && i < pieces; i++) {
            if (size[i]) {
                if (p + size[i] > len || memcmp(s + p, tpl + start[i], size[i]) != 0) ok = 0;
                else p += size[i];
                continue;
            }
            char c = tpl[start[i]];
            if (c == 1) {
                if (p + n_digits > len || memcmp(s + p, digits, n_digits) != 0) ok = 0; else p += n_digits;
            } else if (c == 2) {
                long q = p;
                while (q < len && s[q] >= '0' && s[q] <= '9') q++;
                if (q == p) ok = 0; else p = q;
            } else {
                long q = p;
                while (q < len && q - p < 63 && ((s[q] >= '0' && s[q] <= '9') || s[q] == '.' || s[q] == 'e'
                       || s[q] == 'E' || s[q] == '+' || s[q] == '-')) q++;
                long m = q - p;
                if (m == 0 || m >= 63) { ok = 0; break; }
                memcpy(text, s + p, m);
                text[m] = 0;
                int neg = text[0] == '-';
                long d = 0;
                while (neg + d < m && text[neg + d] >= '0' && text[neg + d] <= '9') d++;
                if (d > 0 && neg + d == m) {  /* an integer: Python's int(text) */
                    if (d > 18) { ok = 0; break; }
                    int64_t w = 0;
                    for (long j = neg; j < m; j++) w = w * 10 + (text[j] - '0');
                    whole[kk] = neg ? -w : w;
                    num[kk] = (double)whole[kk];
                    is_int[kk] = 1;
                } else {
                    char *stop;
                    double x = strtod(text, &stop);
                    if (stop != text + m) { ok = 0; break; }
                    num[kk] = x;
                    whole[kk] = 0;
                    is_int[kk] = 0;
                }
                kk++;
                p = q;
            }
        }
        if (!ok) break;
        n++;
        k = kk;
        pos = p;
        *end = pos;
        next++;  /* the next row's number, as decimal digits */
        int j = n_digits - 1;
        while (j >= 0 && digits[j] == '9') digits[j--] = '0';
        if (j >= 0) digits[j]++;
        else { memmove(digits + 1, digits, n_digits); digits[0] = '1'; n_digits++; }
    }
    return n;
}
"""

def _load():
    """The compiled scanner (`sheetsync.native`); None when there is no working C compiler."""
    c_long, pointer = ctypes.c_long, ctypes.c_void_p
    return native.function("rowscan", SOURCE, "number_rows", c_long,
                           [ctypes.c_char_p, c_long, c_long, ctypes.c_char_p, c_long, c_long, c_long,
                            pointer, pointer, pointer, ctypes.POINTER(c_long)])


def template(text: str) -> bytes | None:
    """A row's template for the scanner (markup with the slots `ROW_NUMBER`, `DIGITS` and
    `NUMBER`) as bytes; None if its markup is not plain ASCII or holds a slot character."""
    markup = text.replace(ROW_NUMBER, "", 1).replace(DIGITS, "").replace(NUMBER, "")
    if not markup.isascii() or any(ch in markup for ch in ROW_NUMBER + DIGITS + NUMBER):
        return None
    return text.encode("ascii")


def number_rows(data: bytes, start: int, tpl: bytes, first: int, max_rows: int,
                n_cells: int) -> tuple[list[list[int | float]], int] | None:
    """The rows of `data` from `start` on made as `tpl` says, numbered `first`, `first + 1`,
    ... (at most `max_rows`), each a list of its numbers as `_number` reads them, and the
    offset after the last; None without the compiled scanner."""
    function = _load()
    if function is None:
        return None
    capacity = max(0, min(max_rows, (len(data) - start) // max(1, len(tpl))))  # no row is shorter than its template
    num = np.empty(capacity * n_cells, dtype=np.float64)
    whole = np.empty(capacity * n_cells, dtype=np.int64)
    is_int = np.empty(capacity * n_cells, dtype=np.uint8)
    end = ctypes.c_long(start)
    n = function(data, start, len(data), tpl, len(tpl), first, capacity,
                 num.ctypes.data, whole.ctypes.data, is_int.ctypes.data, ctypes.byref(end))
    count = n * n_cells
    ints = is_int[:count].view(bool)
    if not ints.any():
        return num[:count].reshape(n, n_cells).tolist(), end.value
    values = num[:count].astype(object)  # Python floats
    values[ints] = whole[:count][ints].astype(object)  # Python ints, as int(text)
    return values.reshape(n, n_cells).tolist(), end.value
