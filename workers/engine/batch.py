"""Checks due together share their AWS reads.

The checks that fall due in the same slot run in one job (workers.engine.slots), which reads for
all of them at once (`read_many`): one GetMetricData carries all their queries
(workers.aws.cloudwatch.fetch_many), one DescribeAlarms all their alarms, DescribeServices and
DescribeTargetGroups the canaries whose existence is to be looked at (workers.aws.presence). A
deployment whose latency is judged has its latency queries in that same GetMetricData, and its
read carries its own per-period series. Each check is then run with its own read handed in
(`Engine.reads`) and judged with its own figures. A read that failed for one member (its query
refused, its canary deleted) is left out: that member's check reads again alone, and the others
are judged as usual. A check run by its own job (a rollback's neighbours, the watchdog's
reschedule) reads alone (`read`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from workers import defaults
from workers.analysis.judge import Counts
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
from workers.engine.machine import Engine
from workers.engine.read import Read

if TYPE_CHECKING:
    from workers.aws.base import Backend

log = logging.getLogger(__name__)


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
    #: When its check runs.
    at: float


def read(engine: Engine, dep: Deployment, window: MetricWindow) -> Read:
    """The check's read: the one its slot job has just made for it (at that moment's window,
    which the check then judges), else made now for `window`."""
    handed = engine.reads.pop((dep.id, dep.version), None)
    if handed is not None:
        return handed
    own = _member(engine, dep, window, engine.now())
    return _read_all(engine, [own], alone=True)[id(own)]


def read_many(
    engine: Engine, deps: Sequence[Deployment]
) -> tuple[dict[tuple[str, int], Read], list[Deployment]]:
    """The reads of the checks of `deps`, made now in shared calls, by (id, version), and the
    deployments past what one GetMetricData carries (500 queries), not read. Those whose read
    failed (or that the batch cannot read) are in neither: each such check reads alone."""
    now = engine.now()
    members: list[_Member] = []
    over: list[Deployment] = []
    budget = METRIC_QUERIES_PER_CALL
    for dep in deps:
        try:
            member = _member(engine, dep, window_of(dep, now), now)
        except ValueError as exc:  # a record its backend cannot read: its own check says so
            log.info("deployment %s left out of a batch: %s", dep.id, exc)
            continue
        if members and _queries(member) > budget:
            over.append(dep)
            continue
        budget -= _queries(member)
        members.append(member)
    if not members:
        return {}, over
    reads = _read_all(engine, members, alone=False)
    return {(m.dep.id, m.dep.version): reads[id(m)] for m in members if id(m) in reads}, over


def _queries(member: _Member) -> int:
    # Its latency queries too: they count towards the call's 500.
    return member.query.size if member.query else 0


def _member(engine: Engine, dep: Deployment, window: MetricWindow, at: float) -> _Member:
    backend = engine.backend(dep)
    query = backend.count_query(dep.recorded_stable(), dep.recorded_canary())
    return _Member(dep, backend, window, query, at)


def _read_all(engine: Engine, members: list[_Member], *, alone: bool) -> dict[int, Read]:
    """Read for every member in shared calls, by id() of the member. `alone` (one member, its
    own check): a failure is raised as a check always raised it. Else what fails for a member
    leaves it out."""
    clients = engine.rt.clients
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
    for m in members:
        if not isinstance(counts.get(id(m)), QueryFailed):
            continue
        if alone and m.query is not None:
            # Its own read alone, as a check always made it (a bad query status is logged).
            counts[id(m)] = fetch_one(
                clients.cloudwatch,
                CountsRead(m.query, _dt(m.window.start), _dt(m.window.end)),
            )
        else:
            failed.add(id(m))

    states = _alarms(clients, members, failed, alone=alone)
    looked, gone = _presence(clients, members, counts, failed)

    zero = Measurement(Counts(0, 0), Counts(0, 0))
    reads: dict[int, Read] = {}
    for m in members:
        if id(m) in failed:
            continue
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
    return reads


def _alarms(
    clients: AwsClients, members: Sequence[_Member], failed: set[int], *, alone: bool
) -> dict[str, str]:
    """The states of every member's alarms, 100 names a DescribeAlarms."""
    names = [n for m in members if id(m) not in failed for n in m.dep.settings.alarms]
    if not names:
        return {}
    try:
        return alarm_states(clients.cloudwatch, names)
    except ClientError:
        if alone:
            raise
        # Each member whose alarms were asked for reads again alone, in its own check.
        failed.update(id(m) for m in members if m.dep.settings.alarms)
        return {}


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


def _dt(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
