"""The engine's RQ queues and the one way jobs are put on them."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Protocol

from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

from workers import defaults

#: Job results are of no use once the deployment's state has moved on.
RESULT_TTL = 60
#: A job that has not started after a day is not worth running.
JOB_TTL = 24 * 3600
#: Longest an AWS step may run before RQ kills the job (the watchdog then reschedules it).
JOB_TIMEOUT = 600


#: Jobs carry ids only, so JSON holds them all; RQ's default (pickle) would run whatever code
#: anyone able to write to the Redis planted in a job (docs/SECURITY.md).
SERIALIZER = JSONSerializer


def rq_queue(name: str, redis: Redis) -> Queue:
    """The RQ queue `name`, with the engine's serializer (every Queue of the engine is one)."""
    return Queue(name, connection=redis, serializer=SERIALIZER)


def queue_names(prefix: str = defaults.REDIS_PREFIX) -> tuple[str, str, str]:
    """(high, default, notify): aborts and rollbacks, the rest of the rollout, Slack delivery."""
    return f"{prefix}-high", f"{prefix}-default", f"{prefix}-notify"


class Scheduler(Protocol):
    """Where the engine asks for its next job; RQ in production, a recorder in unit tests."""

    def run(self, dep_id: str, version: int, *, delay: float = 0, urgent: bool = False) -> None: ...

    def notify(self, dep_id: str, *, delay: float = 0) -> None: ...

    def check(self, service: str, *, response_url: str, channel: str | None) -> None: ...

    def chart(self, dep_id: str, what: str, *, delay: float = 0, attempt: int = 0) -> None: ...

    def due_soon(self, within: float, limit: int) -> list[tuple[str, int]]:
        """(deployment id, version) of up to `limit` ordinary run jobs waiting on their queue or
        due within `within` seconds (the checks a check may read for: workers.engine.batch)."""
        ...


class RqScheduler:
    """Puts engine jobs on RQ queues; delayed ones through RQ's scheduler (`enqueue_in`)."""

    def __init__(self, redis: Redis, prefix: str = defaults.REDIS_PREFIX) -> None:
        self.prefix = prefix
        high, default, notify = queue_names(prefix)
        self.high = rq_queue(high, redis)
        self.default = rq_queue(default, redis)
        self.notify_queue = rq_queue(notify, redis)

    def run(self, dep_id: str, version: int, *, delay: float = 0, urgent: bool = False) -> None:
        """Run the deployment's next step at `version`; a job id per version dedupes re-enqueues."""
        queue = self.high if urgent else self.default
        self._put(
            queue,
            "workers.runtime.jobs.run",
            f"{self.prefix}-run-{dep_id}-{version}",
            delay,
            dep_id,
            version,
        )

    def notify(self, dep_id: str, *, delay: float = 0) -> None:
        """Deliver the deployment's pending notifications."""
        self._put(self.notify_queue, "workers.runtime.jobs.deliver", None, delay, dep_id)

    def check(self, service: str, *, response_url: str, channel: str | None) -> None:
        """Run the doctor's read-only checks of a service and post the table to response_url."""
        self._put(
            self.default, "workers.runtime.jobs.check", None, 0, service, response_url, channel
        )

    def chart(self, dep_id: str, what: str, *, delay: float = 0, attempt: int = 0) -> None:
        """Draw the deployment's chart and upload it into its thread (the notify worker: the
        web process never draws); one job id per occasion and attempt dedupes re-enqueues."""
        self._put(
            self.notify_queue,
            "workers.runtime.jobs.chart",
            f"{self.prefix}-chart-{dep_id}-{what}-{attempt}",
            delay,
            dep_id,
            what,
            attempt,
        )

    def due_soon(self, within: float, limit: int) -> list[tuple[str, int]]:
        queue = self.default
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in queue.get_job_ids(0, limit)]
        # RQ's scheduled registry is a sorted set scored by due time (epoch seconds).
        due = queue.connection.zrangebyscore(
            queue.scheduled_job_registry.key, "-inf", time.time() + within, start=0, num=limit
        )
        ids += [i.decode() if isinstance(i, bytes) else str(i) for i in due]
        found: list[tuple[str, int]] = []
        head = f"{self.prefix}-run-"
        for job_id in dict.fromkeys(ids):
            if job_id.startswith(head):
                dep_id, _, version = job_id[len(head) :].rpartition("-")
                if dep_id and version.isdigit():
                    found.append((dep_id, int(version)))
        return found[:limit]

    def _put(
        self, queue: Queue, func: str, job_id: str | None, delay: float, *args: object
    ) -> None:
        options = {
            "job_id": job_id,
            "result_ttl": RESULT_TTL,
            "ttl": JOB_TTL,
            "job_timeout": JOB_TIMEOUT,
            "failure_ttl": JOB_TTL,
        }
        if delay > 0:
            queue.enqueue_in(timedelta(seconds=delay), func, *args, **options)
        else:
            queue.enqueue(func, *args, **options)
