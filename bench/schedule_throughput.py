"""Benchmark (not a test): sheets recomputed per minute within the Sheets quota, one RQ worker
against four.

A real ``redis-server`` on loopback, N small lab workbooks (one experiment, 8 rows, 20 epochs),
and RQ worker processes (``rq worker --burst -c sheetsync.schedule.rq_settings``) running `sheetsync.schedule.work.recompute` on
forced jobs. Each workbook is opened through a backend that behaves like Google Sheets on the
wire: every request first takes its tokens from the shared Redis buckets (60/min per user,
300/min per project, paced at 90 % so no sliding minute exceeds them) and then waits a network
latency (default 150 ms); a check is 2 requests and a recompute 3, as with the Google backend.
Users: each sheet belongs to one of U users (default 10), as a study group's members would.

Reported per configuration: sheets/min (steady state, between the first and last outcome),
the most requests in any sliding minute (project and busiest user), and lost or duplicated
runs. "no quota" repeats four workers with the buckets out of the way to show the CPU bound.

    python bench/schedule_throughput.py                 # 200 sheets; 1 worker, 4 workers, 4 without quota
    python bench/schedule_throughput.py --sheets 400 --latency 0.3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# -- the backend the workers open (imported by name: "schedule_throughput:wire_backend") -------


class WireBackend:
    """An .xlsx workbook behind Google's request pattern: quota first, then latency."""

    def __init__(self, inner, user: str, bucket, redis, latency: float):
        self.inner, self.user, self.bucket, self.redis, self.latency = inner, user, bucket, redis, latency
        self._read = False

    def _request(self) -> None:
        self.bucket.acquire("user:" + self.user)
        self.bucket.acquire("project:bench")
        self.redis.rpush("bench:requests", json.dumps([time.time(), self.user]))
        time.sleep(self.latency)

    def read(self, tabs):
        if not self._read:  # one round: metadata + values, then served from the round
            self._request()
            self._request()
            self._read = True
        return self.inner.read(tabs)

    def apply(self, plan) -> None:
        self._request()
        self._read = False
        self.inner.apply(plan)


def wire_backend(target: str, credentials: str | None):
    import redis

    from sheetsync.backends import open_backend
    from sheetsync.schedule.coordination import RedisBuckets

    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    quota = json.loads(os.environ["BENCH_QUOTA"])
    bucket = RedisBuckets(client, quota) if quota else NoQuota()
    user = "user%d" % (int(Path(target).stem.rsplit("-", 1)[1]) % int(os.environ["BENCH_USERS"]))
    return WireBackend(open_backend(target), user, bucket, client, float(os.environ["BENCH_LATENCY"]))


class NoQuota:
    def acquire(self, key: str, n: int = 1) -> float:
        return 0.0


# -- the bench -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(folder: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(300):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    return proc, f"redis://127.0.0.1:{port}/0"


def write_labs(folder: Path, n: int) -> list[str]:
    import openpyxl

    paths = []
    for i in range(n):
        wb = openpyxl.Workbook()
        wb.remove(wb.active)
        data = wb.create_sheet("data")
        data.append(["x", "y"])
        for x in range(1, 9):
            data.append([x, 2 * x + 1 + i % 5])
        exps = wb.create_sheet("experiments")
        for row in (["setting", "basic"], ["model", "linear"], ["optimizer", "sgd"], ["lr", 0.001],
                    ["epochs", 20], ["init a", 1], ["init b", 1]):
            exps.append(row)
        path = folder / f"lab-{i:04d}.xlsx"
        wb.save(path)
        paths.append(str(path))
    return paths


def sliding_max(times: list[float], window: float = 60.0) -> int:
    times, best, lo = sorted(times), 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def measure(name: str, workers: int, quota: dict, sheets: list[str], args, redis_url: str, tmp: Path) -> dict:
    import redis

    from sheetsync.schedule.executors import QUEUE_NAME, RQExecutor
    from sheetsync.schedule.store import ScheduleStore
    from sheetsync.schedule.work import SheetJob

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    store_path = tmp / f"{name.replace(' ', '-')}.sqlite3"
    config = {"store": str(store_path), "redis_url": redis_url, "backend_factory": "schedule_throughput:wire_backend"}
    executor = RQExecutor(config)
    slot = float(int(time.time()))
    for target in sheets:
        executor.submit(SheetJob(target, slot, "bench", force=True))
    executor.pump(time.time())
    env = dict(os.environ, BENCH_REDIS_URL=redis_url, BENCH_QUOTA=json.dumps(quota), BENCH_USERS=str(args.users),
               BENCH_LATENCY=str(args.latency),
               PYTHONPATH=os.pathsep.join([str(REPO / "bench"), str(REPO), os.environ.get("PYTHONPATH", "")]))
    started = time.time()
    procs = [subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", redis_url,
                               "--logging_level", "ERROR", "-c", "sheetsync.schedule.rq_settings", QUEUE_NAME], env=env)
             for _ in range(workers)]
    for p in procs:
        p.wait()
    wall = time.time() - started
    outcomes = ScheduleStore(str(store_path)).outcomes()
    done = sorted(o.finished for o in outcomes if o.status == "recomputed")
    requests = [json.loads(r) for r in client.lrange("bench:requests", 0, -1)]
    per_user: dict[str, list[float]] = {}
    for t, user in requests:
        per_user.setdefault(user, []).append(t)
    steady = (len(done) - 1) / ((done[-1] - done[0]) / 60) if len(done) > 1 else 0.0
    keys = [o.target for o in outcomes if o.status == "recomputed"]
    return {"config": name, "workers": workers, "sheets": len(sheets), "recomputed": len(done),
            "lost": len(set(sheets) - set(keys)), "duplicated": len(keys) - len(set(keys)),
            "sheets_per_min": round(steady, 1), "wall_s": round(wall, 1), "requests": len(requests),
            "max_requests_per_minute": sliding_max([t for t, _ in requests]),
            "max_user_requests_per_minute": max((sliding_max(ts) for ts in per_user.values()), default=0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sheets", type=int, default=200)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per simulated Sheets request")
    args = parser.parse_args()
    if not shutil.which("redis-server"):
        print("redis-server is required (apt-get install redis-server)", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="sheetsync-bench-"))
    redis_proc, redis_url = start_redis(str(tmp))
    try:
        quota = {"user": 60, "project": 300}
        rows = []
        for name, workers, q in (("1 worker", 1, quota), ("4 workers", 4, quota), ("4 workers, no quota", 4, {})):
            folder = tmp / name.replace(" ", "-").replace(",", "")
            folder.mkdir()
            sheets = write_labs(folder, args.sheets)
            rows.append(measure(name, workers, q, sheets, args, redis_url, tmp))
            print(json.dumps(rows[-1]), flush=True)
        print(f"\ncpus: {os.cpu_count()}; latency {args.latency}s/request; {args.users} users; quota 60/user, 300/project "
              "per minute (paced at 54 and 270)")
        print(f"{'config':24} {'sheets/min':>10} {'max req/min':>11} {'max user/min':>12} {'lost':>5} {'dup':>4}")
        for r in rows:
            print(f"{r['config']:24} {r['sheets_per_min']:>10} {r['max_requests_per_minute']:>11} "
                  f"{r['max_user_requests_per_minute']:>12} {r['lost']:>5} {r['duplicated']:>4}")
    finally:
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
