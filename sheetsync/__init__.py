"""sheetsync: any spreadsheet as a gradient-descent lab.

>>> import sheetsync
>>> result = sheetsync.train(sheetsync.Experiment("basic", epochs=1), [14, 86], [58, 202])
>>> list(result.steps.columns)[:6]
['epoch', 'step', 'row', 'x', 'y', 'a']
"""

from .errors import InputError, SettingError, SheetsyncError

__all__ = ["Experiment", "InputError", "Result", "SettingError", "SheetsyncError", "State",
           "param_names", "push", "run", "sweep", "trace", "train"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """Everything but the errors loads on first use (numpy and pandas take ~0.7 s): the
    command starts at once, and Ctrl-C during its start-up is its own to answer."""
    if name in ("Result", "State", "param_names", "sweep", "train"):
        from . import engine

        return getattr(engine, name)
    if name == "Experiment":
        from .settings import Experiment

        return Experiment
    if name == "run":
        from .runner import run

        return run
    if name == "push":
        from .push import push

        return push
    if name == "trace":
        from .trace import trace

        return trace
    raise AttributeError(f"module 'sheetsync' has no attribute {name!r}")
