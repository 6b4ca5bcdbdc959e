"""The engine's RQ queues and the one way jobs are put on them."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

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


def slot_of(due: float, seconds: float = defaults.SLOT_SECONDS) -> float:
    """The end of the slot `due` falls in: rounded up, so no check runs before it is due."""
    return math.ceil(round(due / seconds, 6)) * seconds


def slot_name(slot: float) -> str:
    """A slot's name in keys and job ids (milliseconds since the epoch)."""
    return str(round(slot * 1000))


class SlotSet:
    """The checks waiting for their slot: a sorted set of "<id>:<version>" scored by due time
    (workers.engine.slots runs them)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix
        self.key = f"{prefix}:slots"

    def add(self, checks: Sequence[tuple[str, int, float]]) -> list[float]:
        """Put each check (id, version, slot) in its slot, in one round trip; the slots this
        call is the first for (SET NX on each slot's key), whose job it is to schedule."""
        if not checks:
            return []
        slots = list(dict.fromkeys(slot for _, _, slot in checks))
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.key, {f"{i}:{v}": slot for i, v, slot in checks})
            for slot in slots:
                ttl = max(60, math.ceil(slot - time.time()) + 3600)
                pipe.set(f"{self.prefix}:slot:{slot_name(slot)}", 1, nx=True, ex=ttl)
            _, *first = pipe.execute()
        return [slot for slot, won in zip(slots, first, strict=True) if won]

    def put_back(self, members: dict[tuple[str, int], float]) -> None:
        """Return members (with their due times) to the set."""
        if members:
            self.redis.zadd(self.key, {f"{i}:{v}": due for (i, v), due in members.items()})

    def pop(self, slot: float, limit: int) -> tuple[list[tuple[str, int]], int]:
        """Up to `limit` checks due by `slot`, taken out of the set, and how many due ones are
        left. A check is this caller's only if its ZREM removed it: two jobs popping at once
        never both get one (and no script is needed)."""
        due = self.redis.zrangebyscore(self.key, "-inf", slot, start=0, num=limit)
        if not due:
            return [], 0
        with self.redis.pipeline(transaction=False) as pipe:
            for member in due:
                pipe.zrem(self.key, member)
            pipe.zcount(self.key, "-inf", slot)
            *removed, left = pipe.execute()
        taken: list[tuple[str, int]] = []
        for member, won in zip(due, removed, strict=True):
            text = member.decode() if isinstance(member, bytes) else str(member)
            dep_id, _, version = text.rpartition(":")
            if won and dep_id and version.isdigit():
                taken.append((dep_id, int(version)))
        return taken, int(left)


@runtime_checkable
class SlotScheduler(Scheduler, Protocol):
    """A Scheduler that runs the checks due in the same slot in one job (workers.engine.slots);
    the engine falls back on `run` with a scheduler that does not (the unit tests' recorder)."""

    @property
    def slots(self) -> SlotSet: ...

    def run_in_slots(self, checks: Sequence[tuple[str, int, float]]) -> None:
        """Check each deployment (id, version, slot) at that version in the job of its slot
        (epoch seconds)."""
        ...

    def slot_job(self, slot: float) -> None:
        """One more job for `slot`, at once (its members are more than one job takes)."""
        ...


class RqScheduler:
    """Puts engine jobs on RQ queues; delayed ones through RQ's scheduler (`enqueue_in`)."""

    def __init__(self, redis: Redis, prefix: str = defaults.REDIS_PREFIX) -> None:
        self.prefix = prefix
        high, default, notify = queue_names(prefix)
        self.high = rq_queue(high, redis)
        self.default = rq_queue(default, redis)
        self.notify_queue = rq_queue(notify, redis)
        self.slots = SlotSet(redis, prefix)

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

    def run_in_slots(self, checks: Sequence[tuple[str, int, float]]) -> None:
        """Add the checks to their slots; the first to add to a slot schedules its job (one job
        id per slot, enqueued once)."""
        first = self.slots.add(checks)
        now = time.time()
        for slot in first:
            # RQ keeps a scheduled job's time in whole seconds (rounded down): the job of a slot
            # that does not end on one is scheduled for the next, never before its slot's end.
            # A slot whose end is past (a check that ran late) is enqueued at once, rather than
            # waiting for the scheduler's next pass.
            at = math.ceil(slot)
            self._put(
                self.default,
                "workers.runtime.jobs.run_slot",
                f"{self.prefix}-slot-{slot_name(slot)}",
                0,
                slot,
                at=at if at > now else None,
            )
        # A check added after its slot's job may have run (a slow chunk adds its members' next
        # checks at its end): one more job for such a slot, at once, rather than the watchdog.
        for slot in {slot for _, _, slot in checks if slot <= now} - set(first):
            self.slot_job(slot)

    def slot_job(self, slot: float) -> None:
        self._put(self.default, "workers.runtime.jobs.run_slot", None, 0, slot)

    def _put(
        self,
        queue: Queue,
        func: str,
        job_id: str | None,
        delay: float,
        *args: object,
        at: float | None = None,
    ) -> None:
        options = {
            "job_id": job_id,
            "result_ttl": RESULT_TTL,
            "ttl": JOB_TTL,
            "job_timeout": JOB_TIMEOUT,
            "failure_ttl": JOB_TTL,
        }
        if at is not None:
            queue.enqueue_at(datetime.fromtimestamp(at, UTC), func, *args, **options)
        elif delay > 0:
            queue.enqueue_in(timedelta(seconds=delay), func, *args, **options)
        else:
            queue.enqueue(func, *args, **options)
