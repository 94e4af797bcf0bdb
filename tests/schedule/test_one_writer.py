"""One writer per workbook across every entry point (README.md, "One writer per workbook"): the CLI, the server, the
scheduler's thread pool and an RQ worker run the same workbook at the same time, each pair of
them several times over, and not one run is lost — the run log has a row per run and the
epochs history and saved state count every run's epochs.

Before the workbook lock, the CLI took no lock at all and the server's lock folder, the
scheduler's and Redis did not exclude each other, so two runs read the same state and the
later write threw the earlier run away (both exiting 0)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rq import Queue

from sheetsync.push import push
from sheetsync.backends.xlsx import XlsxBackend
from sheetsync.layout.tables import read_table
from sheetsync.schedule.executors import QUEUE_NAME, build_context, run_rq_job
from sheetsync.schedule.work import SheetJob, recompute

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EPOCHS = 150  # 29 rows: a run takes long enough that unlocked runs overlap every time
RUNS_EACH = 3
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), str(HERE.parent)]))  # the RQ worker imports schedule_fleet


def make_book(folder: Path) -> Path:
    (folder / "lab.toml").write_text(f'[slow]\noptimizer = "momentum"\nlr = 0.0001\nepochs = {EPOCHS}\n')
    (folder / "data.csv").write_text("x,y\n" + "".join(f"{x},{2 * x + 30}\n" for x in range(1, 30)))
    book = folder / "lab.xlsx"
    push(folder / "lab.toml", folder / "data.csv", str(book))  # run 1
    return book


def runs_recorded(book: Path) -> tuple[int, int, int]:
    """(rows of the run log, epochs in the history, epoch of the saved state)."""
    values = XlsxBackend(str(book)).read(["runs", "slow epochs", "sheetsync state"]).values
    log = read_table(values["runs"])
    from sheetsync.layout.epochs import read_history
    from sheetsync.layout.state import read_state

    history = read_history(values["slow epochs"])
    state = read_state(read_table(values["sheetsync state"]))["slow"].state
    return len(log), len(history), int(state["epoch"])


class EntryPoints:
    """Each starts `n` runs of the book at once and returns a function that waits for them and
    says whether each succeeded."""

    def __init__(self, book: Path, tmp: Path, redis_url: str, slots: itertools.count):
        self.book, self.tmp, self.redis_url, self.slots = book, tmp, redis_url, slots

    def cli(self, n: int):
        procs = [subprocess.Popen([sys.executable, "-m", "sheetsync", "run", str(self.book)], env=ENV,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]

        def done():
            outs = [p.communicate(timeout=120) for p in procs]
            return [p.returncode == 0 or (p.returncode, err) for p, (_, err) in zip(procs, outs)]
        return done

    def server(self, n: int):
        from sheetsync.server import create_app

        app = create_app({"MODE": "local", "LOCAL_FOLDER": str(self.book.parent), "LOCAL_TOKEN": "t" * 24,
                          "RUN_STORE": str(self.tmp / "server" / "runs.sqlite3"), "SYNC_BUDGET": 120,
                          "WORKER_THREADS": 4})
        answers = [None] * n

        def post(i):
            answers[i] = app.test_client().post("/v1/runs", json={"spreadsheet": self.book.name},
                                                headers={"Authorization": "Bearer " + "t" * 24})

        threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()

        def done():
            for t in threads:
                t.join(120)
            app.extensions["sheetsync"].runs.shutdown()
            return [a.status_code == 200 or (a.status_code, a.json) for a in answers]
        return done

    def threads(self, n: int):
        ctx = build_context({"store": str(self.tmp / "threads" / "schedules.sqlite3")})
        pool = ThreadPoolExecutor(n)
        futures = [pool.submit(recompute, SheetJob(str(self.book), float(next(self.slots)), force=True), ctx)
                   for _ in range(n)]

        def done():
            outcomes = [f.result(timeout=120) for f in futures]
            pool.shutdown()
            return [o.status == "recomputed" or (o.status, o.message) for o in outcomes]
        return done

    def rq(self, n: int):
        import redis

        config = {"store": str(self.tmp / "rq" / "schedules.sqlite3"), "redis_url": self.redis_url}
        os.makedirs(self.tmp / "rq", exist_ok=True)
        queue = Queue(QUEUE_NAME, connection=redis.Redis.from_url(self.redis_url))
        jobs = [queue.enqueue(run_rq_job, SheetJob(str(self.book), float(next(self.slots)), force=True).to_dict(),
                              config, job_timeout=120, result_ttl=600) for _ in range(n)]
        worker = subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", self.redis_url,
                                   "--logging_level", "WARNING", "--worker-class", "schedule_fleet.PromptWorker",
                                   QUEUE_NAME], env=ENV, cwd=str(REPO),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def done():
            _, err = worker.communicate(timeout=120)
            results = [j.fetch(j.id, connection=queue.connection).return_value() for j in jobs]
            return [bool(r) and r.get("status") == "recomputed" or (r, err[-500:]) for r in results]
        return done


PAIRS = list(itertools.combinations(["cli", "server", "threads", "rq"], 2))


@pytest.mark.parametrize("first,second", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_no_run_is_lost_between_two_entry_points(tmp_path, redis_url, redis_client, first, second):
    book = make_book(tmp_path)
    points = EntryPoints(book, tmp_path, redis_url, itertools.count(1_800_000_000, 1800))
    waits = [getattr(points, first)(RUNS_EACH), getattr(points, second)(RUNS_EACH)]
    results = [r for wait in waits for r in wait()]
    runs = 1 + 2 * RUNS_EACH  # the push, then every run of both entry points
    logged, epochs, state = runs_recorded(book)
    lost = runs - logged
    assert (lost, results) == (0, [True] * (2 * RUNS_EACH)), f"{lost} of {runs} runs lost; {results}"
    assert (epochs, state) == (runs * EPOCHS, runs * EPOCHS)


def test_with_redis_the_server_takes_the_schedulers_redis_lock(tmp_path, redis_url, redis_client):
    """Across machines only Redis is shared: the server, given REDIS_URL, waits on the very
    lock key an RQ worker holds for the sheet (here: held by the test)."""
    import time

    from sheetsync.server import create_app
    from sheetsync.schedule.coordination import RedisLocks
    from sheetsync.schedule.work import sheet_key

    book = make_book(tmp_path)
    app = create_app({"MODE": "local", "LOCAL_FOLDER": str(tmp_path), "LOCAL_TOKEN": "t" * 24,
                      "RUN_STORE": str(tmp_path / "server" / "runs.sqlite3"), "SYNC_BUDGET": 0.5,
                      "REDIS_URL": redis_url})
    client = app.test_client()
    auth = {"Authorization": "Bearer " + "t" * 24}
    with RedisLocks(redis_client).hold(sheet_key(str(book))):  # an RQ worker's run of the book
        answer = client.post("/v1/runs", json={"spreadsheet": book.name}, headers=auth)
        assert answer.status_code == 202 and answer.json["status"] == "queued", answer.json
        time.sleep(0.5)
        assert client.get(answer.headers["Location"], headers=auth).json["status"] == "queued"
    deadline = time.monotonic() + 60
    while client.get(answer.headers["Location"], headers=auth).json["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    app.extensions["sheetsync"].runs.shutdown()
    assert runs_recorded(book)[0] == 2
