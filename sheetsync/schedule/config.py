"""The scheduler's settings from the environment, read in this one place.

==========  ============================  ===============================================
setting     environment variable          default
==========  ============================  ===============================================
STORE       SHEETSYNC_SCHEDULE_STORE      ``$XDG_STATE_HOME/sheetsync/schedules.sqlite3``
REDIS_URL   SHEETSYNC_REDIS_URL           none: jobs run on threads in the trigger process
==========  ============================  ===============================================

The server reads its own copy of REDIS_URL through `sheetsync.server.config` (an app built from
a config never looks at the environment); both name the same variable, `REDIS_URL_VARIABLE`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

STORE_VARIABLE = "SHEETSYNC_SCHEDULE_STORE"
REDIS_URL_VARIABLE = "SHEETSYNC_REDIS_URL"


def state_path(*parts: str, environ: Mapping[str, str] | None = None) -> str:
    """A file under the user's state folder (``$XDG_STATE_HOME/sheetsync``, by default
    ``~/.local/state/sheetsync``): where the server's run store and the schedules meet."""
    environ = os.environ if environ is None else environ
    state = environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return os.path.join(state, "sheetsync", *parts)


def from_env(environ: Mapping[str, str] | None = None) -> dict:
    """{"STORE": path, "REDIS_URL": url or None}, with the defaults filled in."""
    environ = os.environ if environ is None else environ
    return {"STORE": environ.get(STORE_VARIABLE) or state_path("schedules.sqlite3", environ=environ),
            "REDIS_URL": environ.get(REDIS_URL_VARIABLE) or None}
