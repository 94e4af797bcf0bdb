"""Sheet geometry: results rendered into a backend-neutral `Plan` (tabs, tables, charts, notes).

Knows A1 addresses and tab names; knows nothing of openpyxl or the Sheets API.
"""

from .compare import COMPARE_TAB
from .epochs import epochs_tab_name, merge_history
from .render import ExperimentOutput, log_only_plan, render
from .runs import RUNS_TAB, RunEntry
from .state import STATE_TAB, SavedState
from .steps import steps_tab_name

__all__ = ["COMPARE_TAB", "RUNS_TAB", "STATE_TAB", "ExperimentOutput", "RunEntry", "SavedState",
           "epochs_tab_name", "log_only_plan", "merge_history", "render", "steps_tab_name"]
