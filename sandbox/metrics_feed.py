"""Fake request counters put into CloudWatch, for tests and the sandbox: Envoy's as the CloudWatch
agent would publish them, and an ALB's per target group."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workers.analysis.templates import AlbMetricTemplate, MetricTemplate
from workers.aws.cloudwatch import Target

#: Status class the successful requests are published under (errors always go to class 5).
OK_CLASS = 2
ERROR_CLASS = 5


def put_envoy_counts(
    cloudwatch: Any,
    template: MetricTemplate,
    target: Target,
    *,
    requests: int,
    errors: int,
    timestamp: datetime | None = None,
) -> None:
    """Record `requests` served by target, `errors` of them 5xx, in one PutMetricData call.

    The errors are published as class 5 and the rest as class 2, with the same template the
    analysis reads, so whatever the template the bot queries exactly what was written.
    """
    if requests < 0 or not 0 <= errors <= requests:
        raise ValueError(f"need 0 <= errors <= requests, got {errors} of {requests}")
    when = timestamp or datetime.now(UTC)
    metric_data = []
    for code_class, value in ((OK_CLASS, requests - errors), (ERROR_CLASS, errors)):
        metric = template.metric_for(
            cluster=target.cluster,
            family=target.family,
            virtual_node=target.virtual_node,
            code_class=code_class,
        )
        metric_data.append(_datum(metric, when, value))
    cloudwatch.put_metric_data(Namespace=template.namespace, MetricData=metric_data)


def put_alb_counts(
    cloudwatch: Any,
    template: AlbMetricTemplate,
    *,
    load_balancer: str,
    target_group: str,
    target_group_name: str,
    cluster: str,
    requests: int,
    errors: int,
    timestamp: datetime,
) -> None:
    """Record `requests` to a target group, `errors` of them 5xx, in one PutMetricData call, under
    the template's request metric and its first error metric."""
    metric_data = []
    for metric_name, value in (
        (template.requests_metric, requests),
        (template.error_metrics[0], errors),
    ):
        metric = template.metric_for(
            metric_name,
            load_balancer=load_balancer,
            target_group=target_group,
            target_group_name=target_group_name,
            cluster=cluster,
        )
        metric_data.append(_datum(metric, timestamp, value))
    cloudwatch.put_metric_data(Namespace=template.namespace, MetricData=metric_data)


def _datum(metric: dict[str, Any], when: datetime, value: int) -> dict[str, Any]:
    return {
        "MetricName": metric["MetricName"],
        "Dimensions": metric["Dimensions"],
        "Timestamp": when,
        "Value": float(value),
        "Unit": "Count",
    }
