"""Tests of the metric query template: defaults, placeholders, and the refusals of bad templates."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workers.analysis.templates import CODE_CLASSES, MetricTemplate


def test_defaults_are_the_designs_envoy_counter() -> None:
    t = MetricTemplate()
    assert t.namespace == "ECS/ContainerInsights/Prometheus"
    assert t.metric_name == "envoy_http_downstream_rq_xx"
    assert t.statistic == "Sum"
    assert t.dimensions == {
        "ClusterName": "{cluster}",
        "TaskDefinitionFamily": "{family}",
        "envoy_http_conn_manager_prefix": "ingress",
        "envoy_response_code_class": "{code_class}",
        "appmesh_virtual_node": "{virtual_node}",
    }
    assert CODE_CLASSES == (1, 2, 3, 4, 5)


def test_dimensions_for_fills_every_placeholder() -> None:
    dims = MetricTemplate().dimensions_for(
        cluster="prod", family="payments", virtual_node="payments-4f2a9c1e", code_class=5
    )
    assert dims == [
        {"Name": "ClusterName", "Value": "prod"},
        {"Name": "TaskDefinitionFamily", "Value": "payments"},
        {"Name": "envoy_http_conn_manager_prefix", "Value": "ingress"},
        {"Name": "envoy_response_code_class", "Value": "5"},
        {"Name": "appmesh_virtual_node", "Value": "payments-4f2a9c1e"},
    ]


def test_a_replacement_template_from_config() -> None:
    t = MetricTemplate.model_validate(
        {
            "namespace": "Custom/Envoy",
            "metric_name": "envoy_cluster_upstream_rq_{code_class}xx",
            "dimensions": {"Node": "mesh/{virtual_node}", "Env": "prod-{cluster}"},
        }
    )
    metric = t.metric_for(cluster="eu", family="f", virtual_node="vn", code_class=2)
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
        ({"dimensions": {"A": "{code_class}"}}, "{virtual_node}"),
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
    assert "allowed: {cluster}, {family}, {virtual_node}, {code_class}" in str(caught.value)


def test_literal_braces_are_allowed_when_doubled() -> None:
    t = MetricTemplate(dimensions={"N": "{{{virtual_node}}}", "C": "{code_class}"})
    dims = t.dimensions_for(cluster="c", family="f", virtual_node="vn", code_class=1)
    assert dims[0] == {"Name": "N", "Value": "{vn}"}


@pytest.mark.parametrize("code_class", [0, 6, "5"])
def test_code_class_must_be_1_to_5(code_class: object) -> None:
    with pytest.raises(ValueError, match="code_class"):
        MetricTemplate().dimensions_for(
            cluster="c",
            family="f",
            virtual_node="vn",
            code_class=code_class,  # type: ignore[arg-type]
        )


def test_an_empty_dimension_value_is_refused() -> None:
    with pytest.raises(ValueError, match="ClusterName"):
        MetricTemplate().dimensions_for(cluster="", family="f", virtual_node="vn", code_class=2)
