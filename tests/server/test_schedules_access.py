"""Google mode: ``POST /v1/schedules`` checks the caller's access as ``POST /v1/runs`` does —
a schedule runs later as the service account, so it must reach only sheets the caller's own
credentials open. A roster is held to the members its owner could open when registering it."""

from __future__ import annotations

import pytest

from sheetsync.server import create_app
from server_support import CLIENT_ID, OWNER_TOKEN, SHEET_KEY, STRANGER_TOKEN, auth, id_token
from sheetsync.schedule.dispatch import Dispatcher
from sheetsync.schedule.store import Schedule

ORGANISER = "1OrGaNiSeRkLmNoPqRsTuVwXyZ0123456789-_abcd"
HIDDEN = "1HiDdEnHiJkLmNoPqRsTuVwXyZ0123456789-_abcd"


@pytest.fixture
def client(tmp_path, certs, fake):
    app = create_app({"MODE": "google", "ALLOWED_AUDIENCES": [CLIENT_ID], "GOOGLE_CREDENTIALS": "/srv/sa.json",
                      "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3")})
    yield app.test_client()
    app.extensions["sheetsync"].runs.shutdown()


def headers(signing_key, token):
    return {**auth(id_token(signing_key[0])), "X-Goog-User-Token": token}


def schedules(client):
    return client.application.extensions["sheetsync.schedules"].list()


def roster(fake, *members):
    book = fake.create(ORGANISER, shared_with={"owner@example.com"}, tabs=("roster",))
    book.by_title("roster").fill([["member sheet"], *[[m] for m in members]])
    return book


def test_a_schedule_of_a_sheet_the_caller_cannot_open_is_refused(client, fake, signing_key):
    body = {"spreadsheets": [SHEET_KEY], "every": 600}
    refused = client.post("/v1/schedules", json=body, headers=headers(signing_key, STRANGER_TOKEN))
    assert refused.status_code == 403, refused.json
    assert refused.json["error"]["code"] == "no_access"
    assert schedules(client) == []
    # the same answer as a run
    run = client.post("/v1/runs", json={"spreadsheet": SHEET_KEY}, headers=headers(signing_key, STRANGER_TOKEN))
    assert run.status_code == 403
    added = client.post("/v1/schedules", json=body, headers=headers(signing_key, OWNER_TOKEN))
    assert added.status_code == 201, added.json
    assert [s.targets for s in schedules(client)] == [[SHEET_KEY]]


def test_a_roster_with_a_member_its_owner_cannot_open_is_refused(client, fake, signing_key):
    fake.create(HIDDEN, shared_with={"someone-else@example.com"}, tabs=("data",))
    roster(fake, SHEET_KEY, HIDDEN)
    answer = client.post("/v1/schedules", json={"roster": {"spreadsheet": ORGANISER}, "every": 3600},
                         headers=headers(signing_key, OWNER_TOKEN))
    assert answer.status_code == 403, answer.json
    assert [p["message"].split(":")[0] for p in answer.json["error"]["problems"]] == [HIDDEN]
    assert schedules(client) == []


def test_a_roster_runs_only_the_members_its_owner_confirmed(client, fake, signing_key):
    roster(fake, SHEET_KEY)
    answer = client.post("/v1/schedules", json={"roster": {"spreadsheet": ORGANISER}, "every": 3600},
                         headers=headers(signing_key, OWNER_TOKEN))
    assert answer.status_code == 201, answer.json
    assert "members" not in answer.json
    [schedule] = schedules(client)
    assert schedule.members == [SHEET_KEY]
    # a member added to the tab later (by anyone who can edit it) is not run

    class Opened:
        def read(self, tabs):
            from sheetsync.backends.base import Snapshot

            return Snapshot(ORGANISER, [], {"roster": [["member sheet"], [SHEET_KEY], [HIDDEN]]})

    dispatcher = Dispatcher(None, None, open_backend=lambda target, credentials: Opened())
    assert dispatcher.targets(schedule) == [SHEET_KEY]
    legacy = Schedule("x", "roster", [ORGANISER], every=3600, roster_tab="roster")  # the CLI's: any member
    assert dispatcher.targets(legacy) == [SHEET_KEY, HIDDEN]
