"""Scheduled batch recomputation of a study group's shared sheets.

The flow, one direction (the scheduler orchestrates, it owns no math; `sheetsync.runner.run` does the work):

    trigger process (one per deployment: `sheetsync scheduler`, or a leader inside the server)
      │ due schedules (APScheduler triggers over our SQLite table, `triggers.py`, `store.py`)
      ▼
    Dispatcher.tick(now)   expand lists and rosters into sheets, check the quota can carry the
      │                    schedule, spread the sheets over the interval (`dispatch.py`)
      ▼
    executor               a thread pool (embedded default) or RQ workers (Redis URL)
      ▼
    recompute(job)         idempotency claim, lock per spreadsheet, ONE cheap read, inputs hash;
                           unchanged: skip; changed or forced: `sheetsync.runner.run` on the same
                           read round (no second read), bounded retries (`work.py`)
      ▼
    outcome table + the sheet's own run log; a roster's `leaderboard` tab (`roster.py`)

With Redis configured the per-spreadsheet locks, the quota buckets, the idempotency claims and
the change hashes live in Redis (`coordination.py`) so they hold across machines.

Limits, on purpose: outcomes are written to the SQLite store the workers are given, so RQ
workers on other machines need that file on storage they share with the trigger process (the
locks, the buckets, the claims and the change hashes are in Redis and need nothing shared);
the queue of jobs waiting for their spread start lives in the trigger process's memory without
Redis (a restart forgets it: the next slot picks up what changed); an RQ deployment does not
coalesce a late schedule's jobs (a second job of a sheet costs one cheap check and is skipped).
"""
