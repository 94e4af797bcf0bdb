"""``/v1/schedules``: register, list, remove and run-now scheduled recomputations.

    GET    /v1/schedules                          the caller's schedules (API keys: all)
    POST   /v1/schedules                          add: spreadsheets (a list) or a roster, with
                                                  every (seconds) or cron (five fields, UTC)
    DELETE /v1/schedules/{schedule_id}            remove
    POST   /v1/schedules/{schedule_id}/run-now    force a recomputation at the next tick

Same auth as the rest of the API. Spreadsheets are named as in ``POST /v1/runs`` (local mode: a
workbook of the served folder; Google mode: a URL or key). Scheduled runs happen later, without
the caller, so in Google mode they run as the server's service account
(SHEETSYNC_GOOGLE_CREDENTIALS), which the sheets must be shared with; a schedule is refused
when none is configured. The schedules live in ``schedules.sqlite3`` beside the run store.

Access: a schedule must never let a caller write, as the service account, into a sheet their
own credentials cannot open. So in Google mode every sheet is opened at registration exactly
as ``POST /v1/runs`` opens it (the caller's token; an API key without one: the service
account) and refused with 403 when that fails. A roster's members are each checked the same
way; the schedule records them, and the scheduler runs only those members — one added to the
tab later is left out until the owner registers the roster again. Local rosters list workbook
names of their own folder only (`sheetsync.schedule.roster`).

The trigger runs in exactly one process: ``sheetsync scheduler``, or — with
SHEETSYNC_SCHEDULER=embedded — a thread in every server process of which only the holder of
the leader lock (a file lock beside the store, or a Redis key when SHEETSYNC_REDIS_URL is set)
dispatches, so gunicorn's workers never fire a schedule twice.
"""

from __future__ import annotations

import os
import threading
import time

from flask import Blueprint, current_app, jsonify

from sheetsync.schedule.dispatch import quota_warning
from sheetsync.schedule.store import Schedule, ScheduleStore
from sheetsync.schedule.triggers import MAX_INTERVAL, MIN_INTERVAL, TriggerError, make_trigger, period

from sheetsync.errors import SheetsyncError

from .errors import ApiError, from_sheetsync
from .openapi import ref, responses, route
from .schemas import RUN_REQUEST
from .spreadsheets import resolve
from .validation import validate_body
from .views import caller, json_body, require_caller

bp = Blueprint("schedules", __name__)
require_caller(bp)

SPREADSHEET = RUN_REQUEST["properties"]["spreadsheet"]
SCHEDULE_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "spreadsheets": {"type": "array", "items": SPREADSHEET, "maxItems": 1000,
                         "description": "Sheets to recompute (give this or roster)."},
        "roster": {"type": "object", "additionalProperties": False, "required": ["spreadsheet"],
                   "description": "The organiser's sheet; its tab lists the member sheets (one column).",
                   "properties": {"spreadsheet": SPREADSHEET,
                                  "tab": {"type": "string", "minLength": 1, "maxLength": 100, "default": "roster"}}},
        "every": {"type": "integer", "minimum": MIN_INTERVAL, "maximum": MAX_INTERVAL,
                  "description": "Interval in seconds (give this or cron)."},
        "cron": {"type": "string", "minLength": 9, "maxLength": 100, "example": "*/30 * * * *",
                 "description": "Five-field crontab line, UTC."},
        "force": {"type": "boolean", "default": False,
                  "description": "Recompute every time, even when the inputs did not change."},
    },
}
SCHEDULE = {
    "type": "object",
    "required": ["id", "kind", "spreadsheets"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": ["sheet", "list", "roster"]},
        "spreadsheets": {"type": "array", "items": {"type": "string"}},
        "roster_tab": {"type": "string", "nullable": True},
        "every": {"type": "integer", "nullable": True},
        "cron": {"type": "string", "nullable": True},
        "force": {"type": "boolean"},
        "next_fire": {"type": "number", "nullable": True, "description": "Epoch seconds."},
        "last_fire": {"type": "number", "nullable": True},
        "run_now": {"type": "number", "nullable": True, "description": "A pending run-now request."},
        "warning": {"type": "string", "nullable": True,
                    "description": "Why the schedule cannot be met within the Sheets quota."},
    },
}
SCHEDULE_LIST = {"type": "object", "required": ["schedules"],
                 "properties": {"schedules": {"type": "array", "items": ref("Schedule")}}}
bp.openapi_components = {"ScheduleRequest": SCHEDULE_REQUEST, "Schedule": SCHEDULE, "ScheduleList": SCHEDULE_LIST}

SCHEDULE_ID = {"name": "schedule_id", "in": "path", "required": True,
               "schema": {"type": "string", "maxLength": 64}}


def store() -> ScheduleStore:
    return current_app.extensions["sheetsync.schedules"]


@route(bp, "/v1/schedules", "get", summary="The caller's schedules",
       responses=responses(r200="ScheduleList", r401="Error"))
def list_schedules():
    who = caller()
    found = store().list(None if who.sees_all_runs else who.name)
    return jsonify({"schedules": [public(s) for s in found]})


@route(bp, "/v1/schedules", "post", summary="Recompute sheets on a schedule",
       requestBody={"required": True, "content": {"application/json": {"schema": ref("ScheduleRequest")}}},
       responses=responses(r201="Schedule", r400="Error", r401="Error", r403="Error", r404="Error", r413="Error",
                           r415="Error", r429="Error", r502="Error"))
def add_schedule():
    body = validate_body(json_body(), SCHEDULE_REQUEST)
    schedule = build(body)
    trigger = make_trigger(schedule.every, schedule.cron, schedule.created)
    schedule.warning = quota_warning(schedule, len(schedule.targets) if schedule.kind != "roster" else 0,
                                     period(trigger, schedule.created))
    store().add(schedule)
    return jsonify(public(schedule)), 201


@route(bp, "/v1/schedules/{schedule_id}", "delete", summary="Remove a schedule",
       parameters=[SCHEDULE_ID], responses=responses(r200="Schedule", r401="Error", r404="Error"))
def remove_schedule(schedule_id: str):
    schedule = owned(schedule_id)
    store().remove(schedule.id)
    return jsonify(public(schedule))


@route(bp, "/v1/schedules/{schedule_id}/run-now", "post", summary="Recompute a schedule's sheets now (forced)",
       parameters=[SCHEDULE_ID], responses=responses(r202="Schedule", r401="Error", r404="Error"))
def run_now(schedule_id: str):
    schedule = owned(schedule_id)
    store().request_run(schedule.id, time.time())
    return jsonify(public(store().get(schedule.id))), 202


def build(body: dict) -> Schedule:
    if ("spreadsheets" in body) == ("roster" in body):
        raise invalid("spreadsheets", "give exactly one of spreadsheets (a list) or roster")
    if ("every" in body) == ("cron" in body):
        raise invalid("every", "give exactly one of every (seconds) or cron")
    who = caller()
    if current_app.config["MODE"] == "google" and not current_app.config.get("GOOGLE_CREDENTIALS"):
        raise ApiError(400, "no_service_account", "scheduled runs need the server's service account "
                       "(SHEETSYNC_GOOGLE_CREDENTIALS): they happen without you, and your token expires")
    google = current_app.config["MODE"] == "google"
    members = None
    if "roster" in body:
        sheet = resolve(body["roster"]["spreadsheet"], who, current_app.config)
        targets, kind, tab = [sheet.target], "roster", body["roster"].get("tab", "roster")
        if google:
            members = confirmed_members(sheet, tab, who)
    else:
        if not body["spreadsheets"]:
            raise invalid("spreadsheets", "must not be empty")
        sheets = {s.target: s for s in (resolve(name, who, current_app.config) for name in body["spreadsheets"])}
        if google:
            for sheet in sheets.values():
                check_access(sheet)
        targets = list(sheets)
        kind, tab = ("sheet" if len(targets) == 1 else "list"), None
    schedule = Schedule("", kind, targets, body.get("every"), body.get("cron"), tab, body["force"], who.name,
                        created=time.time(), credentials=current_app.config.get("GOOGLE_CREDENTIALS"),
                        members=members)
    try:
        make_trigger(schedule.every, schedule.cron, schedule.created)
    except TriggerError as e:
        raise invalid("cron" if schedule.cron else "every", str(e)) from None
    return schedule


def check_access(sheet, tab: str | None = None):
    """Open `sheet` as the caller would for ``POST /v1/runs`` (their token; an API key: the
    service account), one metadata read: a schedule writes later as the service account, so
    it must only reach sheets the caller's own credentials open (403 otherwise)."""
    try:
        return sheet.open().read([tab] if tab else [])
    except SheetsyncError as e:
        raise from_sheetsync(e, google=True) from None


def confirmed_members(sheet, tab: str, who) -> list[str]:
    """The roster's members, each opened with the caller's credentials now; the scheduler runs
    these and no member added later (until the owner registers the roster again)."""
    from sheetsync.schedule.roster import member_targets

    snapshot = check_access(sheet, tab)
    refused: list[str] = []
    members = member_targets(snapshot.values.get(tab, []), sheet.target, refused)
    denied = []
    for member in members:
        try:
            check_access(resolve(member, who, current_app.config))
        except ApiError as e:
            denied.append({"field": "roster", "message": f"{member}: {e.message}"})
    if denied:
        raise ApiError(403, "no_access", f"you cannot open {len(denied)} member sheet(s) of this roster; "
                       "a schedule runs only sheets you can open yourself", denied)
    return members


def owned(schedule_id: str) -> Schedule:
    schedule = store().get(schedule_id)
    who = caller()
    if schedule is None or not (who.sees_all_runs or schedule.owner == who.name):
        raise ApiError(404, "schedule_not_found", "no such schedule (or it is not yours)")
    return schedule


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_schedule", f"{field}: {message}", [{"field": field, "message": message}])


def public(schedule: Schedule) -> dict:
    """What a caller sees: never a server path (local mode shows workbook names)."""
    local = current_app.config["MODE"] == "local"
    shown = [os.path.basename(t) if local else t for t in schedule.targets]
    data = schedule.to_dict()
    for private in ("targets", "owner", "credentials", "created", "members"):
        data.pop(private)
    return {"spreadsheets": shown, **data}


def init_app(app) -> None:
    """The store beside the run store; the embedded trigger when SHEETSYNC_SCHEDULER=embedded."""
    folder = os.path.dirname(os.path.abspath(app.config["RUN_STORE"]))
    app.extensions["sheetsync.schedules"] = ScheduleStore(os.path.join(folder, "schedules.sqlite3"))
    if app.config.get("SCHEDULER") == "embedded":
        start_embedded(app, folder)


def start_embedded(app, folder: str) -> threading.Thread:
    from sheetsync.schedule.service import build_scheduler

    redis_url = app.config.get("REDIS_URL")
    scheduler = build_scheduler(os.path.join(folder, "schedules.sqlite3"), redis_url=redis_url)
    stop = threading.Event()
    thread = threading.Thread(target=scheduler.run, args=(stop.is_set,), daemon=True, name="sheetsync-scheduler")
    thread.start()
    app.extensions["sheetsync.scheduler"] = (scheduler, stop, thread)
    return thread
