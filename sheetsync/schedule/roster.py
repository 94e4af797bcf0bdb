"""A study group's roster: member sheets listed in a tab of the organiser's sheet, and the
`leaderboard` tab sheetsync writes back there.

Roster tab: the first column holding targets. A header cell and blank cells are ignored.
Members are held to the organiser's kind, so a roster never reaches what its owner could not:

- a local organiser lists workbook *file names* in its own folder — the rule of a served
  `spreadsheet` (`sheetsync.backends.paths.workbook_in`): no folders, no absolute paths, no
  ``..``, no symbolic link out of the folder; Google members are refused (the scheduler would
  open them with its own credentials);
- a Google organiser lists Google URLs or keys; local paths are refused.

A refused member is left out of the run and named in the scheduler's log.

Leaderboard: one row per member experiment — member, experiment, final loss, flavour, status,
last run (UTC), link — sorted best loss first; members whose last run failed appear with the
message. It is an owned tab written through a backend `Plan` (one atomic write), so a user's tab
named ``leaderboard`` is never overwritten.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from sheetsync.backends import is_local
from sheetsync.backends.base import Column, Plan, TabPlan, Table
from sheetsync.backends.paths import workbook_in
from sheetsync.errors import BackendError

from .store import Outcome

log = logging.getLogger(__name__)

LEADERBOARD_TAB = "leaderboard"
DEFAULT_ROSTER_TAB = "roster"


def member_targets(rows: list[list], organiser: str, refused: list[str] | None = None) -> list[str]:
    """The member sheets a roster tab lists, in order, without duplicates; the members the rule
    above refuses go to `refused` (as "cell text: why")."""
    found: list[str] = []
    for row in rows:
        cell = next((c for c in row if isinstance(c, str) and c.strip()), None)
        if cell is None or not looks_like_target(cell.strip()):
            continue
        try:
            target = resolve_member(cell.strip(), organiser)
        except BackendError as e:
            log.warning("roster of %s: member %s", Path(organiser).name if is_local(organiser) else organiser, e)
            if refused is not None:
                refused.append(str(e))
            continue
        if target not in found:
            found.append(target)
    return found


def looks_like_target(text: str) -> bool:
    if is_local(text):
        return True
    try:
        from sheetsync.backends.targets import parse_target

        return parse_target(text) is not None
    except Exception:  # noqa: BLE001 - a header such as "member sheet" is simply not a target
        return False


def resolve_member(text: str, organiser: str) -> str:
    """The member `text` names, under the organiser's rule, or `BackendError` saying why not."""
    if is_local(organiser):
        if not is_local(text):
            raise BackendError(f"{text!r}: a local roster lists workbooks of its own folder, not Google Sheets")
        return workbook_in(str(Path(organiser).resolve().parent), text)
    if is_local(text):
        raise BackendError(f"{text!r}: a Google roster lists Google Sheets, not local paths")
    return text


def link(target: str) -> str:
    if is_local(target):
        return Path(target).resolve().as_uri()
    from sheetsync.backends.targets import parse_target

    return f"https://docs.google.com/spreadsheets/d/{parse_target(target) or target}"


def leaderboard_plan(members: list[str], last: dict[str, Outcome | None]) -> Plan:
    rows = []
    for target in members:
        rows += member_rows(target, last.get(target))
    rows.sort(key=lambda r: (r[2] is None, r[2] if r[2] is not None else 0.0, r[0]))
    names = ["member", "experiment", "final loss", "flavour", "status", "last run", "link"]
    formats = ["@", "@", "0.000000", "@", "@", "@", "@"]
    widths = [28, 16, 14, 10, 40, 20, 50]
    columns = [Column(n, [r[i] for r in rows], f, w) for i, (n, f, w) in enumerate(zip(names, formats, widths))]
    return Plan(tabs=[TabPlan(LEADERBOARD_TAB, tables=[Table(columns)], frozen_rows=1, kind="leaderboard")])


def member_rows(target: str, outcome: Outcome | None) -> list[list]:
    name = Path(target).stem if is_local(target) else target[:12]  # a Google key: its start
    if outcome is None:
        return [[name, "", None, "", "not run yet", "", link(target)]]
    when = datetime.fromtimestamp(outcome.finished, timezone.utc).strftime("%Y-%m-%d %H:%M")
    experiments = outcome.report.get("experiments") or []
    if outcome.status != "recomputed" or not experiments:
        return [[name, "", None, "", f"{outcome.status}: {outcome.message}"[:200], when, link(target)]]
    return [[name, e["name"], e["loss"], e.get("flavour", ""), "diverged" if e.get("diverged") else "ok",
             when, link(target)] for e in experiments]
