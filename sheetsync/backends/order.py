"""Where a write puts its tabs: the one rule both backends apply.

A tab the plan replaces takes the place of the tab it replaces, so running one experiment
(``--experiment relu``) leaves every tab where the learner had it. A tab that is new goes next
to its neighbour in the plan (after the tab before it, else before the tab after it), and when
none of the plan's tabs exists yet, after every existing tab in plan order: a first run puts
sheetsync's tabs after the user's own.
"""

from __future__ import annotations

OLD, NEW = "old", "new"


def arrange(existing: list[str], plan: list[str], replaced: set[int], drop: bool = True) -> list[tuple[str, int]]:
    """The order after the write, as (OLD, index in `existing`) and (NEW, index in `plan`).

    `replaced`: indices of existing tabs the write removes (owned tabs the plan replaces or
    drops); a plan tab whose title matches one of them (ignoring case) takes its place.
    `drop` False keeps the replaced tabs in the answer (for a writer that adds the new tabs
    before it deletes the old ones)."""
    seq: list[tuple[str, int]] = [(OLD, i) for i in range(len(existing))]
    slot = {existing[i].casefold(): i for i in replaced}
    placed: set[int] = set()
    for k, title in enumerate(plan):
        i = slot.get(title.casefold())
        if i is not None:
            seq.insert(seq.index((OLD, i)), (NEW, k))
            placed.add(k)
    if placed:
        for k in range(len(plan)):  # after the plan's tab before it
            if k not in placed and k - 1 in placed:
                seq.insert(seq.index((NEW, k - 1)) + 1, (NEW, k))
                placed.add(k)
        for k in reversed(range(len(plan))):  # before the plan's tab after it
            if k not in placed and k + 1 in placed:
                seq.insert(seq.index((NEW, k + 1)), (NEW, k))
                placed.add(k)
    seq += [(NEW, k) for k in range(len(plan)) if k not in placed]
    return [(kind, i) for kind, i in seq if not (drop and kind == OLD and i in replaced)]
