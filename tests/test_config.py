"""The service catalogue: defaults, validation with clear errors, overrides."""

from pathlib import Path

import pytest

from workers.domain.catalogue import ConfigError, apply_overrides, load_catalogue, parse_catalogue
from workers.runtime.context import Runtime

SERVICE = {"cluster": "prod", "mesh": "m", "virtual_router": "vr", "route": "r"}


def test_defaults_of_the_design() -> None:
    svc = parse_catalogue({"services": {"payments": SERVICE}}).service("payments")
    assert svc.steps == [10, 25, 50, 100]
    assert (svc.bake, svc.analysis_interval, svc.gate_timeout) == (300, 60, 86400)
    assert (svc.post_promotion_bake, svc.ready_timeout, svc.metric_period) == (900, 600, 60)
    assert svc.max_error_rate == 1.0 and svc.min_requests == 100
    assert svc.gates == "manual" and svc.four_eyes and not svc.keep_failed_canary
    assert svc.deployers == [] and svc.approvers == [] and svc.channel is None
    assert svc.metrics.metric_name == "envoy_http_downstream_rq_xx"


def test_service_overrides_defaults_which_override_builtins() -> None:
    cat = parse_catalogue(
        {
            "defaults": {"bake": "2m", "gates": "final"},
            "services": {"a": {**SERVICE, "bake": "90s"}, "b": SERVICE},
        }
    )
    assert cat.service("a").bake == 90 and cat.service("b").bake == 120
    assert cat.service("a").gates == "final"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"bake": "5"}, "services.payments.bake: '5' is ambiguous"),
        ({"steps": [10, 5, 100]}, "services.payments.steps: steps must increase"),
        ({"steps": [10, 50]}, "must end at 100"),
        ({"steps": [0, 100]}, "between 1 and 100"),
        ({"gates": "sometimes"}, "services.payments.gates"),
        ({"colour": "red"}, "services.payments.colour: unknown key"),
        ({"max_error_rate": -1}, "services.payments.max_error_rate"),
    ],
)
def test_errors_name_service_key_and_expectation(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_catalogue({"services": {"payments": {**SERVICE, **raw}}})
    assert needle in str(err.value)


def test_missing_required_key_is_named() -> None:
    with pytest.raises(
        ConfigError, match="services.payments: router appmesh needs .*missing: route"
    ):
        parse_catalogue(
            {"services": {"payments": {k: v for k, v in SERVICE.items() if k != "route"}}}
        )


def test_missing_cluster_is_named() -> None:
    with pytest.raises(ConfigError, match="services.payments.cluster: required key is missing"):
        parse_catalogue(
            {"services": {"payments": {k: v for k, v in SERVICE.items() if k != "cluster"}}}
        )


def test_unknown_service_suggests_the_closest() -> None:
    cat = parse_catalogue({"services": {"payments": SERVICE, "search": SERVICE}})
    with pytest.raises(ConfigError) as err:
        cat.service("paymnts")
    assert (
        str(err.value)
        == 'No service called "paymnts". Did you mean payments? Known: payments, search.'
    )


def test_load_reads_canary_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cat.yaml"
    path.write_text(
        "defaults:\n  bake: 1m\n"
        "services:\n  web: {cluster: c, mesh: m, virtual_router: v, route: r}\n"
    )
    monkeypatch.setenv("CANARY_CONFIG", str(path))
    assert Runtime(redis=None, store=None, scheduler=None).catalogue().service("web").bake == 60  # type: ignore[arg-type]


def test_load_reports_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalogue(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("services: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalogue(bad)


def test_overrides_validated_like_the_catalogue() -> None:
    svc = parse_catalogue({"services": {"payments": SERVICE}}).service("payments")
    changed = apply_overrides(svc, {"steps": "5,10,25,50,100", "bake": "10m", "gates": "manual"})
    assert (changed.steps, changed.bake, changed.gates) == ([5, 10, 25, 50, 100], 600, "manual")
    assert svc.steps == [10, 25, 50, 100]  # the catalogue entry is untouched
    for overrides, needle in [
        (
            {"steps": "10,5,100"},
            '"steps=10,5,100": steps must increase and end at 100, e.g. steps=10,25,50,100',
        ),
        ({"steps": "10,abc"}, "whole numbers"),
        ({"steps": "10,50,101"}, "between 1 and 100"),
        ({"bake": "5"}, "ambiguous"),
        ({"gates": "maybe"}, "gates must be manual, auto or final"),
        ({"cluster": "other"}, "only steps, bake, gates can be overridden"),
    ]:
        with pytest.raises(ConfigError) as err:
            apply_overrides(svc, overrides)
        assert needle in str(err.value), (overrides, str(err.value))


@pytest.mark.parametrize(
    ("gates", "steps", "expected"),
    [
        ("manual", [10, 25, 50, 100], [True, True, True, False]),
        ("final", [10, 25, 50, 100], [False, False, True, False]),
        ("auto", [10, 25, 50, 100], [False, False, False, False]),
        ("final", [100], [False]),
    ],
)
def test_gate_after_each_step(gates: str, steps: list[int], expected: list[bool]) -> None:
    svc = parse_catalogue({"services": {"p": {**SERVICE, "gates": gates, "steps": steps}}}).service(
        "p"
    )
    assert [svc.gate_after(i) for i in range(len(steps))] == expected


ALB_RULE = "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/edge/1/2/3"


def test_router_alb_takes_a_listener_rule_or_a_listener() -> None:
    cat = parse_catalogue(
        {"services": {"web": {"router": "alb", "cluster": "c", "listener_rule": ALB_RULE}}}
    )
    web = cat.service("web")
    assert web.router == "alb" and web.listener_rule == ALB_RULE
    assert web.alb_metrics.namespace == "AWS/ApplicationELB"
    assert web.alb_metrics.requests_metric == "RequestCount"
    assert web.alb_metrics.error_metrics == [
        "HTTPCode_Target_5XX_Count",
        "TargetConnectionErrorCount",
        "TargetTLSNegotiationErrorCount",
    ]
    assert web.alb_metrics.dimensions == {
        "LoadBalancer": "{load_balancer}",
        "TargetGroup": "{target_group}",
    }
    with pytest.raises(
        ConfigError, match="services.web: router alb needs listener_rule or listener"
    ):
        parse_catalogue({"services": {"web": {"router": "alb", "cluster": "c"}}})
    with pytest.raises(ConfigError, match="router alb takes only one of listener_rule or listener"):
        parse_catalogue(
            {
                "services": {
                    "web": {"router": "alb", "cluster": "c", "listener_rule": "a", "listener": "b"}
                }
            }
        )


def test_alb_metrics_are_replaceable_and_checked() -> None:
    raw = {"router": "alb", "cluster": "c", "listener": "arn:l"}
    custom = {
        "error_metrics": ["HTTPCode_Target_5XX_Count"],
        "dimensions": {"TG": "{target_group_name}"},
    }
    web = parse_catalogue({"services": {"web": {**raw, "alb_metrics": custom}}}).service("web")
    assert web.alb_metrics.error_metrics == ["HTTPCode_Target_5XX_Count"]
    with pytest.raises(ConfigError, match="canary and the stable cannot be told apart"):
        parse_catalogue(
            {"services": {"web": {**raw, "alb_metrics": {"dimensions": {"LB": "{load_balancer}"}}}}}
        )
    with pytest.raises(ConfigError, match="unknown placeholder"):
        parse_catalogue(
            {"services": {"web": {**raw, "alb_metrics": {"dimensions": {"TG": "{virtual_node}"}}}}}
        )


def test_metric_lag_defaults_per_router_and_can_be_set() -> None:
    """CloudWatch publishes an ALB's data about a minute late, the agent's path later."""
    mesh = {"cluster": "c", "mesh": "m", "virtual_router": "v", "route": "r"}
    alb = {"router": "alb", "cluster": "c", "listener": "arn:l"}
    cat = parse_catalogue({"services": {"mesh": mesh, "web": alb}})
    assert (cat.service("mesh").lag, cat.service("web").lag) == (120, 60)
    assert cat.defaults.metric_lag is None
    both = parse_catalogue({"defaults": {"metric_lag": "3m"}, "services": {"m": mesh, "w": alb}})
    assert both.service("m").lag == both.service("w").lag == 180
    one = parse_catalogue({"services": {"w": {**alb, "metric_lag": "90s"}}}).service("w")
    assert one.lag == 90 and one.model_dump()["metric_lag"] == "1m30s"
    with pytest.raises(ConfigError, match="metric_lag"):
        parse_catalogue({"services": {"w": {**alb, "metric_lag": "90"}}})
