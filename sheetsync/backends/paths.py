"""Which local workbooks a name may reach: the one rule for a served `spreadsheet` and for the
members of a local roster.

A name is a plain file name — no ``/`` or ``\\``, not absolute, no ``..`` or leading dot, no
control characters, at most 255 characters — ending in ``.xlsx`` or ``.xlsm``, and its real path
(symlinks followed) lies directly in the folder. Anything else would let whoever writes the
name (a caller of the server, a learner editing a roster tab) make sheetsync rewrite a workbook
outside the folder it was given.
"""

from __future__ import annotations

import os
import unicodedata

from ..errors import BackendError

LOCAL_SUFFIXES = (".xlsx", ".xlsm")
MAX_NAME = 255


class OutsideFolder(BackendError):
    """A workbook name that is not a plain name, or leads out of its folder."""

    def __init__(self, name: str, why: str):
        self.name, self.why = name, why
        super().__init__(f"{name!r}: {why}")


def bad_name(name: str) -> str | None:
    """Why `name` is not a plain workbook file name, or None."""
    if not name:
        return "empty"
    if len(name) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in name):
        return "contains control characters"
    if "/" in name or "\\" in name or os.path.isabs(name):
        return "must be a file name, without folders"
    if name in (".", "..") or name.startswith("."):
        return "must not start with a dot"
    if not name.lower().endswith(LOCAL_SUFFIXES):
        return "must end in .xlsx or .xlsm"
    return None


def workbook_in(folder: str, name: str) -> str:
    """The real path of workbook `name` directly inside `folder`, or `OutsideFolder`."""
    why = bad_name(name)
    if why:
        raise OutsideFolder(name, why)
    folder = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(folder, name))
    if os.path.dirname(path) != folder:
        raise OutsideFolder(name, "leads outside the folder (a symbolic link)")
    return path
