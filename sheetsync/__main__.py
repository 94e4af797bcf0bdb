"""`python -m sheetsync` and the `sheetsync` command (`entry`).

Ctrl-C at any moment — even while numpy loads — exits 130 with one line, never a traceback.
SIGTERM (a `kill`, a container stopping) unwinds the same way, so the half-written temporary
file beside the workbook is removed as it is after Ctrl-C; a SIGKILLed run's leftovers are
removed by the next write of that workbook (`sheetsync.backends.guard`).

A command that is done leaves without the interpreter's teardown (`_exit_now`).
"""

import os
import signal
import sys

EXIT_INTERRUPTED = 130


def _terminate(signum, frame):
    raise KeyboardInterrupt  # unwinds: `finally` blocks and temp-file cleanup run


def entry() -> int:
    try:
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, _terminate)
        from .cli import main

        code = main()
    except KeyboardInterrupt:
        print("sheetsync: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    threading = sys.modules.get("threading")
    if threading is None or threading.active_count() == 1:  # nothing else is still at work
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Exit with `code` at once, the output flushed. The interpreter's teardown frees every
    module and array one by one (~25 ms after a small run, ~35 ms after a big one: a tenth of a
    fresh `sheetsync run` of the demo) and does nothing a finished command needs: the workbook
    is written, synced and renamed, its lock released, and the OS closes the rest."""
    logging = sys.modules.get("logging")
    if logging is not None:  # not imported: nothing was logged, and a run need not import it to say so
        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, or a stream already closed
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(entry())
