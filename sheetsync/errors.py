"""Errors a user can act on.

Every error sheetsync raises on purpose is a `SheetsyncError`; entry points (CLI, HTTP,
scheduler) print its message and never a traceback. Problems found in a sheet carry the cell
they were found in, so a message reads ``data!B7: expected a number, found 'abc'``.
"""

from __future__ import annotations

from dataclasses import dataclass


class SheetsyncError(Exception):
    """Base class: the message is meant for the user, as is."""

    exit_code = 1


class SettingError(SheetsyncError, ValueError):
    """A setting (from the API, a sheet or a file) has a bad name or value."""

    exit_code = 2

    def __init__(self, setting: str, message: str, cell: str | None = None):
        self.setting = setting
        self.cell = cell
        self.problem = message
        where = f"{cell}: " if cell else ""
        super().__init__(f"{where}{setting}: {message}")


@dataclass(frozen=True)
class Problem:
    """One problem in a sheet: where it is and what was expected."""

    cell: str  # "data!B7", or a tab name when the whole tab is at fault
    message: str

    def __str__(self) -> str:
        return f"{self.cell}: {self.message}"


class InputError(SheetsyncError):
    """All problems found in one pass over a sheet's inputs; nothing was written."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class OwnershipError(SheetsyncError):
    """A tab sheetsync would write is the user's own: refuse instead of overwriting."""

    exit_code = 3


class BackendError(SheetsyncError):
    """Storage failed (file unreadable, Sheets API refused); the message says what to do."""

    exit_code = 4


def closest(word: str, choices) -> str:
    """' (did you mean X?)' when a choice is close to `word`, else ''."""
    import difflib  # only a bad name gets here: not imported by every command (~1 ms)

    match = difflib.get_close_matches(str(word).lower(), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
