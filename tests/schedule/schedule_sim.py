"""An in-memory fleet of spreadsheets that costs what Google costs, on a simulated clock.

`SimSheets` holds many small lab sheets (`MemoryBackend` grids, tests/memory_backend.py) and
hands out backends with the Google backend's request pattern: a read round is 2 requests
(metadata, then values) and is served from cache until the next `apply`, which is 1 request.
Every request first takes its tokens from the quota buckets (user and project), as
`GoogleBackend._take_quota` does, and is logged with the simulated time, so a test can check
every sliding minute against the quota. The Google fake (tests/google/fake_sheets.py) is kept
for the end-to-end test; 1,000 sheets through a day is too slow through HTTP mocks.
"""

from __future__ import annotations

import threading

from memory_backend import MemoryBackend


class SimClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)

    def advance_to(self, when: float) -> None:
        with self._lock:
            self.now = max(self.now, when)


def lab_tabs(seed: int, lr: float = 0.0001) -> dict[str, list[list]]:
    xs = [1 + (seed + i) % 7 for i in range(6)]
    return {"data": [["x", "y"]] + [[x, 2 * x + 1 + seed % 3] for x in xs],
            "experiments": [["setting", "basic"], ["model", "linear"], ["optimizer", "sgd"],
                            ["lr", lr], ["epochs", 2], ["init a", 1], ["init b", 1]]}


class SimSheets:
    def __init__(self, clock: SimClock, bucket, fail: set[str] | None = None):
        self.clock, self.bucket = clock, bucket
        self.sheets: dict[str, MemoryBackend] = {}
        self.requests: list[tuple[float, str, str]] = []  # (time, user, target)
        self.writes: list[tuple[float, str]] = []  # (time, target) of every apply that landed
        self.fail = fail if fail is not None else set()
        self._lock = threading.Lock()

    def add(self, target: str, tabs: dict) -> None:
        self.sheets[target] = MemoryBackend(tabs)

    def edit(self, target: str, row: int, col: int, value) -> None:
        self.sheets[target].grids["data"][row][col] = value

    def open(self, target: str, credentials: str | None) -> "SimBackend":
        return SimBackend(self, target, credentials or "default")

    def request(self, user: str, target: str) -> None:
        self.bucket.acquire("user:" + user)
        self.bucket.acquire("project:sim")
        with self._lock:
            self.requests.append((self.clock(), user, target))
        if target in self.fail:
            from sheetsync.backends.google import ApiFailure

            raise ApiFailure("Google Sheets is unavailable (HTTP 503)", 503, "UNAVAILABLE")


class SimBackend:
    def __init__(self, fleet: SimSheets, target: str, user: str):
        self.fleet, self.target, self.user = fleet, target, user
        self._round = None

    def read(self, tabs):
        if self._round is None:
            self.fleet.request(self.user, self.target)  # metadata
            self.fleet.request(self.user, self.target)  # values (and the small owned tabs)
            self._round = self.fleet.sheets[self.target]
        return self._round.read(tabs)

    def apply(self, plan) -> None:
        self._round = None
        self.fleet.request(self.user, self.target)
        self.fleet.sheets[self.target].apply(plan)
        with self.fleet._lock:
            self.fleet.writes.append((self.fleet.clock(), self.target))


def max_in_window(times: list[float], window: float = 60.0) -> int:
    """The most requests in any sliding window of `window` seconds."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
