"""CloudWatch reads for judging a step: canary and stable request/5xx counts, alarm states."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


def _query_id(side: str, code_class: int) -> str:
    # Ids must start with a lower-case letter: c1..c5 for the canary, s1..s5 for the stable.
    return f"{side}{code_class}"


def fetch_counts(
    cloudwatch: Any,
    template: MetricTemplate,
    *,
    canary: Version,
    stable: Version,
    start: datetime,
    end: datetime,
    period_s: int,
) -> tuple[Counts, Counts]:
    """Cumulative (canary, stable) counts between start and end, from one GetMetricData call.

    Ten MetricStat queries (each side x status classes 1..5) go in one request; pages are
    followed with NextToken. Requests are the sum over classes 1..5, errors are class 5.
    Naive datetimes are taken as UTC, as botocore does. Missing data counts as zero. The window
    (whole periods, up to the last one published) is the caller's: workers.analysis.window.
    """
    if start >= end:
        return Counts(0, 0), Counts(0, 0)
    period = int(period_s)
    if period < 1:
        raise ValueError(f"period_s must be at least 1 second, got {period_s!r}")

    queries = []
    for side, target in (("c", canary), ("s", stable)):
        for code_class in CODE_CLASSES:
            metric = template.metric_for(target, code_class)
            queries.append(
                {
                    "Id": _query_id(side, code_class),
                    "MetricStat": {
                        "Metric": metric,
                        "Period": period,
                        "Stat": template.statistic,
                    },
                    "ReturnData": True,
                }
            )

    sums = _sum_queries(cloudwatch, queries, start=start, end=end)

    def counts(side: str) -> Counts:
        # Sums of counters are whole numbers; rounding only removes float noise.
        per_class = {c: max(0, round(sums[_query_id(side, c)])) for c in CODE_CLASSES}
        return Counts(requests=sum(per_class.values()), errors=per_class[5])

    return counts("c"), counts("s")


def fetch_alb_counts(
    cloudwatch: Any,
    template: AlbMetricTemplate,
    *,
    canary: AlbTarget,
    stable: AlbTarget,
    start: datetime,
    end: datetime,
    period_s: int,
) -> tuple[Counts, Counts]:
    """Cumulative (canary, stable) counts of two target groups, from one GetMetricData call."""
    found = fetch_alb_measurement(
        cloudwatch,
        template,
        canary=canary,
        stable=stable,
        start=start,
        end=end,
        period_s=period_s,
        percentile=None,
    )
    return found.canary, found.stable


def fetch_alb_measurement(
    cloudwatch: Any,
    template: AlbMetricTemplate,
    *,
    canary: AlbTarget,
    stable: AlbTarget,
    start: datetime,
    end: datetime,
    period_s: int,
    percentile: float | None,
) -> Measurement:
    """Cumulative (canary, stable) counts of two target groups and, with a `percentile`, their
    latency at it per period (the template's latency metric, `Stat: pNN`): one GetMetricData
    call.

    Requests are the template's requests metric; errors the sum of its error metrics, capped at
    the requests (a 5xx the load balancer answered before choosing a target is not a request).
    """
    if start >= end:
        return Measurement(Counts(0, 0), Counts(0, 0))
    period = int(period_s)
    if period < 1:
        raise ValueError(f"period_s must be at least 1 second, got {period_s!r}")
    names = [template.requests_metric, *template.error_metrics]
    with_latency = percentile is not None and template.latency_metric is not None
    queries = []
    for side, target in (("c", canary), ("s", stable)):

        def metric(name: str, target: AlbTarget = target) -> dict[str, Any]:
            return template.metric_for(
                name,
                load_balancer=target.load_balancer,
                target_group=target.target_group,
                target_group_name=target.target_group_name,
                cluster=target.cluster,
            )

        for i, name in enumerate(names):
            queries.append(
                {
                    # r: requests, e1..: error metrics; prefixed by side (ids start lower-case).
                    "Id": f"{side}{'r' if i == 0 else f'e{i}'}",
                    "MetricStat": {
                        "Metric": metric(name),
                        "Period": period,
                        "Stat": template.statistic,
                    },
                    "ReturnData": True,
                }
            )
        if with_latency:
            assert percentile is not None and template.latency_metric is not None
            queries.append(
                {
                    # l: the latency at the percentile, one value per period.
                    "Id": f"{side}l",
                    "MetricStat": {
                        "Metric": metric(template.latency_metric),
                        "Period": period,
                        "Stat": percentile_stat(percentile),
                    },
                    "ReturnData": True,
                }
            )
    series = _run_queries(cloudwatch, queries, start=start, end=end)
    sums = {query_id: found.total for query_id, found in series.items()}

    def counts(side: str) -> Counts:
        requests = max(0, round(sums[f"{side}r"]))
        errors = sum(max(0, round(sums[f"{side}e{i}"])) for i in range(1, len(names)))
        return Counts(requests=requests, errors=min(errors, requests))

    latency = None
    if with_latency:
        assert percentile is not None
        to_ms = 1000.0 if template.latency_unit == "Seconds" else 1.0
        latency = periods_from_series(
            percentile,
            series["cr"].points,
            series["sr"].points,
            {t: v * to_ms for t, v in series["cl"].points.items()},
            {t: v * to_ms for t, v in series["sl"].points.items()},
        )
    return Measurement(counts("c"), counts("s"), latency)


def _sum_queries(
    cloudwatch: Any, queries: list[dict[str, Any]], *, start: datetime, end: datetime
) -> dict[str, float]:
    """Run MetricStat queries in one GetMetricData request (following pages); sum per id."""
    series = _run_queries(cloudwatch, queries, start=start, end=end)
    return {query_id: found.total for query_id, found in series.items()}


@dataclass
class _Series:
    """One query's answer: the sum of its values, and its values by period start (epoch s)."""

    total: float = 0.0
    points: dict[float, float] = field(default_factory=dict)


def _run_queries(
    cloudwatch: Any, queries: list[dict[str, Any]], *, start: datetime, end: datetime
) -> dict[str, _Series]:
    """Run MetricStat queries in one GetMetricData request (following pages): per id, the sum
    of its values and each period's value by its start (a period split over pages is added
    up)."""
    found: dict[str, _Series] = {query["Id"]: _Series() for query in queries}
    request: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    # boto3's paginator follows NextToken: one GetMetricData call per page, as CloudWatch answers
    # (botocore's cloudwatch paginators-1.json: input and output token NextToken).
    for page in cloudwatch.get_paginator("get_metric_data").paginate(**request):
        for result in page.get("MetricDataResults", []):
            query_id = result.get("Id")
            if query_id not in found:
                continue
            values = [float(v) for v in result.get("Values", [])]
            found[query_id].total += sum(values)
            points = found[query_id].points
            for when, value in zip(result.get("Timestamps", []), values, strict=False):
                key = when.timestamp() if isinstance(when, datetime) else float(when)
                points[key] = points.get(key, 0.0) + value
            if result.get("StatusCode") not in (None, "Complete", "PartialData"):
                # Forbidden or InternalError: the figures may be short, so say so in the logs.
                log.warning(
                    "GetMetricData query %s returned status %s: %s",
                    query_id,
                    result.get("StatusCode"),
                    result.get("Messages"),
                )
    return found


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

    states: dict[str, str] = {}
    paginator = cloudwatch.get_paginator("describe_alarms")  # follows NextToken, a call a page
    for i in range(0, len(wanted), _ALARM_NAMES_PER_CALL):
        for page in paginator.paginate(
            AlarmNames=wanted[i : i + _ALARM_NAMES_PER_CALL],
            AlarmTypes=["MetricAlarm", "CompositeAlarm"],
        ):
            for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                states[alarm["AlarmName"]] = alarm.get("StateValue", "")

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
