"""Local mode end to end on the demo workbook: run, continue, reset, poll, errors with cells,
and a run store that outlives the process."""

from __future__ import annotations

import sqlite3
import time

from server_support import API_KEY, auth
from sheetsync.server import create_app
from sheetsync.backends.xlsx import XlsxBackend

H = auth()


def run_log(path) -> list:
    rows = XlsxBackend(str(path)).read(["runs"]).values["runs"]
    return rows[1:]


def poll(client, location: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(location, headers=H).json
        if record["status"] in ("succeeded", "failed"):
            return record
        time.sleep(0.05)
    raise AssertionError(f"run still {record['status']} after {timeout}s")


def test_run_answers_the_summary_and_writes_the_workbook(client, folder):
    r = client.post("/v1/runs", json={"spreadsheet": "demo.xlsx"}, headers=H)
    assert r.status_code == 200
    run = r.json
    assert run["status"] == "succeeded" and run["action"] == "run" and run["mode"] == "values"
    summary = run["summary"]
    assert summary["spreadsheet"] == "demo.xlsx"  # never the server's path
    assert [e["name"] for e in summary["experiments"]] == ["basic", "momentum", "adam", "relu"]
    assert all(e["start"] == "first run" and e["epochs_run"] == 5 for e in summary["experiments"])
    assert "basic steps" in summary["tabs_written"]
    assert run["progress"]["done"] == run["progress"]["total"] > 0
    assert r.headers["Location"] == f"/v1/runs/{run['id']}"
    steps = XlsxBackend(str(folder / "demo.xlsx")).read(["basic steps"]).values["basic steps"]
    assert any(row[:3] == ["epoch", "step", "row"] for row in steps[:5])
    assert len(steps) > 5 * 29  # a row per step
    assert len(run_log(folder / "demo.xlsx")) == 1


def test_second_run_continues_and_reset_starts_again(client, folder):
    client.post("/v1/runs", json={"spreadsheet": "demo.xlsx", "experiments": ["basic"]}, headers=H)
    again = client.post("/v1/runs", json={"spreadsheet": "demo.xlsx", "experiments": ["basic"]}, headers=H).json
    basic = again["summary"]["experiments"][0]
    assert (basic["start"], basic["total_epochs"]) == ("continued", 10)
    reset = client.post("/v1/runs", json={"spreadsheet": "demo.xlsx", "experiments": ["basic"],
                                          "action": "reset"}, headers=H).json
    assert reset["action"] == "reset"
    assert reset["summary"]["experiments"][0]["start"] == "reset"
    assert reset["summary"]["experiments"][0]["total_epochs"] == 5
    assert len(run_log(folder / "demo.xlsx")) == 3


def test_get_run_shows_the_stored_outcome(client):
    run = client.post("/v1/runs", json={"spreadsheet": "demo.xlsx"}, headers=H).json
    got = client.get(f"/v1/runs/{run['id']}", headers={"X-Api-Key": API_KEY})
    assert got.status_code == 200
    assert got.json == run


def test_long_run_answers_202_and_can_be_polled(local_config):
    app = create_app({**local_config, "SYNC_BUDGET": 0})
    client = app.test_client()
    r = client.post("/v1/runs", json={"spreadsheet": "demo.xlsx"}, headers=H)
    assert r.status_code == 202
    assert r.json["status"] in ("queued", "running")
    final = poll(client, r.headers["Location"])
    assert final["status"] == "succeeded"
    assert final["summary"]["experiments"][0]["name"] == "basic"
    assert final["finished"] >= final["started"] >= final["created"]
    app.extensions["sheetsync"].runs.shutdown()


def bad_workbook(folder):
    XlsxBackend.create(str(folder / "bad.xlsx"), {
        "data": [["x", "y"], [1, 2], ["abc", 4], [3, 6]],
        "experiments": [["setting", "basic"], ["model", "linear"], ["lr", "fast"]]})


def test_input_problems_answer_422_with_their_cells(client, folder):
    bad_workbook(folder)
    r = client.post("/v1/runs", json={"spreadsheet": "bad.xlsx"}, headers=H)
    assert r.status_code == 422
    error = r.json["error"]
    assert error["code"] == "input_error"
    cells = [p["cell"] for p in error["problems"]]
    assert "data!A3" in cells
    assert any(c.startswith("experiments!") for c in cells)
    assert all(p["message"] for p in error["problems"])
    run = client.get(f"/v1/runs/{r.json['run']['id']}", headers=H).json
    assert run["status"] == "failed" and run["error"]["problems"] == error["problems"]
    assert run_log(folder / "bad.xlsx")[0][5] == "input errors"  # only the run log was written


def test_a_tab_the_user_owns_is_a_409_and_nothing_is_written(client, folder):
    XlsxBackend.create(str(folder / "mine.xlsx"), {
        "data": [["x", "y"], [1, 2], [2, 4]], "experiments": [["setting", "basic"], ["model", "linear"]],
        "basic steps": [["my own notes"]]})
    before = (folder / "mine.xlsx").read_bytes()
    r = client.post("/v1/runs", json={"spreadsheet": "mine.xlsx"}, headers=H)
    assert r.status_code == 409
    assert r.json["error"]["code"] == "tab_not_owned" and "basic steps" in r.json["error"]["message"]
    assert (folder / "mine.xlsx").read_bytes() == before


def test_unknown_experiment_is_a_422(client):
    r = client.post("/v1/runs", json={"spreadsheet": "demo.xlsx", "experiments": ["nosuch"]}, headers=H)
    assert r.status_code == 422
    assert "nosuch" in r.json["error"]["message"] + str(r.json["error"]["problems"])


def test_runs_survive_a_restart(local_config):
    first = create_app(local_config)
    run = first.test_client().post("/v1/runs", json={"spreadsheet": "demo.xlsx"}, headers=H).json
    first.extensions["sheetsync"].runs.shutdown()
    second = create_app(local_config)
    again = second.test_client().get(f"/v1/runs/{run['id']}", headers=H)
    assert again.status_code == 200 and again.json["summary"] == run["summary"]
    second.extensions["sheetsync"].runs.shutdown()


def test_a_run_left_running_by_a_dead_process_is_failed_at_start_up(local_config):
    store = local_config["RUN_STORE"]
    app = create_app(local_config)
    app.extensions["sheetsync"].runs.shutdown()
    db = sqlite3.connect(store)
    db.execute("INSERT INTO runs (id, caller, spreadsheet, action, mode, status, owner, created, started)"
               " VALUES ('ghost', 'local', 'demo.xlsx', 'run', 'values', 'running', '999999999:1', ?, ?)",
               (time.time(), time.time()))
    db.commit()
    db.close()
    app = create_app(local_config)
    row = sqlite3.connect(store).execute("SELECT status, error FROM runs WHERE id = 'ghost'").fetchone()
    assert row[0] == "failed" and "interrupted" in row[1]
    ghost = app.test_client().get("/v1/runs/ghost", headers=H).json
    assert ghost["status"] == "failed" and ghost["error"]["code"] == "interrupted"
    app.extensions["sheetsync"].runs.shutdown()


def test_a_reused_pid_is_not_taken_for_the_owner():
    import os

    from sheetsync.server.store import is_alive, this_process

    assert is_alive(this_process())
    assert not is_alive(f"{os.getpid()}:1")  # same pid, another start time: not our run's owner
    assert not is_alive("999999999:0") and not is_alive(None) and not is_alive("garbage")


def test_an_unexpected_error_in_a_run_fails_the_run_not_the_worker(local_config):
    def broken_backend(target, token):
        raise RuntimeError("boom with a secret inside")

    app = create_app({**local_config, "BACKEND_FACTORY": broken_backend, "WORKER_THREADS": 1})
    client = app.test_client()
    r = client.post("/v1/runs", json={"spreadsheet": "demo.xlsx"}, headers=H)
    assert r.status_code == 500
    assert r.json["error"] == {"code": "internal_error", "problems": [], "message": "internal error; it was logged"}
    assert "secret" not in r.get_data(as_text=True)
    app.extensions["sheetsync"].runs.shutdown()


def test_cli_serve_prints_the_token_and_serves(folder):
    import json
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "sheetsync", "serve", "--port", "0", "--folder", str(folder)],
                            stdout=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        port = int(first.split("127.0.0.1:")[1].split()[0])
        lines = [proc.stdout.readline() for _ in range(2)]
        token = [line for line in lines if line.startswith("local token:")][0].split(": ")[1].strip()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/runs", method="POST",
                                         data=json.dumps({"spreadsheet": "demo.xlsx"}).encode(),
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
            assert json.load(answer)["status"] == "succeeded"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
