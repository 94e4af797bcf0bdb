"""sheetsync: any spreadsheet as a gradient-descent lab."""

from .errors import InputError, SettingError, SheetsyncError
from .settings import Experiment

__all__ = ["Experiment", "InputError", "SettingError", "SheetsyncError"]
__version__ = "0.1.0"
