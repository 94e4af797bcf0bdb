"""The `sheetsync schedule …` and `sheetsync scheduler` commands (wired into sheetsync/cli.py).

    sheetsync schedule add book.xlsx other.xlsx --every 30m
    sheetsync schedule add --roster group.xlsx --tab roster --cron "0 * * * *"
    sheetsync schedule list [--json]
    sheetsync schedule remove ID
    sheetsync schedule run-now ID            recompute here, now (forced), and print the outcomes
    sheetsync schedule run-now ID --queue    leave it to the running scheduler (next second)
    sheetsync scheduler [--redis URL]        the one trigger process (Ctrl-C stops it)

The store defaults to ``$XDG_STATE_HOME/sheetsync/schedules.sqlite3`` (``--store`` or
SHEETSYNC_SCHEDULE_STORE to change), the file the server uses beside its default run store.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SheetsyncError
from .config import from_env

if TYPE_CHECKING:
    from .store import Schedule, ScheduleStore

# `sheetsync run` builds this parser too: the store (sqlite3, uuid) and APScheduler (the triggers)
# load only when a schedule command runs.

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleCommandError(SheetsyncError):
    exit_code = 64


def add_parsers(sub) -> None:
    schedule = sub.add_parser("schedule", help="recompute sheets on a schedule: add, list, remove, run-now")
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True,
                                      parser_class=type(schedule))
    add = actions.add_parser("add", help="register sheets, or a roster, with an interval or a cron line")
    add.add_argument("targets", nargs="*", metavar="TARGET", help="workbook paths or Google Sheet URLs/keys")
    add.add_argument("--roster", metavar="TARGET", help="the organiser's sheet listing member sheets")
    add.add_argument("--tab", default="roster", help="the roster's tab (default: roster)")
    add.add_argument("--every", help="interval: 600, 10m, 2h, 1d (from 1m to 31d)")
    add.add_argument("--cron", help="five-field crontab line, UTC, e.g. '*/30 * * * *'")
    add.add_argument("--force", action="store_true", help="recompute every time, changed or not")
    add.add_argument("--credentials", metavar="PATH", help="Google service-account file the runs use")
    for name, doc in (("list", "the schedules"), ("remove", "remove a schedule"),
                      ("run-now", "recompute a schedule's sheets now (forced)")):
        p = actions.add_parser(name, help=doc)
        if name != "list":
            p.add_argument("id", help="the schedule's id (sheetsync schedule list)")
        if name == "run-now":
            p.add_argument("--queue", action="store_true", help="let the running scheduler do it")
    for p in actions.choices.values():
        p.add_argument("--store", default=None, help="schedule store (default: $XDG_STATE_HOME/sheetsync/schedules.sqlite3)")
        p.add_argument("--json", action="store_true", help="print JSON")
    scheduler = sub.add_parser("scheduler", help="run the one trigger process of the schedules")
    scheduler.add_argument("--store", default=None, help="schedule store")
    scheduler.add_argument("--redis", default=None,
                           help="Redis URL: dispatch to RQ workers (default: SHEETSYNC_REDIS_URL; "
                                "without it, run jobs on threads here)")
    scheduler.add_argument("--threads", type=int, default=4, help="worker threads without Redis (default 4)")


def dispatch(args) -> int:
    from .store import ScheduleStore

    settings = from_env()  # the environment, read once per command
    store = ScheduleStore(args.store or settings["STORE"])
    if args.command == "scheduler":
        args.redis = args.redis or settings["REDIS_URL"]
        return run_scheduler(store, args)
    command = args.schedule_command
    if command == "add":
        return show([add(store, args)], args.json)
    if command == "list":
        return show(store.list(), args.json)
    schedule = store.get(args.id)
    if schedule is None:
        raise ScheduleCommandError(f"no schedule {args.id!r}; see sheetsync schedule list")
    if command == "remove":
        store.remove(schedule.id)
        print(json.dumps({"removed": schedule.id}) if args.json else f"removed {schedule.id}")
        return 0
    return run_now(store, schedule, args)


def add(store: ScheduleStore, args) -> Schedule:
    if bool(args.targets) == bool(args.roster):
        raise ScheduleCommandError("give sheets (TARGET ...) or --roster, not both and not neither")
    every = parse_interval(args.every) if args.every else None
    kind = "roster" if args.roster else ("sheet" if len(args.targets) == 1 else "list")
    from .store import Schedule
    from .triggers import TriggerError, make_trigger, period

    created = time.time()
    try:  # the HTTP API's check too
        trigger = make_trigger(every, args.cron, created)
    except TriggerError as e:
        raise ScheduleCommandError(f"--{'cron' if args.cron else 'every'}: {e}") from None
    what = "--roster" if args.roster else "TARGET"
    targets = [check_target(t, what) for t in ([args.roster] if args.roster else args.targets)]
    schedule = Schedule("", kind, list(dict.fromkeys(targets)), every, args.cron,
                        args.tab if args.roster else None, args.force, created=created,
                        credentials=args.credentials)
    from .dispatch import quota_warning
    from sheetsync.backends import is_local

    remote = [t for t in schedule.targets if not is_local(t)] if kind != "roster" else []
    schedule.warning = quota_warning(schedule, len(remote), period(trigger, schedule.created))
    return store.add(schedule)


def parse_interval(text: str) -> int:
    match = re.fullmatch(r"\s*(\d{1,12})\s*([smhd]?)\s*", text.lower())
    if not match:
        raise ScheduleCommandError(f"--every: cannot read {text!r}; use seconds or 10m, 2h, 1d (at most 31d)")
    return int(match.group(1)) * UNITS[match.group(2) or "s"]


def check_target(target: str, what: str) -> str:
    """A workbook that exists, or a Google Sheets URL or key; else one clear error."""
    from sheetsync.backends import is_local

    if is_local(target):
        path = Path(target)
        if not path.is_file():
            raise ScheduleCommandError(f"{what} {target}: no such workbook")
        return str(path.resolve())
    try:
        from sheetsync.backends.targets import parse_target

        key = parse_target(target)
    except SheetsyncError as e:
        raise ScheduleCommandError(f"{what} {target}: {e}") from None
    if key is None:
        raise ScheduleCommandError(f"{what} {target}: not a workbook path (.xlsx, .xlsm) or a Google "
                                   "Sheets URL or key")
    return target


def run_now(store: ScheduleStore, schedule: Schedule, args) -> int:
    if args.queue:
        store.request_run(schedule.id, time.time())
        print(json.dumps({"queued": schedule.id}) if args.json else
              f"{schedule.id}: the running scheduler recomputes it within a second")
        return 0
    from .service import run_now_here

    outcomes = run_now_here(store, schedule.id)
    if args.json:
        print(json.dumps([o.to_dict() for o in outcomes], indent=2, default=str))
    for o in outcomes if not args.json else []:
        print(f"{o.target}: {o.status}{' — ' + o.message if o.message else ''}")
    return 0 if all(o.status in ("recomputed", "skipped", "duplicate") for o in outcomes) else 1


def show(schedules: list[Schedule], as_json: bool) -> int:
    if as_json:
        print(json.dumps([s.to_dict() for s in schedules], indent=2))
        return 0
    for s in schedules:
        when = f"every {s.every}s" if s.every else f"cron '{s.cron}'"
        nxt = (datetime.fromtimestamp(s.next_fire, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
               if s.next_fire else "at the scheduler's next tick")
        what = f"roster {s.targets[0]} (tab {s.roster_tab})" if s.kind == "roster" else ", ".join(s.targets)
        print(f"{s.id}  {when}  next {nxt}  {what}")
        if s.warning:
            print(f"  warning: {s.warning}")
    if not schedules:
        print("no schedules; add one with: sheetsync schedule add book.xlsx --every 1h")
    return 0


def run_scheduler(store: ScheduleStore, args) -> int:
    from .service import build_scheduler

    scheduler = build_scheduler(store.path, redis_url=args.redis, threads=args.threads)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    where = f"RQ workers via {args.redis}" if args.redis else f"{args.threads} threads here"
    print(f"sheetsync scheduler: {store.path}; jobs run on {where}. Ctrl-C stops.", file=sys.stderr)
    scheduler.run(stop.is_set)
    return 0
