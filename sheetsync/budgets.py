"""The documented limits of one run, in one place.

Parsing refuses a run that would exceed the compute or history budgets before anything is
trained (a billion epochs is refused at once, never attempted); the layout samples step rows to
stay inside the cell budget. The README's "Limits" section quotes these numbers.
"""

from __future__ import annotations

from .a1 import MAX_COLUMNS, MAX_ROWS

# Input columns (x1 … xk). The compiled loop grows with inputs × parameters (numeric gradients
# recompute the prediction once per parameter): 100 inputs compile in seconds, 200 in a minute.
MAX_INPUTS = 100

MIN_DATA_ROWS = 2  # one row gives no SGD update at all in the workbook's scheme
MAX_DATA_ROWS = 1_000_000  # a spreadsheet tab holds 1,048,576 rows

# Row-steps x parameters, summed over the experiments of one run. About a minute of engine time
# on a laptop; larger runs belong in the Python API.
COMPUTE_BUDGET = 500_000_000

# Cells written by one run (all tabs together). A Google spreadsheet holds 10 million cells in
# all, so one run never takes more than a fifth of that. Step rows above this are sampled.
CELL_BUDGET = 2_000_000
SPREADSHEET_CELLS = 10_000_000  # Google's limit for a whole spreadsheet: the other tabs count too

# `NAME epochs` is never sampled: its history (all runs so far plus this one), over all
# experiments, must fit here or the run is refused.
EPOCHS_CELL_BUDGET = 1_000_000

# Cells of one `NAME epochs` row besides the parameters: epoch, loss, lr and diagnostics.
EPOCHS_FIXED_COLS = 6

# Memory held by the steps train() records: step lines × columns × 8 bytes, over the
# experiments of one run, checked before training. A run whose lines are over the cell budget
# records only the lines written (engine/record.py: `held_bytes` is what it holds); a run
# recorded whole holds a numpy float per cell, once.
MEMORY_BUDGET = 1 << 30  # bytes of recorded steps

# Reading a workbook: a few kilobytes of zip can inflate to gigabytes, and a cell can claim any
# address. These bound what any file can cost; a file beyond them is refused as corrupt.
SHEET_ROWS, SHEET_COLS = MAX_ROWS, MAX_COLUMNS  # a tab's rows and columns (A..XFD)
PART_BYTES = 256 << 20  # inflated size of one part read (a worksheet, the shared strings)
WHOLE_PART_BYTES = 8 << 20  # ... of a part parsed whole (workbook.xml, styles, .rels): a tree of
# dense XML takes ~20 bytes of memory per byte; Excel's 64,000 cell formats fit in ~7 MB
INFLATED_BYTES = 1 << 30  # all the parts one read or one write inflates, together
ROW_XML_BYTES = 8 << 20  # XML of one row (or between two elements) of a worksheet
READ_CELLS = 20_000_000  # cells held from the tabs read (rows × columns up to the last value)
