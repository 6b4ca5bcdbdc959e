"""Every default of the service catalogue and of the engine, in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the type only: this module stays free of imports at run time
    from workers.domain.ecs_plan import GateMode

#: Canary weight in percent at each step.
STEPS: tuple[int, ...] = (10, 25, 50, 100)
#: Observation time at each step before its verdict.
BAKE = "5m"
#: How often metrics are checked while baking or waiting at a gate.
ANALYSIS_INTERVAL = "1m"
#: Percent of canary requests answered 5xx above which the canary fails (with confidence).
MAX_ERROR_RATE = 1.0
#: Latency percentile judged (CloudWatch's pNN statistic) and its limits (docs/ANALYSIS.md):
#: no absolute ceiling unless set; the canary may be at most this many percent slower than the
#: stable at that percentile, in most of a step's periods (None: off).
LATENCY_PERCENTILE = "p99"
MAX_LATENCY: str | None = None
MAX_LATENCY_INCREASE: float | None = 25.0
#: Below this many canary requests at a step the verdict is "not enough data": hold, never pass.
MIN_REQUESTS = 100
#: manual: a gate after every step below 100; auto: none; final: only before 100.
GATES: GateMode = "manual"
#: A gate (or a hold for lack of data) left this long rolls the deployment back.
GATE_TIMEOUT = "24h"
#: After 100 %, the old version is kept running this long, with a Roll back button.
POST_PROMOTION_BAKE = "15m"
#: The canary's tasks must be running and steady by then, else roll back.
READY_TIMEOUT = "10m"
#: true: scale a failed canary to 0 but keep its resources for diagnosis.
KEEP_FAILED_CANARY = False
#: The requester may not approve their own gates.
FOUR_EYES = True
#: CloudWatch period of each query (shorter only in tests and the sandbox).
METRIC_PERIOD = "60s"
#: How long after a period ends CloudWatch has published its data, per traffic backend: an ALB
#: sends its metrics in 60-second intervals; the CloudWatch agent scrapes Envoy (15 s in
#: deploy/cloudwatch-agent-prometheus.yaml), flushes every 5 s, and CloudWatch Logs then extracts
#: the metrics from the log events (docs/METRICS.md).
METRIC_LAG: dict[str, str] = {"appmesh": "2m", "alb": "1m", "ecs": "1m"}

#: Path of the service catalogue when CANARY_CONFIG is unset.
CONFIG_PATH = "canary.yaml"
#: Redis used for state and queues when REDIS_URL is unset.
REDIS_URL = "redis://localhost:6379/0"
#: Prefix of every Redis key and queue name, so two installations can share one Redis.
REDIS_PREFIX = "canary"
#: How often the readiness of the canary's ECS tasks is polled (seconds).
READY_POLL_SECONDS = 10
#: How long a tear-down waits for AWS to drain what it removes (Cloud Map instances of stopping
#: ECS tasks) before the deployment ends failed, naming what is left (seconds).
DRAIN_TIMEOUT_SECONDS = 15 * 60
#: A deployment whose next job is this late (seconds) is rescheduled by the watchdog.
WATCHDOG_GRACE_SECONDS = 30
#: How often the watchdog looks for stalled deployments (seconds).
WATCHDOG_INTERVAL_SECONDS = 10
#: How often RQ's scheduler moves due jobs (checks, retries) onto their queue (seconds); RQ's
#: own 1 s made every scheduled job start up to a second late.
SCHEDULER_INTERVAL_SECONDS = 0.2
#: RQ workers (threads) in each rollout worker process: a job mostly waits for AWS and Redis, so
#: one process overlaps that many jobs (workers/worker_threads.py).
WORKER_THREADS = 8
#: A deployment's jobs run one at a time; the run lock of a crashed job expires after this long.
RUN_LOCK_SECONDS = 60
#: Rollout worker processes started by one `python -m workers`.
WORKERS = 1
#: HTTP port of `python -m bot` (/slack/events, /healthz).
PORT = 3000
#: Base URL of Slack's Web API when SLACK_API_URL is unset.
SLACK_API_URL = "https://slack.com/api/"
#: Python log level of both processes when LOG_LEVEL is unset.
LOG_LEVEL = "INFO"
#: How log lines are written: "text" (one readable line) or "json" (one object per line).
LOG_FORMAT = "text"
#: Deployments kept per service (`/canary history`); older finished ones are deleted from Redis.
HISTORY_KEEP = 100
#: Seconds the event log of a finished deployment is kept in Redis (30 days).
EVENTS_TTL_SECONDS = 30 * 24 * 3600
#: Refused clicks and commands recorded in one deployment's log; more are not recorded.
MAX_REFUSALS = 50
#: Check samples (the chart's data) kept per deployment, the newest: a day of checks a minute
#: apart (a gate's default timeout), about 100 bytes each.
MAX_SAMPLES = 1440
#: Refusals one user may get within CANARY_REFUSAL_WINDOW before one "slow down" answer, after
#: which nothing from them is processed until the window ends.
REFUSAL_LIMIT = 20
#: Seconds of the per-user refusal window (and of the pause after a "slow down").
REFUSAL_WINDOW_SECONDS = 60

#: Name prefix of the temporary directory where the worker's processes keep their metrics
#: (PROMETHEUS_MULTIPROC_DIR, made by `python -m workers` when CANARY_METRICS_PORT is set).
METRICS_DIR_PREFIX = "canary-metrics-"
#: Checks due within the same this many seconds run in one job (workers/engine/slots.py): each
#: slot ends on a multiple of it, and a check waits for the end of its slot, never runs early.
SLOT_SECONDS = 1.0
#: Deployments taken by one slot job at a time, their reads in shared calls (25 x 10 queries:
#: half a GetMetricData of 500); a slot with more is shared with other jobs, so a busy slot's
#: checks run on several threads and processes at once (one job runs its checks one by one).
SLOT_CHUNK = 25
#: Longest time between two looks at a canary's resources (its ECS service, target group or
#: virtual node): between them a check looks only when the newly published periods brought the
#: canary no request, which is what a deleted canary shows first (docs/ARCHITECTURE.md).
PRESENCE_INTERVAL_SECONDS = 10 * 60
#: AWS calls a second for the whole installation (CANARY_AWS_CALLS_PER_SECOND); 0: no ceiling.
AWS_CALLS_PER_SECOND = 0.0
#: Longest a job waits for the call budget before it is put back on its queue (seconds).
BUDGET_MAX_WAIT_SECONDS = 5.0
#: A check that started this many seconds after it was due says so on the card.
LATE_CHECK_SECONDS = 10.0
