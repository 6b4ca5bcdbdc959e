"""Checks due together share their AWS reads.

A check reads, in the same calls as for itself, for the other deployments whose checks wait on
the queue or fall due within BATCH_AHEAD_SECONDS (RQ's scheduled registry): one GetMetricData
carries all their queries (workers.aws.cloudwatch.fetch_many), one DescribeAlarms all their
alarms, DescribeServices and DescribeTargetGroups the canaries whose existence is to be looked
at (workers.aws.presence). A deployment whose latency is judged has its latency queries in
that same GetMetricData, and its read carries its own per-period series. Each result is kept
in Redis under (deployment, version) for a short while; that deployment's own job finds it,
checks it read the same window, and judges it with its own figures. Nothing waits for a
batch: a job that finds no result (or one still being read) reads for itself, so a rollback is
never delayed, and a read that failed for one member is left for that member's own job to make
again alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from pydantic import BaseModel

from workers import defaults
from workers.analysis.judge import Counts
from workers.analysis.latency import LatencySeries
from workers.analysis.window import MetricWindow, metric_window
from workers.aws.clients import AwsClients
from workers.aws.cloudwatch import (
    METRIC_QUERIES_PER_CALL,
    CountsQuery,
    CountsRead,
    Measurement,
    QueryFailed,
    alarm_states,
    fetch_many,
    fetch_one,
)
from workers.aws.presence import find_gone
from workers.domain.deployment import Deployment
from workers.domain.state import State
from workers.engine.machine import Engine

if TYPE_CHECKING:
    from workers.aws.base import Backend

log = logging.getLogger(__name__)

#: The states whose job is a check (workers.engine.steps.STEPS).
CHECKED = frozenset({State.BAKING, State.HOLDING, State.AWAITING_APPROVAL, State.POST_PROMOTION})
#: The value of a read claimed by a batch still reading it.
_PENDING = b"pending"


@dataclass(frozen=True)
class Read:
    """What a check read of AWS: its counts over `window`, its latency per period there (where
    its backend publishes it and the catalogue judges it), its alarms' states, and (when the
    batched existence lookups were made) what of the canary is gone."""

    window: MetricWindow
    canary: Counts
    stable: Counts
    alarm_states: dict[str, str] = field(default_factory=dict)
    #: The batched existence lookups (ECS service, target group) were made for this check.
    presence_looked: bool = False
    #: What they found gone, in a sentence; None when all is there (or not looked).
    gone: str | None = None
    #: Each whole period's requests and latency at the percentile, from the counts' own call.
    latency: LatencySeries | None = None


class SharedRead(BaseModel):
    """A Read as kept in Redis for another deployment's job."""

    start: int
    end: int
    canary: tuple[int, int]
    stable: tuple[int, int]
    alarm_states: dict[str, str] = {}
    presence_looked: bool = False
    gone: str | None = None
    #: pydantic validates the dataclass field by field, and gives a LatencySeries back.
    latency: LatencySeries | None = None

    @classmethod
    def of(cls, read: Read) -> SharedRead:
        return cls(
            start=read.window.start,
            end=read.window.end,
            canary=(read.canary.requests, read.canary.errors),
            stable=(read.stable.requests, read.stable.errors),
            alarm_states=read.alarm_states,
            presence_looked=read.presence_looked,
            gone=read.gone,
            latency=read.latency,
        )

    def read(self) -> Read:
        return Read(
            window=MetricWindow(self.start, self.end),
            canary=Counts(*self.canary),
            stable=Counts(*self.stable),
            alarm_states=dict(self.alarm_states),
            presence_looked=self.presence_looked,
            gone=self.gone,
            latency=self.latency,
        )


def read_key(prefix: str, dep_id: str, version: int) -> str:
    return f"{prefix}:read:{dep_id}:{version}"


def window_of(dep: Deployment, now: float) -> MetricWindow:
    """The periods a check of `dep` at `now` reads (workers.analysis.window)."""
    s = dep.settings
    return metric_window(dep.step_started_at or dep.state_since, now, s.metric_period, s.lag)


def presence_due(dep: Deployment, canary_requests: int, window: MetricWindow, at: float) -> bool:
    """Whether a check at `at` looks at the canary's resources: at most every
    PRESENCE_INTERVAL_SECONDS, and at once when the periods published since the last check
    brought the canary no request (a deleted canary's first sign)."""
    if dep.canary is not None and dep.canary.router == "ecs":
        # ECS runs that rollout itself and may roll it back at any time (its alarms, its pause
        # timing out): it is followed at every check, one DescribeServiceDeployments.
        return True
    checked = dep.canary_checked_at
    if checked is None or at - checked >= defaults.PRESENCE_INTERVAL_SECONDS:
        return True
    last = dep.last_read
    if last is None or last.step_started_at != dep.step_started_at:
        return False
    return window.end > last.window_end and canary_requests <= last.canary_requests


@dataclass
class _Member:
    dep: Deployment
    backend: Backend
    window: MetricWindow
    query: CountsQuery | None
    #: When its check runs (a peer's due time).
    at: float


def read(engine: Engine, dep: Deployment, window: MetricWindow) -> Read:
    """The check's read: made for it by another check if one did (same window), else made now
    together with the reads of the checks due soon."""
    redis, prefix = engine.rt.redis, engine.store.prefix
    key = read_key(prefix, dep.id, dep.version)
    raw = redis.get(key)
    if raw and raw != _PENDING:
        redis.delete(key)
        shared = SharedRead.model_validate_json(raw).read()
        if shared.window == window:
            return shared
    own = _member(engine, dep, window, engine.now())
    peers = _peers(engine, dep, budget=METRIC_QUERIES_PER_CALL - _queries(own))
    try:
        return _read_all(engine, [own, *peers])
    except BaseException:
        # This check failed (AWS refused its own read, the call budget put it back...): the
        # peers it claimed read for themselves at once rather than after the claims expire.
        if peers:
            redis.delete(*(read_key(prefix, m.dep.id, m.dep.version) for m in peers))
        raise


def _member(engine: Engine, dep: Deployment, window: MetricWindow, at: float) -> _Member:
    backend = engine.backend(dep)
    query = backend.count_query(dep.recorded_stable(), dep.recorded_canary())
    return _Member(dep, backend, window, query, at)


def _queries(member: _Member) -> int:
    # Its latency queries too: they count towards the call's 500.
    return len(member.query.queries()) if member.query else 0


def _peers(engine: Engine, dep: Deployment, *, budget: int) -> list[_Member]:
    """The checks due soon this one reads for, each claimed in Redis (SET NX) so that no other
    batch reads for it too."""
    rt, prefix, now = engine.rt, engine.store.prefix, engine.now()
    due = [
        (i, v)
        for i, v in rt.scheduler.due_soon(defaults.BATCH_AHEAD_SECONDS, defaults.BATCH_PEERS + 1)
        if i != dep.id
    ][: defaults.BATCH_PEERS]
    if not due:
        return []
    ttl = defaults.SHARED_READ_TTL_SECONDS
    with rt.redis.pipeline(transaction=False) as pipe:
        for i, v in due:
            pipe.set(read_key(prefix, i, v), _PENDING, nx=True, ex=ttl)
        won = pipe.execute()
    claimed = [iv for iv, ok in zip(due, won, strict=True) if ok]
    found = {d.id: d for d in engine.store.get_many(list(dict.fromkeys(i for i, _ in claimed)))}
    members: list[_Member] = []
    release: list[str] = []
    for i, version in claimed:
        peer = found.get(i)
        member = _peer(engine, peer, version, now) if peer is not None else None
        if member is None or _queries(member) > budget:
            release.append(read_key(prefix, i, version))
            continue
        budget -= _queries(member)
        members.append(member)
    if release:
        rt.redis.delete(*release)
    return members


def _peer(engine: Engine, peer: Deployment, version: int, now: float) -> _Member | None:
    if peer.version != version or peer.state not in CHECKED:
        return None
    if peer.stable is None or peer.canary is None:
        return None
    at = max(now, peer.next_due_at or now)
    window = window_of(peer, now)
    # Read only what its own check will read: a period that closes before it runs is not ours.
    if window_of(peer, at) != window:
        return None
    try:
        return _member(engine, peer, window, at)
    except ValueError as exc:  # a record its backend cannot read: its own job says so
        log.info("deployment %s left out of a batch: %s", peer.id, exc)
        return None


def _read_all(engine: Engine, members: list[_Member]) -> Read:
    """Read for every member in shared calls; keep the peers' reads in Redis; the first
    member's (the running check's) read is returned. What fails for a peer is left to it."""
    clients = engine.rt.clients
    own, peers = members[0], members[1:]
    with_query = [m for m in members if m.query is not None]
    fetched = fetch_many(
        clients.cloudwatch,
        [
            CountsRead(m.query, _dt(m.window.start), _dt(m.window.end))
            for m in with_query
            if m.query
        ],
    )
    counts: dict[int, Measurement | QueryFailed] = {
        id(m): found for m, found in zip(with_query, fetched, strict=True)
    }
    failed: set[int] = set()
    if isinstance(counts.get(id(own)), QueryFailed) and own.query is not None:
        # Its own read alone, as a check always made it (a bad query status is logged).
        counts[id(own)] = fetch_one(
            clients.cloudwatch,
            CountsRead(own.query, _dt(own.window.start), _dt(own.window.end)),
        )
    for m in peers:
        if isinstance(counts.get(id(m)), QueryFailed):
            failed.add(id(m))

    states = _alarms(clients, own, peers, failed)
    looked, gone = _presence(clients, members, counts, failed)

    zero = Measurement(Counts(0, 0), Counts(0, 0))
    reads: dict[int, Read] = {}
    for m in members:
        found = counts.get(id(m), zero)
        measured = found if not isinstance(found, QueryFailed) else zero
        reads[id(m)] = Read(
            window=m.window,
            canary=measured.canary,
            stable=measured.stable,
            alarm_states={n: states[n] for n in m.dep.settings.alarms if n in states},
            presence_looked=id(m) in looked,
            gone=gone.get(id(m)),
            latency=measured.latency,
        )
    _share(engine, peers, reads, failed)
    return reads[id(own)]


def _alarms(
    clients: AwsClients, own: _Member, peers: Sequence[_Member], failed: set[int]
) -> dict[str, str]:
    """The states of every member's alarms, 100 names a DescribeAlarms."""
    names = [n for m in (own, *peers) if id(m) not in failed for n in m.dep.settings.alarms]
    if not names:
        return {}
    cloudwatch = clients.cloudwatch
    try:
        return alarm_states(cloudwatch, names)
    except ClientError:
        if not peers:
            raise
        # The peers' alarms are left to their own jobs; the check's own are read alone.
        failed.update(id(m) for m in peers)
        return alarm_states(cloudwatch, own.dep.settings.alarms) if own.dep.settings.alarms else {}


def _presence(
    clients: AwsClients,
    members: Sequence[_Member],
    counts: dict[int, Measurement | QueryFailed],
    failed: set[int],
) -> tuple[set[int], dict[int, str | None]]:
    """The batched existence lookups of the members whose check is to look (presence_due)."""
    due: list[_Member] = []
    for m in members:
        found = counts.get(id(m))
        requests = found.canary.requests if isinstance(found, Measurement) else 0
        if id(m) not in failed and presence_due(m.dep, requests, m.window, m.at):
            due.append(m)
    if not due:
        return set(), {}
    try:
        gone = find_gone(clients, [m.backend.presence(m.dep.recorded_canary()) for m in due])
    except ClientError as exc:
        # Not a "not found" (throttled, say): each check looks for itself, unbatched.
        log.warning("batched existence lookups failed: %s", exc)
        return set(), {}
    return {id(m) for m in due}, {id(m): g for m, g in zip(due, gone, strict=True)}


def _share(
    engine: Engine, peers: Sequence[_Member], reads: dict[int, Read], failed: set[int]
) -> None:
    """Keep each peer's read for its own job; release the claims of those that failed."""
    if not peers:
        return
    prefix, ttl = engine.store.prefix, defaults.SHARED_READ_TTL_SECONDS
    with engine.rt.redis.pipeline(transaction=False) as pipe:
        for m in peers:
            key = read_key(prefix, m.dep.id, m.dep.version)
            if id(m) in failed:
                pipe.delete(key)
            else:
                pipe.set(key, SharedRead.of(reads[id(m)]).model_dump_json(), ex=ttl)
        pipe.execute()


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
