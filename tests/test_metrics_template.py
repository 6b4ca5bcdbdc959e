"""Tests of the metric query template: defaults, placeholders, and the refusals of bad templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.analysis.templates import (
    CODE_CLASSES,
    AlbMetricTemplate,
    MetricTemplate,
    Version,
)

ROOT = Path(__file__).resolve().parent.parent
VN = Version("prod", "payments", "8", "payments-4f2a9c1e", "payments-4f2a9c1e")


def version(**changes: str) -> Version:
    return Version(**{**VN.__dict__, **changes})


def test_defaults_are_the_designs_envoy_counter() -> None:
    t = MetricTemplate()
    assert t.namespace == "ECS/ContainerInsights/Prometheus"
    assert t.metric_name == "envoy_http_downstream_rq_xx"
    assert t.statistic == "Sum"
    assert t.dimensions == {
        "ClusterName": "{cluster}",
        "TaskGroup": "service:{ecs_service}",
        "envoy_http_conn_manager_prefix": "ingress",
        "envoy_response_code_class": "{code_class}",
    }
    assert CODE_CLASSES == (1, 2, 3, 4, 5)


def test_the_default_template_queries_a_dimension_set_the_shipped_agent_publishes() -> None:
    """CloudWatch answers only a query whose dimensions equal a published set exactly."""
    agent = json.loads((ROOT / "deploy" / "cloudwatch-agent.json").read_text())
    prometheus = agent["logs"]["metrics_collected"]["prometheus"]
    emf = prometheus["emf_processor"]
    t = MetricTemplate()
    assert emf.get("metric_namespace", "ECS/ContainerInsights/Prometheus") == t.namespace
    declared = [
        set(dims)
        for declaration in emf["metric_declaration"]
        if f"^{t.metric_name}$" in declaration["metric_selectors"]
        for dims in declaration["dimensions"]
    ]
    assert set(t.dimensions) in declared
    # The agent scrapes the Envoy containers' Prometheus endpoint.
    (job,) = prometheus["ecs_service_discovery"]["task_definition_list"]
    assert (job["sd_metrics_ports"], job["sd_metrics_path"]) == ("9901", "/stats/prometheus")


def test_dimensions_for_fills_every_placeholder() -> None:
    dims = MetricTemplate().dimensions_for(VN, 5)
    assert dims == [
        {"Name": "ClusterName", "Value": "prod"},
        {"Name": "TaskGroup", "Value": "service:payments-4f2a9c1e"},
        {"Name": "envoy_http_conn_manager_prefix", "Value": "ingress"},
        {"Name": "envoy_response_code_class", "Value": "5"},
    ]


@pytest.mark.parametrize(
    "dimension",
    [
        {"TaskGroup": "service:{ecs_service}"},
        {"TaskGroup": "{task_group}"},
        {"Node": "{virtual_node}"},
        {"TaskDefinitionFamily": "{family}", "TaskRevision": "{revision}"},
    ],
)
def test_any_placeholder_set_that_names_one_version_is_accepted(dimension: dict) -> None:
    t = MetricTemplate(dimensions={**dimension, "envoy_response_code_class": "{code_class}"})
    values = {d["Name"]: d["Value"] for d in t.dimensions_for(VN, 2)}
    assert values.get("TaskRevision", "8") == "8"
    assert values.get("TaskGroup", "service:payments-4f2a9c1e") == "service:payments-4f2a9c1e"


def test_a_replacement_template_from_config() -> None:
    t = MetricTemplate.model_validate(
        {
            "namespace": "Custom/Envoy",
            "metric_name": "envoy_cluster_upstream_rq_{code_class}xx",
            "dimensions": {"Node": "mesh/{virtual_node}", "Env": "prod-{cluster}"},
        }
    )
    metric = t.metric_for(version(cluster="eu", virtual_node="vn"), 2)
    assert metric == {
        "Namespace": "Custom/Envoy",
        "MetricName": "envoy_cluster_upstream_rq_2xx",
        "Dimensions": [
            {"Name": "Node", "Value": "mesh/vn"},
            {"Name": "Env", "Value": "prod-eu"},
        ],
    }


def test_the_template_is_frozen() -> None:
    t = MetricTemplate()
    with pytest.raises(ValidationError):
        t.namespace = "Other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"dimensions": {"A": "{service}", "B": "{virtual_node}-{code_class}"}}, "{service}"),
        ({"dimensions": {"A": "{}", "B": "{virtual_node}-{code_class}"}}, "unknown placeholder {}"),
        ({"dimensions": {"A": "{cluster", "B": "{virtual_node}{code_class}"}}, "not a valid"),
        ({"dimensions": {"A": "{code_class:02d}{virtual_node}"}}, "plainly as {code_class}"),
        ({"dimensions": {"A": "{virtual_node}"}}, "{code_class}"),
        ({"dimensions": {"A": "{code_class}"}}, "canary and the stable cannot be told apart"),
        ({"dimensions": {"A": "{code_class}", "R": "{revision}"}}, "{family} and {revision}"),
        ({"dimensions": {"A": "{code_class}", "F": "{family}"}}, "{ecs_service} or {task_group}"),
        ({"dimensions": {"A": "", "B": "{virtual_node}{code_class}"}}, "cannot be empty"),
        ({"dimensions": {"{cluster}": "{virtual_node}{code_class}"}}, "dimension name"),
        ({"namespace": "NS/{cluster}"}, "namespace"),
        ({"metric_name": "rq_{status}"}, "{status}"),
        ({"statistic": "Average"}, "statistic"),
        ({"period": 60}, "Extra inputs are not permitted"),
    ],
)
def test_bad_templates_are_refused_clearly(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        MetricTemplate.model_validate(fields)
    assert message in str(caught.value)


def test_unknown_placeholder_message_lists_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as caught:
        MetricTemplate(dimensions={"Svc": "{service}", "N": "{virtual_node}{code_class}"})
    assert (
        "allowed: {cluster}, {family}, {revision}, {ecs_service}, {task_group}, {virtual_node}, "
        "{code_class}" in str(caught.value)
    )


def test_literal_braces_are_allowed_when_doubled() -> None:
    t = MetricTemplate(dimensions={"N": "{{{virtual_node}}}", "C": "{code_class}"})
    dims = t.dimensions_for(version(virtual_node="vn"), 1)
    assert dims[0] == {"Name": "N", "Value": "{vn}"}


@pytest.mark.parametrize("code_class", [0, 6, "5"])
def test_code_class_must_be_1_to_5(code_class: object) -> None:
    with pytest.raises(ValueError, match="code_class"):
        MetricTemplate().dimensions_for(VN, code_class)  # type: ignore[arg-type]


def test_an_empty_dimension_value_is_refused() -> None:
    with pytest.raises(ValueError, match="ClusterName"):
        MetricTemplate().dimensions_for(version(cluster=""), 2)


def test_alb_errors_are_per_target_group_metrics_that_exist() -> None:
    """HTTPCode_ELB_5XX_Count is published per load balancer only: per target group it reads 0."""
    assert AlbMetricTemplate().error_metrics == [
        "HTTPCode_Target_5XX_Count",
        "TargetConnectionErrorCount",
        "TargetTLSNegotiationErrorCount",
    ]
    for name in ("HTTPCode_ELB_5XX_Count", "HTTPCode_ELB_502_Count"):
        with pytest.raises(ValidationError, match="per load balancer only"):
            AlbMetricTemplate(error_metrics=["HTTPCode_Target_5XX_Count", name])
