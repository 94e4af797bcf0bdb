"""The training engine: pure numpy and compiled loops; no sheets, files or HTTP."""

from .models import param_names
from .result import Diagnostics, Divergence, Result, State
from .train import sweep, train

__all__ = ["Diagnostics", "Divergence", "Result", "State", "param_names", "sweep", "train"]
