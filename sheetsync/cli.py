"""The `sheetsync` command: a thin shell over `runner.run`, `push.push` and the demo.

Exit codes (also in the README):

    0   done (a diverged run is a result, not an error)
    1   another sheetsync error
    2   bad input: the sheet, an experiment file or a setting (every problem is listed)
    3   a tab sheetsync would write belongs to you: nothing was written
    4   the workbook or spreadsheet could not be read or written
    64  bad command line
    70  internal error (a bug: rerun with --debug and report the traceback)
    130 interrupted
    141 stdout closed early (`| head`): stopped quietly

Errors print one line per problem on stderr, never a traceback (unless --debug).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

from .a1 import DATA_TAB, EXPERIMENTS_TAB
from .errors import InputError, SheetsyncError

EXIT_USAGE = 64
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141  # what a shell reports for a command stopped by SIGPIPE (`| head`)

EXAMPLES = """\
examples:
  sheetsync demo                              write sheetsync-demo.xlsx and run it
  sheetsync demo --lab embeddings             fast.ai's collab_filter sheet, trained step by step
  sheetsync run book.xlsx                     Run: 'epochs' more epochs for every experiment
  sheetsync run book.xlsx --experiment basic  only the experiment named basic
  sheetsync reset book.xlsx                   start every experiment again from its init values
  sheetsync run book.xlsx --json              a JSON report on stdout, for scripts
  sheetsync push lab.toml --data data.csv --to book.xlsx
  sheetsync run book.xlsx --formulas          write per-row formulas instead of numbers
  sheetsync run book.xlsx --data-tab "penguin data" --experiments-tab "penguin experiments"
  sheetsync trace book.xlsx "basic steps!M17" where that number comes from, down to the inputs
  sheetsync trace book.xlsx "basic steps!F5" --dependents --depth 2

exit codes: 0 ok, 2 bad input, 3 a tab is yours (nothing written), 4 storage, 64 usage,
70 internal error (rerun with --debug), 141 stdout closed early
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors get their own documented exit code
        self.print_usage(sys.stderr)
        print(f"sheetsync: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


# Every command, as `build_parser` adds them (tests/test_cli.py holds the two to each other).
COMMANDS = ("demo", "run", "reset", "push", "serve", "trace", "schedule", "scheduler")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; given a `command` of COMMANDS, with that command's parser
    alone (each the same as in the whole one): `sheetsync run` builds one subparser, not all
    of them (~2.5 ms of a fresh run). Help, or a misspelt command, needs them all."""

    def wanted(name: str) -> bool:
        return command is None or command == name or (command == "scheduler" and name == "schedule")

    parser = _Parser(prog="sheetsync", description="Turn a spreadsheet into a gradient-descent lab: "
                     "every SGD step a row, exact to the fast.ai workbook, PyTorch and fastai.",
                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    if wanted("demo"):
        _add_demo(sub)

    for name, doc in (("run", "Run: continue every experiment from its saved state"),
                      ("reset", "Reset: start experiments again from their init values")):
        if not wanted(name):
            continue
        p = sub.add_parser(name, help=doc, description=doc)
        p.add_argument("target", help="a workbook path ending in .xlsx/.xlsm (or a Google Sheet URL/key)")
        p.add_argument("--experiment", "-e", action="append", metavar="NAME",
                       help="only this experiment (repeatable)")
        p.add_argument("--formulas", action="store_true",
                       help="formula mode: write each step's formulas, so the spreadsheet recomputes them")
        p.add_argument("--data-tab", default=DATA_TAB, metavar="TAB",
                       help=f"the tab holding the data (default: {DATA_TAB})")
        p.add_argument("--experiments-tab", default=EXPERIMENTS_TAB, metavar="TAB",
                       help=f"the tab holding the experiments' settings (default: {EXPERIMENTS_TAB})")
        _force(p)
        _common(p)

    if wanted("push"):
        push = sub.add_parser("push", help="turn an experiment file and a CSV into a workbook, then run it")
        push.add_argument("experiment_file", help="TOML or YAML: one table of settings per experiment")
        push.add_argument("--data", required=True, metavar="CSV", help="CSV with headers x,y or x1,x2,...,y")
        push.add_argument("--to", required=True, dest="target", metavar="TARGET", help="workbook (new or existing)")
        _force(push)
        _common(push)
    if wanted("serve"):
        serve = sub.add_parser("serve", help="serve the HTTP API (local mode: the workbooks of a folder)")
        serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
        serve.add_argument("--port", type=int, default=8750, help="port (default: 8750)")
        serve.add_argument("--folder", help="folder of .xlsx workbooks to serve (default: the current folder)")
        serve.add_argument("--token", help="the local token callers present (default: a new random one, printed)")
    if wanted("trace"):
        trace = sub.add_parser("trace", help="the precedents of a cell, down to the data and settings")
        trace.add_argument("target", help="a workbook path or a Google Sheet URL/key")
        trace.add_argument("cell", help="a cell of a steps or epochs tab, e.g. \"basic steps!M17\"")
        trace.add_argument("--depth", type=int, default=None, help="levels to follow (default: to the inputs)")
        trace.add_argument("--dependents", action="store_true", help="follow the cells that read it instead")
        _common(trace)
    if wanted("schedule"):
        from .schedule.cli import add_parsers

        add_parsers(sub)  # schedule add|list|remove|run-now, scheduler
    return parser


def _add_demo(sub) -> None:
    demo = sub.add_parser("demo", help="write the example workbook and run it (offline, seconds)")
    demo.add_argument("path", nargs="?", default=None, help="where to write it (default: sheetsync-demo.xlsx)")
    demo.add_argument("--force", action="store_true", help="replace an existing file at PATH")
    demo.add_argument("--json", action="store_true", help="print a JSON report")
    from .demo import LABS

    demo.add_argument("--lab", choices=LABS, default=LABS[0],
                      help="graddesc: the gradient-descent workbook (default); outputs: softmax, "
                           "cross-entropy and focal loss (fast.ai's entropy sheets) and two trained classifiers; "
                           "embeddings: collaborative filtering, fast.ai's collab_filter sheet trained step by step")


def _force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="write even while the workbook is open in LibreOffice or Excel (their next save drops sheetsync's tabs)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout (no progress bar)")
    p.add_argument("--credentials", metavar="PATH", help="Google service-account file (Google Sheets only)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # the command: the first word that is no option (the only global option, --debug, takes no value)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    stdout = sys.stdout = _Stdout(sys.stdout)
    try:
        # --debug leaves warnings to Python, raw; else they are collected and shown plainly
        with contextlib.nullcontext([]) if args.debug else warnings.catch_warnings(record=True) as caught:
            try:
                code = _dispatch(args)
                sys.stdout.flush()  # a closed pipe shows here, not at exit
                return code
            finally:
                _show_warnings(caught)
    except SheetsyncError as e:
        return _fail(e, args)
    except KeyboardInterrupt:
        print("sheetsync: interrupted; the workbook was not changed by the unfinished write", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        if not stdout.reader_gone:
            return _internal(args)
        # the reader of stdout left (`sheetsync trace … --json | head -1`): stop quietly, the
        # Python docs' way: point stdout at devnull so the flush at exit cannot fail again
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass  # stdout is no file (a test's capture): nothing is flushed at exit
        return EXIT_PIPE_CLOSED
    except Exception:  # a bug: one line, never a traceback unless asked
        return _internal(args)
    finally:
        sys.stdout = stdout.stream


def _internal(args) -> int:
    if args.debug:
        raise
    e = sys.exc_info()[1]
    print(f"sheetsync: internal error: {type(e).__name__}: {e}. Rerun with --debug for the "
          "traceback, and please report it.", file=sys.stderr)
    return EXIT_INTERNAL


class _Stdout:
    """sys.stdout, noting whether a write failed because its reader went away."""

    def __init__(self, stream):
        self.stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self.reader_gone = True
            raise

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            self.reader_gone = True
            raise

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _show_warnings(caught: list) -> None:
    """Python warnings (numpy's overflow, a library's notice) as one plain line each: never the
    raw 'file.py:313: RuntimeWarning' with a source line."""
    shown = set()
    for w in list(caught):
        text = " ".join(str(w.message).split())
        if text not in shown:
            shown.add(text)
            print(f"warning: {text}", file=sys.stderr)


def _dispatch(args) -> int:
    if args.command in ("schedule", "scheduler"):
        from .schedule.cli import dispatch

        return dispatch(args)
    if args.command == "trace":
        from .trace import render_text, trace

        result = trace(args.target, args.cell, depth=args.depth, dependents=args.dependents,
                       credentials=args.credentials)
        print(json.dumps(result, indent=2) if args.json else render_text(result))
        return 0
    if args.command == "serve":
        from sheetsync.server.serve import serve

        return serve(args.host, args.port, args.folder, args.token)
    progress = _ProgressBar(enabled=not args.json, as_json=args.json)
    try:
        if args.command == "demo":
            return _demo(args, progress)
        if args.command == "push":
            from .push import push

            report = push(args.experiment_file, args.data, args.target, progress=progress,
                          credentials=args.credentials, force=args.force)
        else:
            from .runner import run

            report = run(args.target, experiments=args.experiment, action=args.command,
                         progress=progress, credentials=args.credentials,
                         mode="formulas" if args.formulas else None, force=args.force,
                         data_tab=args.data_tab, experiments_tab=args.experiments_tab)
    finally:
        progress.close()
    _print_report(report, args.json)
    return 0


def _demo(args, progress) -> int:
    from .demo import DEFAULT_PATH, demo_runs, write_demo
    from .runner import run

    path = Path(args.path or DEFAULT_PATH)
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        path = path / DEFAULT_PATH if path.is_dir() else path.with_suffix(".xlsx")
    if path.exists():
        if not args.force:
            from .errors import BackendError

            raise BackendError(f"{path} already exists; pass --force to replace it, or run it with "
                               f"'sheetsync run {path}'")
        path.unlink()
    write_demo(path, args.lab)
    reports = []
    for data_tab, experiments_tab in demo_runs(args.lab):  # the outputs lab: two pairs of input tabs
        reports.append(run(str(path), progress=progress, data_tab=data_tab, experiments_tab=experiments_tab))
        progress.close()
    if args.json and len(reports) > 1:  # one JSON document on stdout
        print(json.dumps({"ok": True, "runs": [r.to_dict() for r in reports]}, indent=2, default=str))
    for report in reports if not (args.json and len(reports) > 1) else []:
        _print_report(report, args.json)
    if not args.json and args.lab == "outputs":
        from .labs.outputs import RUNS

        print(f"\nThe outputs lab is {path.resolve()}\nOpen it in Excel or LibreOffice: 'softmax', "
              "'softmax shift', 'binary cross-entropy', 'cross-entropy' and 'focal loss' are fast.ai's entropy "
              "sheets as live formulas; 'toy boundary' and 'penguins boundary' draw what the classifiers learned, "
              "'toy epochs' and 'penguins epochs' their loss, accuracy and confusion. See docs/classification.md."
              f"\nRun the toy again: sheetsync run {path}\nRun the penguins again: sheetsync run {path} "
              f"--data-tab '{RUNS[1][0]}' --experiments-tab '{RUNS[1][1]}'")
    elif not args.json and args.lab == "embeddings":
        from .labs.embeddings import WHAT_TO_LOOK_AT

        print(f"\nThe embeddings lab is {path.resolve()}\n{WHAT_TO_LOOK_AT}\nRun it again: sheetsync run {path}")
    elif not args.json:
        print(f"\nThe demo workbook is {path.resolve()}\nOpen it in Excel or LibreOffice: 'basic steps' "
              "row 4 is the workbook's first SGD step (pred 15, loss 1849); 'adam epochs' says why its "
              "loss rose and which lr trains; 'basic landscape' draws the loss valley and the path; "
              "'compare' charts the loss of all four experiments; 'relu epochs' shows the bent fit."
              f"\nRun again: sheetsync run {path}")
    return 0


def _print_report(report, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"ok": True, **report.to_dict()}, indent=2, default=str))
        return
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in report.experiments:
        loss = f"{e.loss:.6g}" if e.loss is not None else "not finite"
        params = " ".join(f"{k}={v:.6g}" for k, v in list(e.params.items())[:6])
        sampled = " (steps sampled)" if e.sampled else ""
        epochs = f"{e.epochs_run} epoch{'' if e.epochs_run == 1 else 's'}"
        rmse = getattr(e, "rmse", None)  # dot_product (b-sheet's ExperimentReport.rmse)
        if e.accuracy is not None:  # a classifier: its error cell is not a distance
            error = f"accuracy {e.accuracy:.3f}"
        elif rmse is not None:  # the number the course's RMSE cell shows
            error = f"rmse {rmse:.6g}"
        else:
            error = f"sqrt(sum err^2) {e.sqrt_sum_err2:.6g}" if e.sqrt_sum_err2 is not None else "sqrt(sum err^2) not finite"
        print(f"{e.name}: {e.start}; {epochs} ({e.total_epochs} in all), loss {loss}, {error}, {params}{sampled}")
        for line in e.diagnostics.get("story", []):  # where it went wrong and what trains
            print(f"  {line}")
    print(f"wrote {len(report.tabs_written)} tabs to {report.target} in {report.seconds:.2f}s")


def _fail(error: SheetsyncError, args) -> int:
    problems = error.problems if isinstance(error, InputError) else None
    lines = [str(p) for p in problems] if problems else [str(error)]
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    if isinstance(error, InputError) and len(lines) > 1:
        written = getattr(error, "written", "nothing was written but the run log")  # push: nothing
        print(f"{len(lines)} problems; {written}", file=sys.stderr)
    if getattr(args, "json", False):
        out = {"ok": False, "exit_code": error.exit_code, "error": type(error).__name__, "messages": lines}
        if problems:
            out["problems"] = [{"cell": p.cell, "message": p.message} for p in problems]
        print(json.dumps(out, indent=2))
    return error.exit_code


class _ProgressBar:
    """A tqdm bar on stderr per phase (read, train, layout, write), shown only when the phase
    takes more than a moment (a phase that blocks, like a write, shows its elapsed time); with
    --json, the same as JSON lines on stderr for a caller."""

    DELAY = 0.5  # seconds before the bar appears
    EVERY = 0.25  # seconds between JSON progress events

    def __init__(self, enabled: bool, as_json: bool = False):
        self.enabled = enabled and sys.stderr.isatty()
        self.as_json = as_json
        self.bar = None
        self.phase = None
        self.started = self.sent = time.monotonic()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def __call__(self, done: int, total: int, phase: str = "train") -> None:
        if self.as_json:
            now = time.monotonic()
            if now - self.started >= self.DELAY and (now - self.sent >= self.EVERY or done >= total):
                self.sent = now
                print(json.dumps({"progress": {"phase": phase, "done": done, "total": total}}),
                      file=sys.stderr, flush=True)
            return
        if not self.enabled:
            return
        if self.bar is None or phase != self.phase:
            from tqdm import tqdm

            self.close()
            with self.lock:
                self.phase = phase
                self.bar = tqdm(total=total, unit="step" if phase == "train" else "",
                                unit_scale=phase == "train", file=sys.stderr, delay=self.DELAY, leave=False,
                                desc="training" if phase == "train" else phase)
            if phase != "train":  # one call at its start, one at its end: tick in between
                self.stop = threading.Event()
                threading.Thread(target=self._tick, args=(self.bar, self.stop), daemon=True).start()
                if done < total:
                    return
        with self.lock:
            self.bar.total = total
            self.bar.n = done
            self.bar.refresh()

    def _tick(self, bar, stop: threading.Event) -> None:
        if stop.wait(self.DELAY):
            return
        while True:
            with self.lock:
                if stop.is_set() or self.bar is not bar:
                    return
                bar.refresh()
            if stop.wait(0.5):
                return

    def close(self) -> None:
        self.stop.set()
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
