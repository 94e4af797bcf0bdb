"""Benchmark (not a test): ``POST /v1/runs`` under concurrent load, served by gunicorn in local mode.

For 1 and 4 gunicorn workers (gthread, 8 threads each), on 127.0.0.1 only:

- ``one sheet``: every request runs the demo workbook (its four experiments, 29 rows x 5
  epochs each). All runs queue on that sheet's lock (threads in a worker, flock across workers),
  so this measures the one-writer path and checks it loses nothing;
- ``4 sheets``: each client has its own copy of the demo workbook, so runs of different sheets
  proceed in parallel across workers.

The load comes from a second process (this script's child, ``--load``): C client threads with
keep-alive connections send N requests in all (bounded in count and in seconds), record each
latency, and poll any 202 until the run finishes. Then the bench checks that nothing was lost
or interleaved: every run id is ``succeeded`` in ``GET /v1/runs/<id>``, each workbook's run log
has exactly as many entries as runs of it were sent (two interleaved runs would both append to
the same log they read, losing an entry), and with ``--action run`` its ``basic`` experiment has
5 epochs per run (each run continued from the one before it). ``--action reset`` keeps the
workbook's size constant, for steady-state figures; with ``run`` each run costs a little more
than the last, as the epoch histories and the run log grow.

    python bench/server_load.py                      # 1 and 4 workers, 200 requests, 8 clients
    python bench/server_load.py --requests 400 --clients 16 --workers 1 2 4
    python bench/server_load.py --action reset       # constant-size workbook
    python bench/server_load.py --breakdown 40       # 1 client, in process: where a POST's ms go
    python bench/server_load.py --breakdown 40 --against /work/main   # the same, two trees side by side

``--breakdown N`` sends N ``POST /v1/runs`` of the demo one after another to an app in this
process (after 5 to warm it: imports, compiled loops) and splits each answer's time into the
runner's phases (read, train, layout, write, as its progress callback hears them) and the rest
(the request, the run store, the hand-over to the worker thread); medians in milliseconds.
With ``--against TREE`` each tree's app runs in a process of its own, the POSTs interleaved a
few at a time between them, and the medians are printed side by side with their ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A `--against` child imports the tree it was given; any other run this one.
CODE = sys.argv[sys.argv.index("--breakdown-child") + 1] if "--breakdown-child" in sys.argv else str(ROOT)
sys.path.insert(0, CODE)

TOKEN = "bench-local-token-0123456789abcdef"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_gunicorn(workers: int, folder: Path, store: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, SHEETSYNC_MODE="local", SHEETSYNC_LOCAL_FOLDER=str(folder),
               SHEETSYNC_LOCAL_TOKEN=TOKEN, SHEETSYNC_RUN_STORE=str(store), SHEETSYNC_SYNC_BUDGET="30",
               SHEETSYNC_WORKER_THREADS="4", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread",
                             "--threads", "8", "-b", f"{HOST}:{port}", "--log-level", "warning",
                             "sheetsync.server.wsgi:app"], env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not start")


# -- the load process --------------------------------------------------------------------------


def load(port: int, sheets: list[str], requests: int, clients: int, seconds: float, action: str = "run") -> dict:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    results: list[dict] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=120)
        sheet = sheets[i % len(sheets)]
        while time.monotonic() < stop_at:
            with lock:
                if next(counter, None) is None:
                    return
            body = json.dumps({"spreadsheet": sheet, "action": action})
            started = time.perf_counter()
            conn.request("POST", "/v1/runs", body=body, headers=headers)
            answer = conn.getresponse()
            payload = json.loads(answer.read())
            latency = time.perf_counter() - started
            run = payload.get("run", payload)
            with lock:
                results.append({"sheet": sheet, "status": answer.status, "latency": latency, "id": run.get("id")})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"wall": time.perf_counter() - began, "results": results}


# -- checks and report -------------------------------------------------------------------------


def check(port: int, folder: Path, results: list[dict], action: str) -> list[str]:
    from sheetsync.backends.xlsx import XlsxBackend

    problems = []
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for r in results:
        deadline = time.monotonic() + 120
        while True:
            conn.request("GET", f"/v1/runs/{r['id']}", headers=headers)
            run = json.loads(conn.getresponse().read())
            if run.get("status") not in ("queued", "running") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if run.get("status") != "succeeded":
            problems.append(f"run {r['id']} of {r['sheet']}: {run.get('status')} {run.get('error')}")
    for sheet in sorted({r["sheet"] for r in results}):
        sent = sum(r["sheet"] == sheet for r in results)
        snap = XlsxBackend(str(folder / sheet)).read(["runs", "basic epochs"])
        logged = len(snap.values["runs"]) - 1
        epochs = sum(1 for row in snap.values["basic epochs"] if row and isinstance(row[0], (int, float)))
        if logged != sent:
            problems.append(f"{sheet}: {sent} runs sent, {logged} in its run log")
        expected = 5 * sent if action == "run" else 5
        if epochs != expected:
            problems.append(f"{sheet}: {epochs} epochs in 'basic epochs', expected {expected}")
    return problems


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def scenario(workers: int, n_sheets: int, requests: int, clients: int, seconds: float, work: Path,
             action: str) -> dict:
    from sheetsync.demo import write_demo

    folder = work / f"w{workers}-s{n_sheets}"
    folder.mkdir()
    sheets = [f"demo{i}.xlsx" for i in range(n_sheets)]
    for name in sheets:
        write_demo(folder / name)
    port = free_port()
    server = start_gunicorn(workers, folder, work / f"store-w{workers}-s{n_sheets}" / "runs.sqlite3", port)
    try:
        warm = load(port, sheets, workers * 2, workers, 60, action)  # import numba etc. in every worker
        args = json.dumps({"port": port, "sheets": sheets, "requests": requests, "clients": clients,
                           "seconds": seconds, "action": action})
        child = subprocess.run([sys.executable, __file__, "--load", args], capture_output=True, text=True,
                               timeout=seconds + 180)
        if child.returncode != 0:
            raise SystemExit(child.stderr)
        out = json.loads(child.stdout)
        results = warm["results"] + out["results"]
        problems = check(port, folder, results, action)
    finally:
        server.terminate()
        server.wait(30)
    timed = out["results"]
    latencies = [r["latency"] for r in timed]
    return {"workers": workers, "sheets": n_sheets, "requests": len(timed), "clients": clients,
            "rps": len(timed) / out["wall"], "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * percentile(latencies, 99),
            "statuses": {str(s): sum(r["status"] == s for r in timed) for s in sorted({r["status"] for r in timed})},
            "problems": problems}


class Breakdown:
    """An app in this process, its POSTs of the demo timed phase by phase (after 5 to warm it:
    imports, compiled loops)."""

    def __init__(self, action: str):
        import sheetsync.server.service as service
        from sheetsync.demo import write_demo
        from sheetsync.server import create_app

        self.action, self.service = action, service
        self.work = Path(tempfile.mkdtemp(prefix="sheetsync-breakdown-"))
        write_demo(self.work / "demo.xlsx")
        self.app = create_app({"MODE": "local", "LOCAL_FOLDER": str(self.work), "LOCAL_TOKEN": TOKEN,
                               "RUN_STORE": str(self.work / "store" / "runs.sqlite3"), "SYNC_BUDGET": 60})
        self.marks: list[tuple[str, float]] = []
        self.plain = plain = service.RunService._progress
        marks = self.marks

        def timed_progress(self, run_id):
            report = plain(self, run_id)

            def hear(done, total, phase="train"):
                if not marks or marks[-1][0] != phase:
                    marks.append((phase, time.perf_counter()))
                report(done, total, phase)
            return hear

        service.RunService._progress = timed_progress
        self.client = self.app.test_client()
        self.posts(5)

    def posts(self, n: int) -> list[dict]:
        """n POSTs one after another: each one's phases in seconds."""
        rows = []
        for _ in range(n):
            self.marks.clear()
            start, cpu = time.perf_counter(), time.process_time()
            answer = self.client.post("/v1/runs", json={"spreadsheet": "demo.xlsx", "action": self.action},
                                      headers={"Authorization": f"Bearer {TOKEN}"})
            end, cpu = time.perf_counter(), time.process_time() - cpu
            assert answer.status_code == 200, answer.json
            phases = {"read": 0.0, "train": 0.0, "layout": 0.0, "write": 0.0}
            for (phase, t0), (_, t1) in zip(self.marks, self.marks[1:] + [("end", end)]):
                phases[phase] += t1 - t0
            phases["request, store, hand-over"] = (end - start) - sum(phases.values())
            phases["total"] = end - start
            phases["total CPU, all threads"] = cpu  # what a loaded machine's waits do not blur
            rows.append(phases)
        return rows

    def close(self) -> None:
        self.service.RunService._progress = self.plain
        self.app.extensions["sheetsync"].runs.shutdown()
        shutil.rmtree(self.work, ignore_errors=True)


def medians(rows: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in rows) * 1000 for k in rows[0]}


def breakdown(requests: int, action: str) -> dict:
    session = Breakdown(action)
    try:
        return medians(session.posts(requests))
    finally:
        session.close()


def serve_breakdown(action: str) -> None:
    """A child of `--against`: reads a count per line, answers with that many POSTs' phases."""
    session = Breakdown(action)
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(session.posts(int(line))), flush=True)
    session.close()


def against(requests: int, action: str, trees: dict[str, str], rounds: int = 8) -> dict[str, dict]:
    """The breakdown of each code tree, in child processes of their own, interleaved: each
    round sends a few POSTs to one tree, then the same to the next (a noisy machine's slow
    moments fall on both sides alike)."""
    children = {}
    for name, tree in trees.items():
        env = dict(os.environ, PYTHONPATH=tree)
        children[name] = subprocess.Popen([sys.executable, __file__, "--breakdown-child", tree, "--action", action],
                                          env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rows: dict[str, list] = {name: [] for name in trees}
    try:
        for child in children.values():
            assert child.stdout.readline().strip() == "ready"
        per_round = max(1, requests // rounds)
        for _ in range(rounds):
            for name, child in children.items():
                child.stdin.write(f"{per_round}\n")
                child.stdin.flush()
                rows[name] += json.loads(child.stdout.readline())
    finally:
        for child in children.values():
            child.stdin.close()
            child.wait(60)
    return {name: medians(r) for name, r in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--requests", type=int, default=200, help="requests per scenario (default 200)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads (default 8)")
    parser.add_argument("--seconds", type=float, default=120, help="time limit per scenario (default 120)")
    parser.add_argument("--action", choices=["run", "reset"], default="run",
                        help="run: each run continues the last (the workbook grows); reset: constant size")
    parser.add_argument("--breakdown", type=int, metavar="N", help="N requests, 1 client, in process: phases")
    parser.add_argument("--against", metavar="TREE", help="with --breakdown: also TREE's code (e.g. /work/main), "
                        "interleaved in one run, side by side")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--breakdown-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.breakdown_child:
        serve_breakdown(args.action)
        return 0
    if args.breakdown and args.against:
        figures = against(args.breakdown, args.action, {"this tree": str(ROOT), args.against: args.against})
        (ours, theirs) = figures.values()
        print(f"POST /v1/runs, demo, action {args.action}, 1 client, medians (ms), the two trees interleaved:")
        print(f"  {'':<28} {'this tree':>10} {args.against:>14} {'ratio':>7}")
        for k in ours:
            print(f"  {k:<28} {ours[k]:10.1f} {theirs[k]:14.1f} {ours[k] / theirs[k]:7.2f}")
        return 0
    if args.breakdown:
        medians = breakdown(args.breakdown, args.action)
        print(f"POST /v1/runs, demo, action {args.action}, 1 client, median of {args.breakdown} (ms):")
        for k, v in medians.items():
            print(f"  {k:<28} {v:7.1f}")
        return 0
    if args.load:
        spec = json.loads(args.load)
        print(json.dumps(load(spec["port"], spec["sheets"], spec["requests"], spec["clients"], spec["seconds"],
                              spec["action"])))
        return 0
    if not shutil.which("gunicorn") and subprocess.run([sys.executable, "-m", "gunicorn", "--version"],
                                                       capture_output=True).returncode != 0:
        raise SystemExit("gunicorn is not installed (pip install -e .)")
    work = Path(tempfile.mkdtemp(prefix="sheetsync-bench-"))
    rows = []
    try:
        for workers in args.workers:
            for n_sheets in (1, 4):
                row = scenario(workers, n_sheets, args.requests, args.clients, args.seconds, work, args.action)
                rows.append(row)
                print(f"workers {row['workers']}  sheets {row['sheets']}  requests {row['requests']:4d}  "
                      f"clients {row['clients']:2d}  {row['rps']:7.1f} req/s  p50 {row['p50_ms']:7.1f} ms  "
                      f"p99 {row['p99_ms']:7.1f} ms  statuses {row['statuses']}  "
                      f"{'OK: no lost or interleaved run' if not row['problems'] else 'PROBLEMS'}", flush=True)
                for p in row["problems"][:10]:
                    print("   ", p)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ncpu cores: {os.cpu_count()}; action {args.action}; demo workbook: 4 experiments x 29 rows x "
          "5 epochs per run")
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
