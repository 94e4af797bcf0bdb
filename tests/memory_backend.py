"""An in-memory backend for tests: applies a Plan into grids of values and reads them back."""

from sheetsync.backends.base import Snapshot, TabInfo
from sheetsync.errors import OwnershipError


class MemoryBackend:
    def __init__(self, tabs: dict[str, list[list]] | None = None):
        self.grids = {name: [list(r) for r in rows] for name, rows in (tabs or {}).items()}
        self.owned: set[str] = set()
        self.plans = []
        self.reads = 0

    def read(self, tabs):
        self.reads += 1
        infos = [TabInfo(t, i, t in self.owned, len(g), max((len(r) for r in g), default=0))
                 for i, (t, g) in enumerate(self.grids.items())]
        return Snapshot("memory", infos, {t: [list(r) for r in self.grids[t]] for t in tabs if t in self.grids})

    def apply(self, plan):
        for tab in plan.tabs:
            if tab.name in self.grids and tab.name not in self.owned:
                raise OwnershipError(tab.name)
        self.plans.append(plan)
        for tab in plan.tabs:
            rows, cols = tab.extent()
            grid = [[None] * cols for _ in range(rows)]
            for t in tab.tables:
                for j, c in enumerate(t.columns):
                    grid[t.row][t.col + j] = c.header
                    for i, v in enumerate(c.values):
                        v = v.item() if hasattr(v, "item") else v
                        grid[t.row + 1 + i][t.col + j] = None if isinstance(v, float) and v != v else v
            for x in tab.texts:
                grid[x.row][x.col] = x.value
            self.grids[tab.name] = grid
            self.owned.add(tab.name)
