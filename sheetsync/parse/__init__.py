"""Reading a sheet's input tabs into a `Dataset` and `Experiment`s, with cell-addressed problems."""

from .inputs import DATA_TAB, EXPERIMENTS_TAB, Dataset, Inputs, parse_inputs

__all__ = ["DATA_TAB", "EXPERIMENTS_TAB", "Dataset", "Inputs", "parse_inputs"]
