"""`python -m sheetsync` and the `sheetsync` command (`entry`).

Ctrl-C at any moment — even while numpy loads — exits 130 with one line, never a traceback.
SIGTERM (a `kill`, a container stopping) unwinds the same way, so the half-written temporary
file beside the workbook is removed as it is after Ctrl-C; a SIGKILLed run's leftovers are
removed by the next write of that workbook (`sheetsync.backends.guard`).
"""

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

        return main()
    except KeyboardInterrupt:
        print("sheetsync: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(entry())
