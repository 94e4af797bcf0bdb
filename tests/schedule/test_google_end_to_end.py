"""End to end through the fake Sheets API (tests/google/fake_sheets.py) and the real Google
backend: a roster schedule recomputes a member sheet (3 requests), skips it unchanged
(2 requests, nothing written), recomputes it after an edit, and writes the organiser's
leaderboard as an owned tab beside the user's roster tab."""

from __future__ import annotations

import json

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fake_sheets import TOKEN_URI, FakeSheetsAPI

from sheetsync.backends.google import GoogleBackend
from sheetsync.backends.retry import RetryPolicy
from sheetsync.demo import demo_tabs
from sheetsync.schedule.coordination import FileLocks, PacedBuckets
from sheetsync.schedule.dispatch import Dispatcher
from sheetsync.schedule.executors import InlineExecutor
from sheetsync.schedule.roster import LEADERBOARD_TAB
from sheetsync.schedule.store import Schedule, ScheduleStore
from sheetsync.schedule.work import Context
from schedule_sim import SimClock

MEMBER = "1MemberSheetKeyAbCdEfGhIjKlMnOpQrStUvWx"
ORGANISER = "1OrganiserKeyAbCdEfGhIjKlMnOpQrStUvWxYz"
SA = "scheduler@demo-project.iam.gserviceaccount.com"


def fill(book, title, rows):
    sheet = book.by_title(title)
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            if v is not None:
                sheet.cells[(r, c)] = {"userEnteredValue": {"stringValue" if isinstance(v, str) else "numberValue": v}}


@pytest.fixture
def google(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    sa_file = tmp_path / "sa.json"
    sa_file.write_text(json.dumps({"type": "service_account", "project_id": "demo-project",
                                   "private_key_id": "0123456789abcdef", "private_key": pem,
                                   "client_email": SA, "client_id": "1", "token_uri": TOKEN_URI}))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake = FakeSheetsAPI(seed=11).register(mock)
        fake.add_service_account(SA, key.public_key())
        member = fake.create(MEMBER, shared_with={SA}, tabs=("data", "experiments"))
        for tab, rows in demo_tabs().items():
            fill(member, tab, rows)
        organiser = fake.create(ORGANISER, shared_with={SA}, tabs=("roster",))
        fill(organiser, "roster", [["member sheets"], [f"https://docs.google.com/spreadsheets/d/{MEMBER}/edit"]])
        yield fake, str(sa_file)


def test_a_roster_schedule_through_the_google_api(google, tmp_path):
    fake, sa_file = google
    clock = SimClock()
    bucket = PacedBuckets(clock=clock, sleep=clock.sleep)

    def open_backend(target, credentials):
        return GoogleBackend.open(target, credentials or sa_file, bucket=bucket,
                                  retry=RetryPolicy(sleep=clock.sleep, clock=clock))

    store = ScheduleStore(str(tmp_path / "schedules.sqlite3"))
    context = Context(store, store, FileLocks(str(tmp_path / "locks")), open_backend, clock)
    executor = InlineExecutor(context, clock)
    dispatcher = Dispatcher(store, executor, open_backend=open_backend)
    store.add(Schedule("", "roster", [ORGANISER], every=600, roster_tab="roster", created=clock.now))

    def slot(minutes):
        clock.advance_to(1_800_000_000.0 + 60 * minutes)
        before = len(fake.api_calls)
        dispatcher.tick(clock.now)
        return [c for c in fake.api_calls[before:] if MEMBER in c.url]

    first = slot(0)
    assert [c.kind for c in first] and len(first) == 3  # metadata, values, one atomic batchUpdate
    assert "basic steps" in [s.title for s in fake.books[MEMBER].sheets]
    unchanged = slot(10)
    assert len(unchanged) == 2 and all(c.method == "GET" for c in unchanged)
    fill(fake.books[MEMBER], "data", [[None], [None, 60]])  # the learner edits data!B2
    edited = slot(20)
    assert len(edited) == 3
    statuses = [o.status for o in store.outcomes(f"https://docs.google.com/spreadsheets/d/{MEMBER}/edit")]
    assert statuses == ["recomputed", "skipped", "recomputed"]

    board = fake.books[ORGANISER].by_title(LEADERBOARD_TAB).values()
    assert board[0][:5] == ["member", "experiment", "final loss", "flavour", "status"]
    assert sorted(r[1] for r in board[1:]) == ["adam", "basic", "momentum", "relu"]
    assert all(MEMBER in r[6] for r in board[1:])
    assert fake.books[ORGANISER].by_title("roster").values()[1][0].endswith("/edit")  # the user's tab kept
    organiser_calls = [c.kind for c in fake.api_calls if ORGANISER in c.url]
    # per slot one roster read (metadata + values); a leaderboard write (metadata + batchUpdate)
    # only after the slots that recomputed someone, none after the skip
    assert len(organiser_calls) == 3 * 2 + 2 * 2
