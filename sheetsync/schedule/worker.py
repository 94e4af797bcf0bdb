"""The RQ worker class for sheetsync's queue: ``rq worker -w sheetsync.schedule.worker.Worker
-c sheetsync.schedule.rq_settings --url REDIS_URL``.

RQ (3.x) listens for its commands (shutdown, stop a job, kill a work horse) on a Redis pubsub
thread that waits up to 60 s per poll, and redis-py (8.2+) joins that thread when the worker
stops: a worker took up to a minute to exit after SIGTERM or the end of a `--burst`. These
classes poll every `COMMAND_POLL` seconds instead; commands arrive as before.
"""

from __future__ import annotations

from rq.worker import SimpleWorker as _SimpleWorker
from rq.worker import Worker as _Worker

COMMAND_POLL = 0.2  # seconds; RQ's own value before 2.3 (a blocking read at most this long)


class PromptCommands:
    """Overrides RQ's `subscribe` with a shorter pubsub poll (the rest of it as RQ writes it)."""

    def subscribe(self):
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=COMMAND_POLL, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)


class Worker(PromptCommands, _Worker):
    """RQ's forking worker (a work horse per job), prompt to stop."""


class SimpleWorker(PromptCommands, _SimpleWorker):
    """RQ's in-process worker (no fork), prompt to stop."""
