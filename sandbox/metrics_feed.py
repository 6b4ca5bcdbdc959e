"""Fake request counters put into CloudWatch, for tests and the sandbox, as strict as AWS.

Envoy's counters are published the way the CloudWatch agent publishes them with
`deploy/cloudwatch-agent.json`: only under the dimension sets its `metric_declaration` declares,
built from the labels its ECS service discovery attaches (docs/METRICS.md) — never from the
bot's own metric template, so a template that asks for anything else reads nothing, as on AWS.
An ALB's counters are published per target group under the metric names the load balancer
really publishes per target group. Everything goes through a `DelayedPublisher`, which puts a
data point into CloudWatch only once its publication lag has passed, as CloudWatch data arrives
late (workers.analysis.window).
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workers.analysis.templates import Version

#: The CloudWatch agent configuration the project ships (and the feed obeys).
AGENT_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "cloudwatch-agent.json"
#: The agent's default namespace on ECS when `metric_namespace` is not set.
ECS_PROMETHEUS_NAMESPACE = "ECS/ContainerInsights/Prometheus"
#: Envoy's per-status-class request counter, as Envoy's /stats/prometheus names it.
ENVOY_REQUESTS = "envoy_http_downstream_rq_xx"
#: Status class the successful requests are published under (errors always go to class 5).
OK_CLASS = 2
ERROR_CLASS = 5
#: The namespace and per-target-group metrics of an ALB (docs/ALB.md).
ALB_NAMESPACE = "AWS/ApplicationELB"
ALB_REQUESTS = "RequestCount"
ALB_TARGET_5XX = "HTTPCode_Target_5XX_Count"
ALB_CONNECTION_ERRORS = "TargetConnectionErrorCount"
#: Seconds from the request leaving the load balancer to the target's response, per request:
#: published when non-zero, in seconds, with percentile statistics (docs/METRICS.md).
ALB_LATENCY = "TargetResponseTime"
#: Per load balancer only: the feed never publishes them with a TargetGroup dimension.
ALB_ELB_5XX = "HTTPCode_ELB_5XX_Count"
ALB_ELB_502 = "HTTPCode_ELB_502_Count"


@dataclass(frozen=True)
class Declaration:
    """One `metric_declaration` of the agent's EMF processor."""

    source_labels: tuple[str, ...]
    label_matcher: str
    label_separator: str
    dimensions: tuple[tuple[str, ...], ...]
    metric_selectors: tuple[str, ...]

    def dimension_sets(self, metric_name: str, labels: Mapping[str, str]) -> list[tuple[str, ...]]:
        """The sets this declaration publishes `metric_name` under, for a series with `labels`.

        As the agent (awsemfexporter): the metric name must match a selector, the source labels'
        values joined by the separator must match `label_matcher` (Go's MatchString, a search),
        and a set naming a label the series lacks is dropped.
        """
        if not any(re.search(selector, metric_name) for selector in self.metric_selectors):
            return []
        joined = self.label_separator.join(labels.get(name, "") for name in self.source_labels)
        if not re.search(self.label_matcher, joined):
            return []
        return [dims for dims in self.dimensions if all(name in labels for name in dims)]


@dataclass(frozen=True)
class AgentConfig:
    """What of the agent's JSON configuration decides which series reach CloudWatch."""

    namespace: str
    declarations: tuple[Declaration, ...]

    @classmethod
    def load(cls, path: Path = AGENT_CONFIG) -> AgentConfig:
        prometheus = json.loads(path.read_text())["logs"]["metrics_collected"]["prometheus"]
        emf = prometheus.get("emf_processor", {})
        declarations = tuple(
            Declaration(
                source_labels=tuple(d.get("source_labels", [])),
                label_matcher=d.get("label_matcher", ".*"),
                label_separator=d.get("label_separator", ";"),
                dimensions=tuple(tuple(dims) for dims in d.get("dimensions", [])),
                metric_selectors=tuple(d["metric_selectors"]),
            )
            for d in emf.get("metric_declaration", [])
        )
        return cls(emf.get("metric_namespace", ECS_PROMETHEUS_NAMESPACE), declarations)

    def dimension_sets(self, metric_name: str, labels: Mapping[str, str]) -> list[tuple[str, ...]]:
        """Every distinct dimension set the agent publishes this series under."""
        found: list[tuple[str, ...]] = []
        for declaration in self.declarations:
            for dims in declaration.dimension_sets(metric_name, labels):
                if dims not in found:
                    found.append(dims)
        return found


@functools.lru_cache(maxsize=1)
def shipped_agent() -> AgentConfig:
    """deploy/cloudwatch-agent.json, read once."""
    return AgentConfig.load()


def envoy_labels(version: Version, code_class: int) -> dict[str, str]:
    """The labels of one Envoy container's `envoy_http_downstream_rq_xx` series as the agent
    scrapes it: Envoy's own two, the ones ECS service discovery attaches to every target
    (amazon-cloudwatch-agent internal/ecsservicediscovery/decoratedtask.go), and ClusterName,
    which the agent adds itself. There is no App Mesh virtual node among them."""
    return {
        "envoy_http_conn_manager_prefix": "ingress",
        "envoy_response_code_class": str(code_class),
        "container_name": "envoy",
        "TaskDefinitionFamily": version.family,
        "TaskRevision": version.revision,
        "TaskGroup": version.task_group,
        "StartedBy": "ecs-svc/0000000000000000000",
        "LaunchType": "FARGATE",
        "TaskClusterName": version.cluster,
        "job": "appmesh-envoy",
        "ClusterName": version.cluster,
    }


@dataclass
class DelayedPublisher:
    """PutMetricData with CloudWatch's publication lag: a data point stamped t reaches
    CloudWatch only once the clock reads t + lag (on the next `put` or `flush`)."""

    cloudwatch: Any
    lag: float = 0.0
    clock: Callable[[], float] = time.time
    _pending: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def put(self, namespace: str, data: Sequence[dict[str, Any]]) -> None:
        for datum in data:
            self._pending.append((datum["Timestamp"].timestamp(), namespace, datum))
        self.flush()

    def flush(self) -> None:
        """Publish every data point whose lag has passed, one call per namespace."""
        now = self.clock()
        due = [p for p in self._pending if p[0] + self.lag <= now]
        if not due:
            return
        self._pending = [p for p in self._pending if p[0] + self.lag > now]
        for namespace in dict.fromkeys(ns for _, ns, _ in due):
            data = [datum for _, ns, datum in due if ns == namespace]
            for i in range(0, len(data), 1000):  # PutMetricData takes 1000 data points a call
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i : i + 1000])


def put_envoy_counts(
    publisher: DelayedPublisher,
    version: Version,
    *,
    requests: int,
    errors: int,
    timestamp: datetime | None = None,
    agent: AgentConfig | None = None,
) -> None:
    """Record `requests` served by a version's Envoys, `errors` of them 5xx, as the CloudWatch
    agent configured by deploy/cloudwatch-agent.json would publish them (class 5 and class 2)."""
    if requests < 0 or not 0 <= errors <= requests:
        raise ValueError(f"need 0 <= errors <= requests, got {errors} of {requests}")
    config = agent or shipped_agent()
    when = timestamp or datetime.now(UTC)
    data = []
    for code_class, value in ((OK_CLASS, requests - errors), (ERROR_CLASS, errors)):
        labels = envoy_labels(version, code_class)
        for dims in config.dimension_sets(ENVOY_REQUESTS, labels):
            dimensions = [{"Name": name, "Value": labels[name]} for name in dims]
            data.append(_datum(ENVOY_REQUESTS, dimensions, when, value))
    if data:
        publisher.put(config.namespace, data)


def put_alb_counts(
    publisher: DelayedPublisher,
    *,
    load_balancer: str,
    target_group: str,
    requests: int,
    errors: int,
    timestamp: datetime,
    connection_errors: int = 0,
    latencies_ms: Sequence[float] = (),
) -> None:
    """Record `requests` to a target group, `errors` of them 5xx answered by its targets and
    `connection_errors` whose connection to a target failed, as the load balancer publishes them
    (AWS ELB documentation, CloudWatch metrics for your Application Load Balancer):
    RequestCount, HTTPCode_Target_5XX_Count and TargetConnectionErrorCount per (LoadBalancer,
    TargetGroup) and per LoadBalancer; the 502s it answers for the failed connections as
    HTTPCode_ELB_5XX_Count / HTTPCode_ELB_502_Count per LoadBalancer only. `latencies_ms`, the
    requests' response times, become TargetResponseTime (seconds) per (LoadBalancer,
    TargetGroup) and per LoadBalancer: raw values (Values/Counts), so CloudWatch has
    percentiles of them."""
    group = [{"Name": "LoadBalancer", "Value": load_balancer}]
    group.append({"Name": "TargetGroup", "Value": target_group})
    whole = [{"Name": "LoadBalancer", "Value": load_balancer}]
    per_group = [(ALB_REQUESTS, requests), (ALB_TARGET_5XX, errors)]
    if connection_errors:
        per_group.append((ALB_CONNECTION_ERRORS, connection_errors))
    data = [
        _datum(name, dims, timestamp, value) for name, value in per_group for dims in (group, whole)
    ]
    if connection_errors:
        for name in (ALB_ELB_5XX, ALB_ELB_502):
            data.append(_datum(name, whole, timestamp, connection_errors))
    for dims in (group, whole):
        data.extend(latency_data(ALB_LATENCY, dims, timestamp, latencies_ms))
    publisher.put(ALB_NAMESPACE, data)


#: PutMetricData takes at most 150 distinct values in one MetricDatum.
MAX_DATUM_VALUES = 150


def latency_data(
    name: str, dimensions: list[dict[str, str]], when: datetime, latencies_ms: Sequence[float]
) -> list[dict[str, Any]]:
    """Response times as MetricDatums of raw values in seconds (Values with Counts), each time
    kept to two significant digits so a few datums carry thousands of requests."""
    counted: dict[float, int] = {}
    for ms in latencies_ms:
        if ms > 0:  # the load balancer reports non-zero values only
            seconds = float(f"{ms / 1000:.2g}")
            counted[seconds] = counted.get(seconds, 0) + 1
    items = sorted(counted.items())
    return [
        {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": when,
            "Values": [v for v, _ in items[i : i + MAX_DATUM_VALUES]],
            "Counts": [float(c) for _, c in items[i : i + MAX_DATUM_VALUES]],
            "Unit": "Seconds",
        }
        for i in range(0, len(items), MAX_DATUM_VALUES)
    ]


def _datum(
    name: str, dimensions: list[dict[str, str]], when: datetime, value: int
) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Dimensions": dimensions,
        "Timestamp": when,
        "Value": float(value),
        "Unit": "Count",
    }
