"""The product's Prometheus metrics, each defined once here, and the few functions that feed them.

Both processes import this module; each serves what it observed (`workers/runtime/exposition.py`,
docs/OBSERVABILITY.md). Names follow Prometheus's conventions: the `canary_` prefix, `_total`
counters, durations in `_seconds`, and labels of few values: a service key, a state, an AWS
operation, never a deployment id or a user. In the worker's processes prometheus_client runs in
multiprocess mode (PROMETHEUS_MULTIPROC_DIR), which is why no gauge here is set from a callback
and the one live gauge names its `multiprocess_mode`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from workers.analysis.judge import Verdict
from workers.domain.deployment import Deployment
from workers.domain.state import ROLLBACKABLE, TERMINAL, State, Trigger
from workers.engine.store import Store
from workers.runtime.queues import queue_names, rq_queue
from workers.runtime.single_flight import SingleFlight

log = logging.getLogger(__name__)

# Buckets in seconds, by what they time.
#: A traffic step bakes for minutes (tests: seconds); a gate may wait a day.
STEP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
GATE_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 172800)
#: From a click or a due time to the engine acting on it: sub-second when healthy.
REACTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
#: One API call, one job, one acknowledgement of Slack (which waits 3 s at most).
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Deployments ------------------------------------------------------------------------------------
DEPLOYMENTS_FINISHED = Counter(
    "canary_deployments_finished",
    "Deployments that reached an end state, by service and outcome (promoted, rolled_back, "
    "failed).",
    ["service", "outcome"],
)
ROLLBACKS = Counter(
    "canary_rollbacks",
    "Rollbacks started, by cause (abort, canary check, gate_timeout, error...).",
    ["cause"],
)
VERDICTS = Counter(
    "canary_verdicts",
    "Checks of a step, by verdict outcome (pass, fail, baking, not_enough_data) and the reason "
    "code behind it.",
    ["outcome", "reason"],
)
STEP_SECONDS = Histogram(
    "canary_step_duration_seconds",
    "How long a traffic step lasted, from its weight being applied to its end: passed, or "
    "rolled_back.",
    ["outcome"],
    buckets=STEP_BUCKETS,
)
GATE_SECONDS = Histogram(
    "canary_gate_wait_seconds",
    "How long a manual gate stayed open, by how it closed (approved, rolled_back).",
    ["decision"],
    buckets=GATE_BUCKETS,
)
CLICK_TO_SHIFT_SECONDS = Histogram(
    "canary_click_to_shift_seconds",
    "From an approval being recorded to the next step's weights applied, by router.",
    ["router"],
    buckets=REACTION_BUCKETS,
)
ROLLBACK_RESTORE_SECONDS = Histogram(
    "canary_rollback_restore_seconds",
    "From a rollback being asked for to 100 % of traffic back on the stable, by router.",
    ["router"],
    buckets=REACTION_BUCKETS,
)

# Engine jobs ------------------------------------------------------------------------------------
JOB_SECONDS = Histogram(
    "canary_job_duration_seconds",
    "How long one engine job (the step of a state) took, by the state it ran in.",
    ["state"],
    buckets=CALL_BUCKETS,
)
JOB_LATENESS_SECONDS = Histogram(
    "canary_job_lateness_seconds",
    "How late an engine job started after it was due.",
    buckets=REACTION_BUCKETS,
)
JOBS_RUNNING = Gauge(
    "canary_jobs_running",
    "Engine jobs running now, over the worker's live processes.",
    multiprocess_mode="livesum",  # a dead process's running jobs are not running
)
WATCHDOG_RESCHEDULED = Counter(
    "canary_watchdog_rescheduled",
    "Deployments whose next job was overdue and was scheduled again by the watchdog.",
)

# Calls out --------------------------------------------------------------------------------------
AWS_CALLS = Counter(
    "canary_aws_api_calls",
    "AWS API calls (after botocore's retries), by service and operation.",
    ["service", "operation"],
)
AWS_ERRORS = Counter(
    "canary_aws_api_errors",
    "AWS API calls that failed, by service, operation and error code.",
    ["service", "operation", "code"],
)
AWS_SECONDS = Histogram(
    "canary_aws_api_call_duration_seconds",
    "Duration of AWS API calls, retries included, by service and operation.",
    ["service", "operation"],
    buckets=CALL_BUCKETS,
)
SLACK_CALLS = Counter(
    "canary_slack_api_calls",
    "Slack Web API calls (after slack-sdk's retries), by method.",
    ["method"],
)
SLACK_ERRORS = Counter(
    "canary_slack_api_errors",
    "Slack Web API calls that failed, by method and Slack's error (or the exception's name).",
    ["method", "error"],
)

# Requests in (web) ------------------------------------------------------------------------------
SLACK_REQUESTS = Counter(
    "canary_slack_requests",
    "Requests from Slack answered by the web process, by kind (command, block_actions, "
    "event...) and HTTP status.",
    ["kind", "status"],
)
SLACK_ACK_SECONDS = Histogram(
    "canary_slack_ack_duration_seconds",
    "How long the web process took to answer a Slack request (Slack waits 3 s), by kind.",
    ["kind"],
    buckets=CALL_BUCKETS,
)
REFUSALS = Counter(
    "canary_refusals",
    "Refused commands and clicks, by what the per-user limit made of them (answer, slow down, "
    "quiet).",
    ["answer"],
)

#: Every metric above, for the exposition and the checks of the sample dashboard.
ALL = (
    DEPLOYMENTS_FINISHED,
    ROLLBACKS,
    VERDICTS,
    STEP_SECONDS,
    GATE_SECONDS,
    CLICK_TO_SHIFT_SECONDS,
    ROLLBACK_RESTORE_SECONDS,
    JOB_SECONDS,
    JOB_LATENESS_SECONDS,
    JOBS_RUNNING,
    WATCHDOG_RESCHEDULED,
    AWS_CALLS,
    AWS_ERRORS,
    AWS_SECONDS,
    SLACK_CALLS,
    SLACK_ERRORS,
    SLACK_REQUESTS,
    SLACK_ACK_SECONDS,
    REFUSALS,
)

#: Steps of a traffic step that end it: the trigger and how the step ended.
_STEP_ENDS = {
    Trigger.PASSED: "passed",
    Trigger.GATE_OPENED: "passed",
    Trigger.BAKE_DONE: "passed",
    Trigger.ROLL_BACK: "rolled_back",
}
_JUDGED = frozenset({State.BAKING, State.HOLDING, State.POST_PROMOTION})


def observe_transition(
    before: Deployment, after: Deployment, trigger: Trigger | None, now: float
) -> None:
    """Count what a transition from `before` to `after` (by `trigger`, at `now`) ended or did."""
    if trigger is None or before.state == after.state:
        return  # a check that changed nothing, or a change within the state
    router = after.settings.router
    if after.state in TERMINAL and before.state not in TERMINAL:
        DEPLOYMENTS_FINISHED.labels(after.service, after.state.value).inc()
    if trigger == Trigger.ROLL_BACK and before.state in ROLLBACKABLE:
        cause = after.ended_by.value if after.ended_by is not None else "unknown"
        ROLLBACKS.labels(cause).inc()
    if before.state in _JUDGED and trigger in _STEP_ENDS and before.step_started_at is not None:
        STEP_SECONDS.labels(_STEP_ENDS[trigger]).observe(max(0.0, now - before.step_started_at))
    if before.state == State.AWAITING_APPROVAL and before.gate_opened_at is not None:
        decision = "approved" if trigger == Trigger.APPROVED else "rolled_back"
        GATE_SECONDS.labels(decision).observe(max(0.0, now - before.gate_opened_at))
    if trigger == Trigger.SHIFTED:
        approval = before.approvals[-1] if before.approvals else None
        if approval is not None and approval.step == before.step_number:
            CLICK_TO_SHIFT_SECONDS.labels(router).observe(max(0.0, now - approval.at))
    if trigger == Trigger.ROUTE_RESTORED and before.rollback_requested_at is not None:
        ROLLBACK_RESTORE_SECONDS.labels(router).observe(
            max(0.0, now - before.rollback_requested_at)
        )


def observe_verdict(verdict: Verdict) -> None:
    """Count one check's verdict, by its outcome and reason code."""
    VERDICTS.labels(verdict.outcome.value, verdict.code.value).inc()


# AWS: botocore's own events on each client, rather than a wrapper around every call -------------
_STARTED = "canary_telemetry_started"


def watch_aws_clients(clients: Any) -> None:
    """Count and time the calls of every client of an AwsClients (labelled by its field name)."""
    for field in dataclasses.fields(clients):
        client = getattr(clients, field.name)
        if client is not None:
            watch_aws_client(client, field.name)


def watch_aws_client(client: Any, service: str) -> None:
    """Count and time every API call `client` (a botocore client of `service`) makes.

    botocore emits `before-call` once per API call and `after-call` (an HTTP answer, errors
    included) or `after-call-error` (no answer: a connection failure) once retries are over.
    """
    events = client.meta.events

    def before(context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = time.perf_counter()

    def after(
        model: Any, http_response: Any, parsed: Mapping[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        code = None
        if getattr(http_response, "status_code", 200) >= 300:
            error = parsed.get("Error") if isinstance(parsed, Mapping) else None
            code = str((error or {}).get("Code") or http_response.status_code)
        _aws_done(service, model.name, context, code)

    def failed(exception: BaseException, context: dict[str, Any], **kwargs: Any) -> None:
        operation = kwargs.get("event_name", "").rpartition(".")[2] or "unknown"
        _aws_done(service, operation, context, type(exception).__name__)

    events.register("before-call", before)
    events.register("after-call", after)
    events.register("after-call-error", failed)


def _aws_done(service: str, operation: str, context: dict[str, Any], code: str | None) -> None:
    AWS_CALLS.labels(service, operation).inc()
    started = context.get(_STARTED)
    if started is not None:
        AWS_SECONDS.labels(service, operation).observe(time.perf_counter() - started)
    if code is not None:
        AWS_ERRORS.labels(service, operation, code).inc()


# Redis: what is true now, read when scraped -------------------------------------------------------
#: The longest a scrape waits for the Redis reads before leaving the gauges out.
REDIS_READ_TIMEOUT = 2.0


class RedisGauges(Collector):
    """Gauges read from Redis at each scrape: deployments by state, the outbox backlog, and the
    depth of each RQ queue. Every process sharing the Redis reads the same figures (a dashboard
    takes their max); a Redis that does not answer leaves them out of that scrape.

    The reads run one at a time in a thread of their own, waited for at most `timeout`: a Redis
    that hangs must not hold a server thread per scrape (the web's threads answer Slack).
    """

    def __init__(self, store: Callable[[], Store], timeout: float = REDIS_READ_TIMEOUT) -> None:
        self.store, self.timeout = store, timeout
        self._reads = SingleFlight(lambda: list(self._read(self.store())), self._unread)

    def describe(self) -> Iterable[Metric]:
        return []  # read live: nothing to check against other collectors' names

    def collect(self) -> Iterable[Metric]:
        try:
            return self._reads(self.timeout)
        except FutureTimeout:
            log.warning("metrics: Redis did not answer within %g s", self.timeout)
            return []

    @staticmethod
    def _unread(exc: Exception) -> list[Metric]:
        # A scrape must answer even when Redis does not.
        log.warning("metrics: could not read Redis (%s)", type(exc).__name__)
        return []

    def _read(self, store: Store) -> Iterable[Metric]:
        deployments = GaugeMetricFamily(
            "canary_deployments",
            "Deployments under way, by state (read from Redis when scraped).",
            labels=["state"],
        )
        counts = dict.fromkeys((s for s in State if s not in TERMINAL), 0)
        for dep in store.get_many(store.active_ids()):
            if dep.state in counts:
                counts[dep.state] += 1
        for state, n in counts.items():
            deployments.add_metric([state.value], n)
        yield deployments
        yield GaugeMetricFamily(
            "canary_outbox_pending_deployments",
            "Deployments with events not yet delivered to Slack (read from Redis when scraped).",
            value=len(store.undelivered_ids()),
        )
        jobs = GaugeMetricFamily(
            "canary_queue_jobs",
            "Jobs of each RQ queue: queued (ready to run), scheduled (due later), started "
            "(running) and failed (read from Redis when scraped).",
            labels=["queue", "status"],
        )
        redis = store.redis
        queues = [rq_queue(name, redis) for name in queue_names(store.prefix)]
        with redis.pipeline(transaction=False) as pipe:
            for q in queues:
                pipe.llen(q.key)
                pipe.zcard(q.scheduled_job_registry.key)
                pipe.zcard(q.started_job_registry.key)
                pipe.zcard(q.failed_job_registry.key)
            figures = pipe.execute()
        for i, q in enumerate(queues):
            for j, status in enumerate(("queued", "scheduled", "started", "failed")):
                jobs.add_metric([q.name, status], int(figures[4 * i + j]))
        yield jobs


#: The names the RedisGauges collector serves.
REDIS_GAUGE_NAMES = ("canary_deployments", "canary_outbox_pending_deployments", "canary_queue_jobs")
