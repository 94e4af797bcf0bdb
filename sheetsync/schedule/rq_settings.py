"""Settings for RQ workers: ``rq worker -w sheetsync.schedule.worker.Worker -c sheetsync.schedule.rq_settings
--url REDIS_URL`` (the worker class: see `worker`).

RQ imports this module in the worker's main process, which then forks a work horse per job;
importing the runner (numpy, pandas, the layout) here means every horse inherits it already
loaded instead of paying the import on each job (~0.3 s; more where numba compiles the loops).
"""

import sheetsync.runner  # noqa: F401 - preloaded for the forked work horses
from sheetsync.schedule.executors import QUEUE_NAME

QUEUES = [QUEUE_NAME]
