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
    command starts at once, and Ctrl-C during its start-up is its own to answer. What is loaded
    is bound here for good: importing `sheetsync.trace` or `sheetsync.push` binds the package's
    name to the module, and `sheetsync.trace(...)` must stay the function."""
    if name in ("Result", "State", "param_names", "sweep", "train"):
        from . import engine

        value = getattr(engine, name)
    elif name == "Experiment":
        from .settings import Experiment as value
    elif name == "run":
        from .runner import run as value
    elif name == "push":
        from .push import push as value
    elif name == "trace":
        from .trace import trace as value
    else:
        raise AttributeError(f"module 'sheetsync' has no attribute {name!r}")
    globals()[name] = value
    return value
