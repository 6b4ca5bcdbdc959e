"""CloudWatch reads for judging a step: canary and stable request/5xx counts, their latency per
period where the backend publishes it, alarm states."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from workers.analysis.judge import Counts
from workers.analysis.latency import LatencySeries, percentile_stat, periods_from_series
from workers.analysis.templates import CODE_CLASSES, AlbMetricTemplate, MetricTemplate, Version

log = logging.getLogger(__name__)

#: DescribeAlarms accepts at most this many names per call.
_ALARM_NAMES_PER_CALL = 100


@dataclass(frozen=True)
class AlbTarget:
    """One side of the comparison behind an ALB: its target group's load balancer counters."""

    load_balancer: str  # CloudWatch's LoadBalancer dimension: "app/<name>/<id>"
    target_group: str  # CloudWatch's TargetGroup dimension: "targetgroup/<name>/<id>"
    target_group_name: str
    cluster: str


@dataclass(frozen=True)
class Measurement:
    """What one check fetched: each side's cumulative counts, and the latency per whole period
    when the backend publishes it (None otherwise)."""

    canary: Counts
    stable: Counts
    latency: LatencySeries | None = None


class MissingAlarmError(ValueError):
    """A configured alarm does not exist: a configuration error, neither firing nor quiet."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        if len(self.names) == 1:
            subject, it = f"alarm {self.names[0]} does", "it"
        else:
            subject, it = f"alarms {', '.join(self.names)} do", "them"
        super().__init__(
            f"CloudWatch {subject} not exist in this account and region; "
            f"create {it} or remove {it} from the service's `alarms`"
        )


#: One GetMetricData call carries at most this many queries, and answers at most this many data
#: points a page (CloudWatch API reference, GetMetricData: "as many as 500 different metrics in a
#: single request, with a total of as many as 100,800 data points"; more points come as pages).
METRIC_QUERIES_PER_CALL = 500
DATAPOINTS_PER_CALL = 100_800


@dataclass(frozen=True)
class Side:
    """The metrics (boto3 `Metric`s) whose sums are one version's requests and errors; a metric
    may be in both (Envoy's 5xx class is a request and an error)."""

    requests: tuple[dict[str, Any], ...]
    errors: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class LatencyQuery:
    """Each side's latency metric (boto3 `Metric`s), read at `percentile` per period
    (`Stat: pNN`); `to_ms` turns its unit into milliseconds."""

    canary: dict[str, Any]
    stable: dict[str, Any]
    percentile: float
    to_ms: float = 1.0


@dataclass(frozen=True)
class CountsQuery:
    """What a deployment's counts are read from: each side's metrics, their period and statistic;
    and, where the backend publishes it, each side's latency at a percentile per period.

    Typed apart from the call so that the queries of many deployments can share one
    GetMetricData (workers.engine.batch) and each still gets its own figures.
    """

    canary: Side
    stable: Side
    period: int
    statistic: str = "Sum"
    #: Errors are capped at the requests (ALB: a 5xx answered before a target was chosen).
    cap_errors: bool = False
    #: Read in the same call as the counts (None: the backend publishes none, or not judged).
    latency: LatencyQuery | None = None

    def queries(self) -> list[tuple[str, dict[str, Any], str]]:
        """(local id, Metric, Stat) of every query the read makes: the counts' metrics (`metrics`),
        then the latency's `cl` and `sl`. What counts towards a call's limits."""
        return list(self._queries)

    @property
    def size(self) -> int:
        """How many queries the read makes (`queries`)."""
        return len(self._queries)

    def metrics(self) -> list[tuple[str, dict[str, Any]]]:
        """(local id, Metric) of each distinct metric, in a stable order: c.. canary, s.. stable."""
        return list(self._metrics)

    # Worked out once a query (a frozen record): a slot job asks for them several times for each
    # of its members (limits, the request, the sums).
    @cached_property
    def _queries(self) -> tuple[tuple[str, dict[str, Any], str], ...]:
        out = [(local, metric, self.statistic) for local, metric in self._metrics]
        if self.latency is not None:
            stat = percentile_stat(self.latency.percentile)
            out += [("cl", self.latency.canary, stat), ("sl", self.latency.stable, stat)]
        return tuple(out)

    @cached_property
    def _metrics(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        return self._layout[0]

    @cached_property
    def _sides(self) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
        """The local ids of (requests, errors) of the canary, then of the stable."""
        return self._layout[1]

    @cached_property
    def _layout(
        self,
    ) -> tuple[
        tuple[tuple[str, dict[str, Any]], ...],
        tuple[tuple[tuple[str, ...], tuple[str, ...]], ...],
    ]:
        # Each distinct metric once, named c1.. / s1.. in order of first use; each side's
        # requests and errors by those names (a metric may be both: Envoy's 5xx class).
        metrics: list[tuple[str, dict[str, Any]]] = []
        sides: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        for side, name in ((self.canary, "c"), (self.stable, "s")):
            seen: list[dict[str, Any]] = []

            def local(metric: dict[str, Any], name: str = name, seen: list[Any] = seen) -> str:
                for n, known in enumerate(seen, 1):
                    if known is metric or known == metric:
                        return f"{name}{n}"
                seen.append(metric)
                metrics.append((f"{name}{len(seen)}", metric))
                return f"{name}{len(seen)}"

            requests = tuple(local(m) for m in side.requests)
            errors = tuple(local(m) for m in side.errors)
            sides.append((requests, errors))
        return tuple(metrics), tuple(sides)

    def fold(self, sums: dict[str, float]) -> tuple[Counts, Counts]:
        """(canary, stable) Counts from the sums per local id (as `metrics` names them)."""

        def total(ids: tuple[str, ...]) -> int:
            # Sums of counters are whole numbers; rounding only removes float noise.
            return sum(max(0, round(sums.get(i, 0.0))) for i in ids)

        def counts(requests_ids: tuple[str, ...], errors_ids: tuple[str, ...]) -> Counts:
            requests, errors = total(requests_ids), total(errors_ids)
            return Counts(
                requests=requests, errors=min(errors, requests) if self.cap_errors else errors
            )

        canary, stable = self._sides
        return counts(*canary), counts(*stable)

    def latency_of(self, points: Mapping[str, Mapping[float, float]]) -> LatencySeries | None:
        """Each whole period's requests and latency per side, from each local id's values by
        period start (epoch seconds); None without a latency query."""
        if self.latency is None:
            return None

        def requests(ids: tuple[str, ...]) -> dict[float, float]:
            per_period: dict[float, float] = {}
            for local in ids:
                for start, value in points.get(local, {}).items():
                    per_period[start] = per_period.get(start, 0.0) + value
            return per_period

        def in_ms(local: str) -> dict[float, float]:
            assert self.latency is not None
            return {t: v * self.latency.to_ms for t, v in points.get(local, {}).items()}

        return periods_from_series(
            self.latency.percentile,
            requests(self._sides[0][0]),
            requests(self._sides[1][0]),
            in_ms("cl"),
            in_ms("sl"),
        )

    def measurement(
        self, sums: dict[str, float], points: Mapping[str, Mapping[float, float]]
    ) -> Measurement:
        """The read's Measurement from the sums and per-period values per local id."""
        canary, stable = self.fold(sums)
        return Measurement(canary, stable, self.latency_of(points))


def stable_only(query: CountsQuery) -> CountsQuery:
    """The query's stable side alone (its canary side reads nothing, no latency): the stable's
    counts before a canary exists (the baseline read at provisioning)."""
    return replace(query, canary=Side(requests=(), errors=()), latency=None)


@dataclass(frozen=True)
class CountsRead:
    """One deployment's counts to read: its queries over its own window [start, end)."""

    query: CountsQuery
    start: datetime
    end: datetime


class QueryFailed(Exception):
    """CloudWatch could not answer one deployment's queries (its call, or their status, failed)."""


def envoy_query(
    template: MetricTemplate, *, canary: Version, stable: Version, period: int
) -> CountsQuery:
    """Envoy's counters: requests are classes 1..5, errors class 5."""

    def side(version: Version) -> Side:
        per_class = tuple(template.metric_for(version, c) for c in CODE_CLASSES)
        return Side(requests=per_class, errors=(per_class[CODE_CLASSES.index(5)],))

    return CountsQuery(side(canary), side(stable), _period(period), template.statistic)


def alb_query(
    template: AlbMetricTemplate,
    *,
    canary: AlbTarget,
    stable: AlbTarget,
    period: int,
    percentile: float | None = None,
) -> CountsQuery:
    """A target group's load balancer counters: its requests metric, errors the error metrics;
    with a `percentile`, also the template's latency metric at it per period (TargetResponseTime,
    `Stat: p99`)."""

    def metric(target: AlbTarget, name: str) -> dict[str, Any]:
        return template.metric_for(
            name,
            load_balancer=target.load_balancer,
            target_group=target.target_group,
            target_group_name=target.target_group_name,
            cluster=target.cluster,
        )

    def side(target: AlbTarget) -> Side:
        return Side(
            requests=(metric(target, template.requests_metric),),
            errors=tuple(metric(target, name) for name in template.error_metrics),
        )

    latency = None
    if percentile is not None and template.latency_metric is not None:
        latency = LatencyQuery(
            canary=metric(canary, template.latency_metric),
            stable=metric(stable, template.latency_metric),
            percentile=percentile,
            to_ms=1000.0 if template.latency_unit == "Seconds" else 1.0,
        )
    return CountsQuery(
        side(canary),
        side(stable),
        _period(period),
        template.statistic,
        cap_errors=True,
        latency=latency,
    )


def _period(period_s: int) -> int:
    period = int(period_s)
    if period < 1:
        raise ValueError(f"period_s must be at least 1 second, got {period_s!r}")
    return period


def fetch_one(cloudwatch: Any, read: CountsRead) -> Measurement:
    """One deployment's (canary, stable) counts, and its latency per period when its query asks
    for it, from one GetMetricData call (pages followed)."""
    if read.start >= read.end:
        return Measurement(Counts(0, 0), Counts(0, 0))
    found = fetch_many(cloudwatch, [read], lenient=True)[0]
    if isinstance(found, QueryFailed):
        raise found
    return found


def fetch_many(
    cloudwatch: Any, reads: Sequence[CountsRead], *, lenient: bool = False
) -> list[Measurement | QueryFailed]:
    """The counts (and latency per period, for the queries that ask for it) of many
    deployments, in as few GetMetricData calls as CloudWatch allows.

    Reads of one period share a call (up to 500 queries and an estimated 100,800 data points,
    the latency queries included): the call spans their windows, and each read sums only the
    data points inside its own. What fails for one read (a query answered InternalError or
    Forbidden) is a QueryFailed in its own place and the others keep their figures; a call
    CloudWatch refuses as a whole (a ClientError) fails only its reads. `lenient` keeps today's
    single-read behaviour: a query's bad status is logged and its figures used as they came.
    """
    out: list[Measurement | QueryFailed] = [QueryFailed("not read")] * len(reads)
    todo = []
    for i, read in enumerate(reads):
        if read.start >= read.end:
            out[i] = Measurement(Counts(0, 0), Counts(0, 0))
        else:
            todo.append(i)
    for chunk in _chunks(reads, todo):
        _fetch_chunk(cloudwatch, reads, chunk, out, lenient=lenient)
    return out


def _chunks(reads: Sequence[CountsRead], todo: list[int]) -> list[list[int]]:
    """Indexes of `reads` grouped into calls: one period a call (so that the call's periods start
    where each read's do), within the per-call limits, windows that start alike together."""
    chunks: list[list[int]] = []
    by_period: dict[int, list[int]] = {}
    for i in todo:
        by_period.setdefault(reads[i].query.period, []).append(i)
    for period, members in by_period.items():
        members.sort(key=lambda i: reads[i].start)
        current: list[int] = []
        queries, end = 0, None
        for i in members:
            read = reads[i]
            count = read.query.size
            start = reads[current[0]].start if current else read.start  # sorted by start
            wider = max(end, read.end) if current and end is not None else read.end
            # Periods the call spans, for every query: an upper bound of the points it returns.
            spans = max(1, -(-int((wider - start).total_seconds()) // period))
            total = queries + count
            if current and (total > METRIC_QUERIES_PER_CALL or total * spans > DATAPOINTS_PER_CALL):
                chunks.append(current)
                current, queries, end = [i], count, read.end
            else:
                current.append(i)
                queries, end = total, wider
        if current:
            chunks.append(current)
    return chunks


def _fetch_chunk(
    cloudwatch: Any,
    reads: Sequence[CountsRead],
    chunk: list[int],
    out: list[Measurement | QueryFailed],
    *,
    lenient: bool,
) -> None:
    single = len(chunk) == 1
    start = min(reads[i].start for i in chunk)
    end = max(reads[i].end for i in chunk)
    queries: list[dict[str, Any]] = []
    owner: dict[str, tuple[int, str]] = {}
    for i in chunk:
        query = reads[i].query
        for local, metric, stat in query._queries:
            # Ids must start with a lower-case letter and be unique in the call.
            qid = local if single else f"d{i}_{local}"
            owner[qid] = (i, local)
            queries.append(
                {
                    "Id": qid,
                    "MetricStat": {"Metric": metric, "Period": query.period, "Stat": stat},
                    "ReturnData": True,
                }
            )
    sums: dict[int, dict[str, float]] = {i: {} for i in chunk}
    # Each value by its period's start (epoch s), for the reads whose latency is judged per period.
    points: dict[int, dict[str, dict[float, float]]] = {i: {} for i in chunk}
    failed: dict[int, str] = {}
    request: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    try:
        # boto3's paginator follows NextToken: one GetMetricData call per page, as CloudWatch
        # answers (botocore's cloudwatch paginators-1.json: input and output token NextToken).
        for page in cloudwatch.get_paginator("get_metric_data").paginate(**request):
            for result in page.get("MetricDataResults", []):
                if result.get("Id") not in owner:
                    continue
                i, local = owner[result["Id"]]
                values = [float(v) for v in result.get("Values", [])]
                stamps = list(result.get("Timestamps", []))
                read = reads[i]
                if (read.start, read.end) != (start, end):
                    # A wider call than this read's window: only its own periods count.
                    kept = [
                        (v, t)
                        for v, t in zip(values, stamps, strict=True)
                        if read.start <= t < read.end
                    ]
                    values, stamps = [v for v, _ in kept], [t for _, t in kept]
                sums[i][local] = sums[i].get(local, 0.0) + sum(values)
                if read.query.latency is not None:
                    mine = points[i].setdefault(local, {})
                    for when, value in zip(stamps, values, strict=False):
                        # A period split over pages is added up (counts; a percentile is whole).
                        key = when.timestamp() if isinstance(when, datetime) else float(when)
                        mine[key] = mine.get(key, 0.0) + value
                status = result.get("StatusCode")
                if status not in (None, "Complete", "PartialData"):
                    # Forbidden or InternalError: the figures may be short.
                    log.warning(
                        "GetMetricData query %s returned status %s: %s",
                        result["Id"],
                        status,
                        result.get("Messages"),
                    )
                    if not lenient:
                        failed[i] = f"CloudWatch answered query {local} with {status}"
    except ClientError as exc:
        if single and lenient:
            raise
        for i in chunk:
            out[i] = QueryFailed(f"GetMetricData failed: {exc}")
        return
    for i in chunk:
        out[i] = (
            QueryFailed(failed[i])
            if i in failed
            else reads[i].query.measurement(sums[i], points[i])
        )


def alarms_firing(cloudwatch: Any, names: Sequence[str]) -> tuple[str, ...]:
    """The configured alarms (metric or composite) now in state ALARM, in configuration order.

    A configured alarm that does not exist raises MissingAlarmError (a ValueError) naming it:
    counting it as firing would roll back every deployment over a typo, and counting it as
    quiet would silently drop a safety check the team asked for.
    """
    if isinstance(names, str):
        raise TypeError("names must be a sequence of alarm names, not a string")
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return ()
    return firing_of(wanted, alarm_states(cloudwatch, wanted))


def alarm_states(cloudwatch: Any, names: Sequence[str]) -> dict[str, str]:
    """The state of each named alarm that exists (metric or composite), 100 names a call."""
    wanted = list(dict.fromkeys(names))
    states: dict[str, str] = {}
    paginator = cloudwatch.get_paginator("describe_alarms")  # follows NextToken, a call a page
    for i in range(0, len(wanted), _ALARM_NAMES_PER_CALL):
        for page in paginator.paginate(
            AlarmNames=wanted[i : i + _ALARM_NAMES_PER_CALL],
            AlarmTypes=["MetricAlarm", "CompositeAlarm"],
        ):
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                states[alarm["AlarmName"]] = alarm.get("StateValue", "")
    return states


def firing_of(names: Sequence[str], states: dict[str, str]) -> tuple[str, ...]:
    """Of `names`, those in ALARM (in order); MissingAlarmError when one does not exist."""
    wanted = list(dict.fromkeys(names))
    missing = [name for name in wanted if name not in states]
    if missing:
        raise MissingAlarmError(missing)
    return tuple(name for name in wanted if states[name] == "ALARM")


def series_present(
    cloudwatch: Any,
    metrics: Sequence[dict[str, Any]],
    *,
    start: datetime,
    end: datetime,
    period_s: int,
) -> bool:
    """True when any of `metrics` (boto3 `Metric`s) has a data point between start and end.

    One GetMetricData request (pages followed). GetMetricData rather than ListMetrics: a new
    metric takes up to 15 minutes to appear in ListMetrics, and ListMetrics cannot say "in the
    last 10 minutes" (RecentlyActive is PT3H only) -- CloudWatch API reference, ListMetrics.
    """
    if not metrics:
        return False
    queries = [
        {
            "Id": f"q{i}",
            "MetricStat": {"Metric": metric, "Period": max(1, int(period_s)), "Stat": "Sum"},
            "ReturnData": True,
        }
        for i, metric in enumerate(metrics)
    ]
    paginator = cloudwatch.get_paginator("get_metric_data")
    for page in paginator.paginate(MetricDataQueries=queries, StartTime=start, EndTime=end):
        if any(result.get("Timestamps") for result in page.get("MetricDataResults", [])):
            return True
    return False
