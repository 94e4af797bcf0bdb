"""One writer per spreadsheet: runs of one sheet queue, other sheets run alongside, and a worker
killed mid-run leaves a failed run and a free sheet, never a hung one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from itertools import groupby

from server_support import LOCAL_TOKEN, auth
from sheetsync.server import create_app
from sheetsync.locks import SpreadsheetLocks
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.demo import write_demo

H = auth()
SERVER_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RecordingBackend:
    """The real workbook, with every read and write noted (and slowed) so overlaps would show."""

    counter = 0

    def __init__(self, path, events, delay=0.02, barrier=None):
        RecordingBackend.counter += 1
        self.name = f"run{RecordingBackend.counter}"
        self.inner, self.events, self.delay, self.barrier = XlsxBackend(path), events, delay, barrier

    def read(self, tabs):
        self.events.append((self.name, "read"))
        if self.barrier is not None:
            self.barrier.wait()
        time.sleep(self.delay)
        return self.inner.read(tabs)

    def apply(self, plan):
        self.events.append((self.name, "apply start"))
        time.sleep(self.delay)
        self.inner.apply(plan)
        self.events.append((self.name, "apply end"))


def post_in_threads(app, bodies):
    results = [None] * len(bodies)

    def post(i):
        results[i] = app.test_client().post("/v1/runs", json=bodies[i], headers=H)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_runs_of_one_spreadsheet_never_interleave(local_config, folder):
    events = []
    app = create_app({**local_config, "WORKER_THREADS": 4,
                      "BACKEND_FACTORY": lambda path, token: RecordingBackend(path, events)})
    answers = post_in_threads(app, [{"spreadsheet": "demo.xlsx", "experiments": ["basic"]}] * 4)
    assert [a.status_code for a in answers] == [200] * 4
    blocks = [name for name, _ in groupby(events, key=lambda e: e[0])]
    assert len(blocks) == len(set(blocks)) == 4, events  # each run's reads and write in one block
    assert all([e[1] for e in events if e[0] == b][-2:] == ["apply start", "apply end"] for b in blocks)
    # every run continued from the one before it: nothing lost
    totals = sorted(a.json["summary"]["experiments"][0]["total_epochs"] for a in answers)
    assert totals == [5, 10, 15, 20]
    log = XlsxBackend(str(folder / "demo.xlsx")).read(["runs"]).values["runs"][1:]
    assert len(log) == 4
    app.extensions["sheetsync"].runs.shutdown()


def test_different_spreadsheets_run_in_parallel(local_config, folder):
    write_demo(folder / "other.xlsx")
    events = []
    meet = threading.Barrier(2, timeout=10)  # both runs must be reading at the same time

    def factory(path, token):
        return RecordingBackend(path, events, barrier=meet if not meet.broken and len(events) < 2 else None)

    app = create_app({**local_config, "WORKER_THREADS": 2, "BACKEND_FACTORY": factory})
    answers = post_in_threads(app, [{"spreadsheet": "demo.xlsx", "experiments": ["basic"]},
                                    {"spreadsheet": "other.xlsx", "experiments": ["basic"]}])
    assert [a.status_code for a in answers] == [200, 200], [a.json for a in answers]
    assert not meet.broken
    app.extensions["sheetsync"].runs.shutdown()


HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from sheetsync.locks import SpreadsheetLocks
    with SpreadsheetLocks({folder!r}).hold("local:/books/demo.xlsx"):
        print("held", flush=True)
        time.sleep(600)
""")


def test_the_lock_holds_across_processes_and_dies_with_its_holder(tmp_path):
    folder = str(tmp_path / "locks")
    child = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=SERVER_ROOT, folder=folder)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        acquired = threading.Event()

        def take():
            with SpreadsheetLocks(folder).hold("local:/books/demo.xlsx"):
                acquired.set()

        taker = threading.Thread(target=take, daemon=True)
        taker.start()
        assert not acquired.wait(0.5)  # the other process holds it
        with SpreadsheetLocks(folder).hold("local:/books/other.xlsx"):
            pass  # another spreadsheet is free meanwhile
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert acquired.wait(5)  # the kernel released the dead holder's lock
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


WORKER = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {root!r})
    from sheetsync.server import create_app

    class Stuck:
        def read(self, tabs):
            sys.stdout.write("reading\\n")  # one write per line: print() writes the newline apart,
            sys.stdout.flush()               # and the main thread's line could land in between
            time.sleep(600)

    config = json.loads(sys.argv[1])
    app = create_app(dict(config, SYNC_BUDGET=0, BACKEND_FACTORY=lambda path, token: Stuck()))
    answer = app.test_client().post("/v1/runs", json={{"spreadsheet": "demo.xlsx"}},
                                    headers={{"Authorization": "Bearer {token}"}})
    sys.stdout.write("id " + answer.get_json()["id"] + "\\n")
    sys.stdout.flush()
    time.sleep(600)
""")


def test_a_killed_worker_leaves_a_failed_run_not_a_hung_one(local_config):
    child = subprocess.Popen([sys.executable, "-c", WORKER.format(root=SERVER_ROOT, token=LOCAL_TOKEN),
                              json.dumps(local_config)], stdout=subprocess.PIPE, text=True)
    try:
        lines = [child.stdout.readline().strip() for _ in range(2)]
        run_id = [line.split()[1] for line in lines if line.startswith("id ")][0]
        assert "reading" in lines
        app = create_app(local_config)
        client = app.test_client()
        assert client.get(f"/v1/runs/{run_id}", headers=H).json["status"] == "running"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        run = client.get(f"/v1/runs/{run_id}", headers=H).json
        assert run["status"] == "failed"
        assert run["error"]["code"] == "interrupted" and "Run it again" in run["error"]["message"]
        again = client.post("/v1/runs", json={"spreadsheet": "demo.xlsx"}, headers=H)
        assert again.status_code == 200  # the dead worker's lock did not outlive it
        app.extensions["sheetsync"].runs.shutdown()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
