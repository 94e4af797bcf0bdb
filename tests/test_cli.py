"""The `sheetsync` command: exit codes, one line per problem, --json, never a traceback."""

import json
import os
import subprocess
import sys

import pytest

from sheetsync import cli
from sheetsync.demo import X, Y
from workbooks import rows_of, write_book


def sheetsync(*args, cwd=None):
    """The real console entry, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return subprocess.run([sys.executable, "-m", "sheetsync", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_python_m_sheetsync_runs_a_workbook_and_reports_json(tmp_path):
    book = write_book(tmp_path / "book.xlsx")
    done = sheetsync("run", str(book), "--json", "--experiment", "basic")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["action"] == "run"
    (basic,) = report["experiments"]
    assert basic["name"] == "basic" and basic["epochs_run"] == 5 and basic["start"] == "first run"
    assert basic["params"]["a"] == 2.569996469807525
    assert "basic steps" in report["tabs_written"]


def test_python_m_sheetsync_bad_input_is_one_line_per_problem_without_traceback(tmp_path):
    def edit(wb):
        wb["data"]["B7"] = "abc"
        wb["data"]["A9"] = "1,5"
    book = write_book(tmp_path / "book.xlsx", edit=edit)
    done = sheetsync("run", str(book))
    assert done.returncode == 2
    assert done.stderr.splitlines()[:2] == [
        "error: data!B7: expected a number, found 'abc'",
        "error: data!A9: a number stored as text ('1,5'); type it as a number (1.5) or format the cell as Number"]
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_help_has_examples_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "sheetsync push lab.toml --data data.csv --to book.xlsx" in out and "exit codes" in out


def _commands(parser) -> dict:
    [sub] = [a for a in parser._actions if a.dest == "command"]
    return sub.choices


def test_a_command_alone_gets_the_parser_it_gets_among_all(capsys):
    """`main` builds only the named command's parser (start-up): the same parser, help and usage
    as in the whole one, and COMMANDS names every command the whole parser has."""
    whole = cli.build_parser()
    assert tuple(_commands(whole)) == cli.COMMANDS
    for command in cli.COMMANDS:
        alone = cli.build_parser(command)
        assert command in _commands(alone) and len(_commands(alone)) <= 2  # schedule comes with scheduler
        assert alone.format_usage() == whole.format_usage()
        assert _commands(alone)[command].format_help() == _commands(whole)[command].format_help()
    with pytest.raises(SystemExit):
        cli.main(["--debug", "run", "--help"])
    assert capsys.readouterr().out == _commands(whole)["run"].format_help()


def test_a_misspelt_command_is_told_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["rn", "book.xlsx"])
    assert info.value.code == 64
    err = capsys.readouterr().err
    assert all(repr(c) in err for c in cli.COMMANDS)


@pytest.mark.parametrize("argv", [[], ["run"], ["frobnicate"], ["push", "lab.toml"]])
def test_usage_errors_exit_64(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    assert code == 64


def test_a_missing_workbook_is_a_storage_error(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.xlsx")]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.xlsx" in err


def test_not_a_workbook(capsys):
    assert cli.main(["run", "data.csv"]) == 4
    assert "not a workbook sheetsync can open" in capsys.readouterr().err


def test_ownership_clash_exits_3_with_json(tmp_path, capsys):
    from sheetsync.demo import demo_tabs

    tabs = demo_tabs()
    tabs["runs"] = [["my runs"]]
    book = write_book(tmp_path / "book.xlsx", tabs)
    assert cli.main(["run", str(book), "--json"]) == 3
    out = json.loads(capsys.readouterr().out)
    assert out == {"ok": False, "exit_code": 3, "error": "OwnershipError", "messages": [
        f"{book}: the tab 'runs' was not created by sheetsync, so it will not be overwritten; rename or "
        "delete that tab, or rename the experiment"]}


def test_an_internal_error_is_one_line_with_a_hint(monkeypatch, tmp_path, capsys):
    import sheetsync.runner

    def boom(*a, **k):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(sheetsync.runner, "run", boom)
    assert cli.main(["run", str(tmp_path / "x.xlsx")]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--debug" in err and "Traceback" not in err
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "run", str(tmp_path / "x.xlsx")])


def test_run_only_the_named_experiments_and_reset(tmp_path, capsys):
    book = write_book(tmp_path / "book.xlsx")
    assert cli.main(["run", str(book), "-e", "basic", "-e", "relu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("basic: first run; 5 epochs (5 in all), loss 374.27")
    assert "relu: first run" in out and "adam" not in out
    assert cli.main(["reset", str(book), "-e", "basic"]) == 0
    assert capsys.readouterr().out.startswith("basic: reset; 5 epochs (5 in all)")


def test_an_unknown_experiment_name_is_bad_input(tmp_path, capsys):
    book = write_book(tmp_path / "book.xlsx")
    assert cli.main(["run", str(book), "-e", "moment"]) == 2
    assert "did you mean 'momentum'" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["toml", "yaml"])
def test_push_from_an_experiment_file_and_a_csv(kind, tmp_path, capsys):
    files = {"toml": '[basic]\noptimizer = "sgd"\ninit = {a = 1, b = 1}\n\n[adam]\noptimizer = "adam"\n',
             "yaml": "basic:\n  optimizer: sgd\n  init: {a: 1, b: 1}\nadam:\n  optimizer: adam\n"}
    lab = tmp_path / f"lab.{kind}"
    lab.write_text(files[kind])
    data = tmp_path / "data.csv"
    data.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in zip(X, Y)))
    book = tmp_path / "pushed.xlsx"
    assert cli.main(["push", str(lab), "--data", str(data), "--to", str(book)]) == 0
    assert rows_of(book, "experiments")[0][:3] == ["setting", "basic", "adam"]
    assert rows_of(book, "basic steps")[3][7] == 15  # the first step's pred
    assert cli.main(["push", str(lab), "--data", str(data), "--to", str(book)]) == 0  # again: continues
    assert "continued" in capsys.readouterr().out


def test_push_refuses_to_overwrite_the_users_own_inputs(tmp_path, capsys):
    book = write_book(tmp_path / "book.xlsx")
    before = book.read_bytes()
    lab = tmp_path / "lab.toml"
    lab.write_text("[other]\nlr = 0.001\n")
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,2\n2,4\n")
    assert cli.main(["push", str(lab), "--data", str(data), "--to", str(book)]) == 3
    assert book.read_bytes() == before
    assert "holds your own inputs" in capsys.readouterr().err


def test_a_progress_bar_appears_on_a_terminal_for_long_runs(monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    bar = cli._ProgressBar(enabled=True)
    bar.DELAY = 0
    bar(10, 100)
    bar(100, 100)
    bar.close()
    assert "training" in err.getvalue() and "100/100" in err.getvalue()
    quiet = cli._ProgressBar(enabled=False)  # --json: never a bar
    quiet(1, 2)
    assert quiet.bar is None


def test_a_huge_number_in_the_data_prints_no_python_warning(tmp_path):
    book = write_book(tmp_path / "book.xlsx", {"data": [["x", "y"], [1e308, 1], [2, 3], [3, 4]],
                                               "experiments": [["setting", "basic"], ["lr", 0.1]]})
    done = sheetsync("run", str(book))
    assert done.returncode == 0, done.stderr
    assert "diverged at epoch 1" in done.stdout.lower()
    assert done.stderr == ""  # was: train.py:313: RuntimeWarning: overflow encountered in square


def test_any_python_warning_becomes_one_plain_line(monkeypatch, tmp_path, capsys):
    import warnings

    def noisy(args):
        warnings.warn("a library changed its mind\n  about something", FutureWarning)
        warnings.warn("a library changed its mind\n  about something", FutureWarning)
        return 0

    monkeypatch.setattr(cli, "_dispatch", noisy)
    assert cli.main(["run", str(tmp_path / "x.xlsx")]) == 0
    assert capsys.readouterr().err == "warning: a library changed its mind about something\n"


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    book = write_book(tmp_path / "book.xlsx")
    assert sheetsync("run", str(book), "-e", "basic").returncode == 0
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for args in (["trace", str(book), "basic steps!M30", "--json"], ["run", str(book), "--json"]):
        # `… | head -0`: the pipe's reader is gone before the first write
        proc = subprocess.Popen([sys.executable, "-m", "sheetsync", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=120) == cli.EXIT_PIPE_CLOSED, err
        # was: "sheetsync: internal error: BrokenPipeError"; a slow run may report --json progress
        assert all(line.startswith('{"progress": ') for line in err.splitlines()), err


def test_a_push_with_bad_inputs_writes_no_file_and_says_so(tmp_path, capsys):
    lab = tmp_path / "lab.toml"
    lab.write_text("[basic]\nlr = 0.001\n")
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,2\n2,abc\n3,\n")
    book = tmp_path / "new.xlsx"
    assert cli.main(["push", str(lab), "--data", str(data), "--to", str(book)]) == 2
    assert not book.exists()
    assert capsys.readouterr().err.splitlines() == [
        f"error: {data}:3: column y: expected a number, found 'abc'",
        f"error: {data}:4: column y: expected a number, found an empty cell",
        "2 problems; nothing was written"]


def test_a_run_whose_carried_values_overflow_still_writes_and_says_why_there_is_no_map(tmp_path, capsys):
    book = write_book(tmp_path / "book.xlsx", {"data": [["x", "y"], [1e160, 1], [2, 1e160], [3, 4]],
                                               "experiments": [["setting", "e"], ["optimizer", "adam"]]})
    assert cli.main(["run", str(book)]) == 0  # was: 70, internal error: FormulaModeError
    assert cli.main(["run", str(book)]) == 0  # continuing from the carried inf
    err = capsys.readouterr().err
    assert "internal error" not in err
    assert rows_of(book, "e map")[0][0].startswith("e: no precedents map for this Run: a value it carries is not a finite")


def test_run_a_second_pair_of_input_tabs(tmp_path, capsys):
    """The outputs lab's penguins live in their own data and experiments tabs: the CLI runs them."""
    from sheetsync.labs.outputs import RUNS, write_outputs_lab

    book = tmp_path / "lab.xlsx"
    write_outputs_lab(book)
    (data_tab, experiments_tab) = RUNS[1]
    assert cli.main(["run", str(book), "--data-tab", data_tab, "--experiments-tab", experiments_tab, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in report["experiments"]] == ["penguins"]
    assert report["experiments"][0]["epochs_run"] > 0 and "penguins epochs" in report["tabs_written"]
    assert "toy epochs" not in report["tabs_written"]  # the first pair was not run


def test_a_missing_data_tab_is_one_problem_naming_it(tmp_path, capsys):
    """Without readable data the model's parameters are unknown: the experiments' init names are
    not checked against a guess (which would add one false problem per init cell)."""
    from sheetsync.labs.outputs import write_outputs_lab

    book = tmp_path / "lab.xlsx"
    write_outputs_lab(book)
    assert cli.main(["run", str(book), "--data-tab", "nope"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: nope: missing tab 'nope'; expected headers x and y (or x1, x2, … and y) in row 1"]
