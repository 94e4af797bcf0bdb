"""`sheetsync trace` from a cell of `NAME epochs`: the steps rows of its epoch, or the carried value."""

import functools

import openpyxl
import pytest

from sheetsync.cli import main
from sheetsync.demo import write_demo
from sheetsync.errors import SheetsyncError
from sheetsync.layout import epochs as epochs_layout
from sheetsync.layout import steps as steps_layout
from sheetsync.trace import parse_cell, trace


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The demo, Run twice: epochs 1-5 from the first Run, 6-10 from this one."""
    path = tmp_path_factory.mktemp("trace_epochs") / "demo.xlsx"
    write_demo(path)
    assert main(["run", str(path)]) == 0
    assert main(["run", str(path)]) == 0
    return path


def epochs_cell(book, name, column, epoch):
    """The address of `column` for `epoch`, found from the header row (wherever it is)."""
    ws = openpyxl.load_workbook(book, read_only=True)[f"{name} epochs"]
    header = [c.value for c in next(ws.iter_rows(min_row=epochs_layout.HEADER_ROW + 1,
                                                  max_row=epochs_layout.HEADER_ROW + 1))]
    letter = openpyxl.utils.get_column_letter(header.index(column) + 1)
    return f"{name} epochs!{letter}{epochs_layout.HEADER_ROW + 1 + epoch}"


@functools.lru_cache(maxsize=2)
def loaded(path: str, mtime_ns: int):
    """The workbook's values, loaded once per version of the file (a full load takes a second or
    more; a trace's 29 children would load it 29 times)."""
    return openpyxl.load_workbook(path, data_only=True)


def steps_record(book, name, address):
    """The steps row `address` sits in, as {header: value}."""
    wb = loaded(str(book), book.stat().st_mtime_ns)
    tab, letters, row = parse_cell(address)
    ws = wb[tab]
    header = [c.value for c in ws[steps_layout.HEADER_ROW + 1]]
    record = dict(zip(header, [c.value for c in ws[row]]))
    return record, header[openpyxl.utils.column_index_from_string(letters) - 1], ws[f"{letters}{row}"].value


def test_an_epochs_loss_is_the_mean_of_that_epochs_row_losses(book):
    result = trace(str(book), epochs_cell(book, "basic", "loss", 8), depth=1)
    root = result["tree"]
    assert root["formula"].startswith("=('basic steps'!") and root["formula"].endswith(")/29")  # added in order
    children = root["children"]
    assert len(children) == 29  # one per data row of the demo
    for child in children:
        record, column, value = steps_record(book, "basic", child["cell"])
        assert (record["epoch"], column, value) == (8, "loss", child["value"])
    assert root["value"] == pytest.approx(sum(c["value"] for c in children) / 29, rel=1e-12)


@pytest.mark.parametrize("name, source", [("basic", "a"), ("relu", "new a")])
def test_an_epochs_parameter_is_the_epochs_last_update_or_graddescs_carried_input(book, name, source):
    result = trace(str(book), epochs_cell(book, name, "a", 7))
    (child,) = result["tree"]["children"]
    record, column, value = steps_record(book, name, child["cell"])
    assert (record["epoch"], column) == (7, source)
    assert child["value"] == value == result["tree"]["value"]
    assert child.get("children")  # and on down to the inputs, as a steps cell's trace


def test_epochs_of_an_earlier_run_are_the_carried_value(book):
    result = trace(str(book), epochs_cell(book, "basic", "loss", 3))
    (child,) = result["tree"]["children"]
    assert child["kind"] == "carried" and "earlier Run" in child["label"]
    assert child["value"] == result["tree"]["value"]


def test_the_lr_column_reads_the_setting_and_the_epoch_column_is_a_value(book):
    (setting,) = trace(str(book), epochs_cell(book, "basic", "lr", 9))["tree"]["children"]
    assert (setting["cell"], setting["kind"], setting["value"]) == ("experiments!B5", "setting", 0.0001)
    epoch = trace(str(book), epochs_cell(book, "basic", "epoch", 9))["tree"]
    assert epoch["value"] == 9 and epoch["kind"] == "value" and "children" not in epoch


def test_epochs_cells_outside_the_table_or_asked_for_dependents_are_refused(book, capsys):
    with pytest.raises(SheetsyncError, match="outside the epochs table"):
        trace(str(book), "basic epochs!B500")
    with pytest.raises(SheetsyncError, match="--dependents starts from a cell of a 'NAME steps' tab"):
        trace(str(book), epochs_cell(book, "basic", "loss", 8), dependents=True)
    assert main(["trace", str(book), epochs_cell(book, "basic", "loss", 8), "--depth", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("'basic epochs'!") and "=('basic steps'!" in out[0] and len(out) == 30
