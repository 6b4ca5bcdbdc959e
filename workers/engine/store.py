"""Deployments, event logs, per-service locks and history in Redis, changed by compare-and-set.

Retention (so that Redis does not grow forever) is applied by the transition that ends a
deployment, in the same MULTI: the event log of the deployment and its check samples get their
expiry, and the service's deployments that fall out of the newest `history_keep` are deleted
with their log, samples and notes. Doing it there rather than in a watchdog sweep keeps it
atomic with the end (no window in which a finished log has no expiry), costs a few commands per
finished deployment instead of a scan of every key every sweep, and needs no worker supervisor
to be running. A finished deployment never becomes active again, so the overflow read before
the MULTI cannot turn active. The samples are also bounded while the deployment runs: each check
that adds one trims them to the newest `max_samples`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from redis.lock import Lock

from workers import defaults
from workers.domain.deployment import Deployment
from workers.domain.events import Event
from workers.domain.samples import CheckSample
from workers.engine.migrations import read_deployment, read_event


class Conflict(Exception):
    """The deployment changed since it was read: the transition was not applied."""

    def __init__(self, current: Deployment | None) -> None:
        super().__init__("the deployment changed meanwhile")
        self.current = current


#: A change returns the events it adds; it mutates the Deployment it is given.
Change = Callable[[Deployment], Iterable[Event]]


@dataclass(frozen=True)
class Retention:
    """How long Redis keeps what a deployment leaves behind (README: CANARY_HISTORY_KEEP, ...)."""

    #: Deployments kept per service, newest first; older finished ones are deleted.
    history_keep: int = defaults.HISTORY_KEEP
    #: Seconds the event log of a finished deployment is kept.
    events_ttl: float = defaults.EVENTS_TTL_SECONDS
    #: Refused clicks and commands recorded per deployment; more are not recorded.
    max_refusals: int = defaults.MAX_REFUSALS
    #: Check samples kept per deployment (the chart's data), newest first; older ones dropped.
    max_samples: int = defaults.MAX_SAMPLES


class Store:
    """Redis keys of one installation, all under one prefix."""

    def __init__(
        self, redis: Redis, prefix: str = defaults.REDIS_PREFIX, retention: Retention | None = None
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.retention = retention or Retention()

    # key names -------------------------------------------------------------------------------
    def _dep(self, dep_id: str) -> str:
        return f"{self.prefix}:dep:{dep_id}"

    def _events(self, dep_id: str) -> str:
        return f"{self.prefix}:dep:{dep_id}:events"

    def _samples(self, dep_id: str) -> str:
        return f"{self.prefix}:dep:{dep_id}:samples"

    def _lock(self, service: str) -> str:
        return f"{self.prefix}:lock:{service}"

    def _history(self, service: str) -> str:
        return f"{self.prefix}:history:{service}"

    def _active(self) -> str:
        return f"{self.prefix}:active"

    def _undelivered(self) -> str:
        return f"{self.prefix}:undelivered"

    def _notes(self, dep_id: str) -> str:
        return f"{self.prefix}:dep:{dep_id}:notes"

    # reads -----------------------------------------------------------------------------------
    def get(self, dep_id: str) -> Deployment | None:
        """The deployment, or None if there is none with that id."""
        raw = self.redis.get(self._dep(dep_id))
        # Whichever release wrote it; a newer one's shape is refused (workers/engine/migrations.py).
        return read_deployment(raw) if raw else None

    def get_many(self, dep_ids: list[str]) -> list[Deployment]:
        """The deployments of `dep_ids` that exist, in that order, in one round trip."""
        return [dep for _, dep in self.get_many_raw(dep_ids)]

    def get_many_raw(self, dep_ids: list[str]) -> list[tuple[bytes, Deployment]]:
        """As get_many, each with the bytes it was read from (for `transition(known=...)`)."""
        if not dep_ids:
            return []
        raws = self.redis.mget([self._dep(i) for i in dep_ids])
        return [(raw, read_deployment(raw)) for raw in raws if raw]

    def events(self, dep_id: str, start: int = 0) -> list[Event]:
        """The deployment's events from `start` (0-based) on, in order."""
        raws = self.redis.lrange(self._events(dep_id), start, -1)
        return [read_event(raw) for raw in raws]

    def samples(self, dep_id: str) -> list[CheckSample]:
        """What the deployment's checks saw, oldest first (at most `max_samples` of the newest)."""
        raws = self.redis.lrange(self._samples(dep_id), 0, -1)
        return [CheckSample.model_validate_json(raw) for raw in raws]

    def lock_holder(self, service: str) -> str | None:
        """Id of the deployment that holds the service's lock, if any."""
        holder = self.redis.get(self._lock(service))
        return _text(holder) if holder else None

    def active_ids(self) -> list[str]:
        """Ids of the deployments not yet in a terminal state."""
        return sorted(
            m.decode() if isinstance(m, bytes) else m for m in self.redis.smembers(self._active())
        )

    def history_ids(self, service: str, limit: int = 10) -> list[str]:
        """Ids of the service's deployments, newest first."""
        ids = self.redis.zrevrange(self._history(service), 0, max(limit, 1) - 1)
        return [_text(i) for i in ids]

    def last_ids(self, services: list[str]) -> dict[str, str]:
        """The newest deployment id of each service that has one, in one round trip."""
        with self.redis.pipeline(transaction=False) as pipe:
            for service in services:
                pipe.zrevrange(self._history(service), 0, 0)
            newest = pipe.execute()
        return {s: _text(ids[0]) for s, ids in zip(services, newest, strict=True) if ids}

    # writes ----------------------------------------------------------------------------------
    def create(self, deployment: Deployment, first: Event) -> str | None:
        """Store a new deployment and take its service's lock; return the holder's id if busy."""
        lock = self._lock(deployment.service)

        def create(pipe: Pipeline) -> str | None:
            holder = pipe.get(lock)
            if holder:
                return _text(holder)
            first.seq, first.version = 0, deployment.version
            pipe.multi()
            pipe.set(lock, deployment.id)
            pipe.set(self._dep(deployment.id), deployment.model_dump_json())
            pipe.rpush(self._events(deployment.id), first.model_dump_json())
            pipe.sadd(self._active(), deployment.id)
            pipe.sadd(self._undelivered(), deployment.id)
            pipe.zadd(self._history(deployment.service), {deployment.id: deployment.created_at})
            return None

        # Redis.transaction watches, runs `create`, executes, and retries on a concurrent write.
        # (redis-py's annotations say `func` returns None; with value_from_callable it returns.)
        taken = self.redis.transaction(create, lock, value_from_callable=True)  # type: ignore[arg-type]
        return cast("str | None", taken)

    def transition(
        self,
        dep_id: str,
        expected_version: int,
        change: Change,
        *,
        known: tuple[bytes, Deployment] | None = None,
    ) -> Deployment:
        """Apply `change` if the deployment is still at `expected_version`, else raise Conflict.

        `known`: the record as the caller read it (its bytes, parsed); while the stored bytes
        are the same, that parse is used, not made again (it is not changed: the change gets a
        copy). The new state, the version bump, the events, the samples of the checks the change saw
        (`Deployment.saw`) and (on a terminal state) the release of the service lock are written
        in one MULTI, so a transition happens exactly once.
        """
        # Not Redis.transaction(): it retries on a concurrent write, and a transition must not be
        # re-applied to a deployment that moved meanwhile; the caller decides (Conflict).
        key, log = self._dep(dep_id), self._events(dep_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key, log)
                raw = pipe.get(key)
                if not raw:
                    raise Conflict(None)
                if known is not None and known[0] == raw:
                    current = known[1]
                else:
                    current = read_deployment(raw)  # written back in today's shape below
                if current.version != expected_version:
                    raise Conflict(current)
                # The change's own copy: parsed again from the bytes (a deep copy of the model
                # takes twice as long).
                updated = read_deployment(raw)
                new_events = list(change(updated))
                new_samples = updated.take_samples()
                now = time.time()
                if updated.state != current.state:
                    updated.state_since = now
                updated.version = current.version + 1
                updated.updated_at = now
                # The log's length numbers the new events (most checks add none: no round trip).
                seq = pipe.llen(log) if new_events else 0
                overflow = [] if updated.active else self._overflow(pipe, updated)
                pipe.multi()
                pipe.set(key, updated.model_dump_json())
                for offset, event in enumerate(new_events):
                    event.seq, event.version = seq + offset, updated.version
                    pipe.rpush(log, event.model_dump_json())
                if new_events:
                    pipe.sadd(self._undelivered(), dep_id)
                samples = self._samples(dep_id)
                if new_samples:
                    pipe.rpush(samples, *[s.model_dump_json() for s in new_samples])
                    pipe.ltrim(samples, -max(1, self.retention.max_samples), -1)
                if not updated.active:
                    pipe.srem(self._active(), dep_id)
                    self._release_lock(pipe, updated)
                    pipe.expire(log, max(1, round(self.retention.events_ttl)))
                    pipe.expire(samples, max(1, round(self.retention.events_ttl)))
                    self._forget(pipe, updated.service, overflow)
                pipe.execute()
                return updated
            except WatchError:
                raise Conflict(self.get(dep_id)) from None

    def _overflow(self, pipe: Any, finished: Deployment) -> list[str]:
        """Ids past the newest `history_keep` of the service, but never an active one."""
        # `pipe` is watching: these reads run at once, before the MULTI.
        old = [
            _text(i)
            for i in pipe.zrevrange(
                self._history(finished.service), self.retention.history_keep, -1
            )
        ]
        if not old:
            return []
        # The active set is small (at most one deployment per service); SMISMEMBER would need
        # Redis 6.2, and a managed Redis may be older.
        active = {_text(i) for i in pipe.smembers(self._active())} | {finished.id}
        return [i for i in old if i not in active]

    def _forget(self, pipe: Any, service: str, dep_ids: list[str]) -> None:
        """Delete finished deployments with their event logs, samples and notes (in the MULTI)."""
        if not dep_ids:
            return
        pipe.zrem(self._history(service), *dep_ids)
        pipe.srem(self._undelivered(), *dep_ids)
        keys = (self._dep, self._events, self._samples, self._notes)
        pipe.delete(*[key(i) for i in dep_ids for key in keys])

    def _release_lock(self, pipe: Any, deployment: Deployment) -> None:
        # Only the owner releases: redis-py Lock's own compare-and-delete script, inside the MULTI,
        # so another deployment's lock survives.
        pipe.eval(Lock.LUA_RELEASE_SCRIPT, 1, self._lock(deployment.service), deployment.id)

    def append_event(self, dep_id: str, event: Event) -> Event | None:
        """Add an event that changes no state (a refused click, a reminder).

        None when it was not recorded: the log has expired (it always holds the first event while
        it lives, and a push would make a new key with no expiry), or the event is a refusal and
        the deployment already holds `max_refusals` of them.
        """
        log, notes = self._events(dep_id), self._notes(dep_id)
        refusal = event.kind == "refused"

        def append(pipe: Pipeline) -> Event | None:
            seq = pipe.llen(log)
            if seq == 0:
                return None
            if refusal and int(pipe.hget(notes, "refusals") or 0) >= self.retention.max_refusals:
                return None
            event.seq = seq
            pipe.multi()
            pipe.rpush(log, event.model_dump_json())
            pipe.sadd(self._undelivered(), dep_id)
            if refusal:
                pipe.hincrby(notes, "refusals", 1)
            return event

        added = self.redis.transaction(append, log, notes, value_from_callable=True)  # type: ignore[arg-type]
        return cast("Event | None", added)

    # outbox --------------------------------------------------------------------------------
    def undelivered_ids(self) -> list[str]:
        """Deployments that may have events not yet delivered to people."""
        return sorted(_text(m) for m in self.redis.smembers(self._undelivered()))

    def has_events(self, dep_id: str) -> bool:
        """False once the deployment's event log has expired or been deleted (retention)."""
        return bool(self.redis.exists(self._events(dep_id)))

    def leave_outbox(self, dep_id: str) -> None:
        """Take a deployment out of the outbox: nothing of it is left to deliver."""
        self.redis.srem(self._undelivered(), dep_id)

    def delivered_upto(self, dep_id: str) -> int:
        """Seq of the last delivered event (-1 when none)."""
        value = self.redis.hget(self._notes(dep_id), "delivered")
        return int(value) if value is not None else -1

    def mark_delivered(self, dep_id: str, seq: int) -> None:
        """Record that events up to `seq` were delivered; leave the outbox when caught up."""
        log, notes = self._events(dep_id), self._notes(dep_id)

        def mark(pipe: Pipeline) -> None:
            caught_up = pipe.llen(log) <= seq + 1
            pipe.multi()
            pipe.hset(notes, "delivered", str(seq))
            if caught_up:
                pipe.srem(self._undelivered(), dep_id)

        self.redis.transaction(mark, log)

    # notes: small per-deployment key/values owned by one component (e.g. the Slack notifier) ---
    def notes(self, dep_id: str) -> dict[str, str]:
        """All notes of a deployment."""
        raw = self.redis.hgetall(self._notes(dep_id))
        return {_text(k): _text(v) for k, v in raw.items()}

    def note_of_many(self, dep_ids: list[str], name: str) -> dict[str, str]:
        """One note of many deployments, in one round trip: {id: value} where it is set."""
        with self.redis.pipeline(transaction=False) as pipe:
            for dep_id in dep_ids:
                pipe.hget(self._notes(dep_id), name)
            values = pipe.execute()
        return {i: _text(v) for i, v in zip(dep_ids, values, strict=True) if v}

    def set_notes(self, dep_id: str, values: dict[str, str]) -> None:
        """Set some notes of a deployment."""
        if values:
            self.redis.hset(self._notes(dep_id), mapping=values)

    def set_note_once(self, dep_id: str, name: str, value: str) -> bool:
        """Set a note unless it exists; True when this call set it."""
        return bool(self.redis.hsetnx(self._notes(dep_id), name, value))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
