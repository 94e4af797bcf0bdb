"""sheetsync: any spreadsheet as a gradient-descent lab.

>>> import sheetsync
>>> result = sheetsync.train(sheetsync.Experiment("basic", epochs=1), [14, 86], [58, 202])
>>> list(result.steps.columns)[:6]
['epoch', 'step', 'row', 'x', 'y', 'a']
"""

from .engine import Result, State, param_names, sweep, train
from .errors import InputError, SettingError, SheetsyncError
from .settings import Experiment

__all__ = ["Experiment", "InputError", "Result", "SettingError", "SheetsyncError", "State",
           "param_names", "sweep", "train"]
__version__ = "0.1.0"
