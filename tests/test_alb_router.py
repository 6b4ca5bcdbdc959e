"""The ALB traffic router on moto: weight shifts that keep the rest of the rule, run twice."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.alb_fixtures import (  # noqa: F401 - fixtures
    CallLog,
    add_target_group,
    clients_fixture,
    rule,
    seeded_fixture,
)
from workers.aws.alb.router import (
    AlbRouter,
    as_percent,
    load_balancer_dimension,
    same_split,
    target_group_dimension,
    target_group_name,
)
from workers.aws.clients import AwsClients
from workers.aws.errors import AwsStepError
from workers.domain.traffic import TrafficRouter, WeightsError, canary_weights

TG_ARN = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/payments-v1/73e2d6bc24d8a067"
)
RULE_ARN = (
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/edge/50dc6c495c0c9188/"
    "f2f7dc8efc522ab2/9683b2d02a6cabee"
)


def without_weights(found: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(found)
    for action in stripped["Actions"]:
        if action["Type"] == "forward":
            del action["ForwardConfig"]["TargetGroups"]
    return stripped


def test_arn_helpers() -> None:
    assert target_group_name(TG_ARN) == "payments-v1"
    assert target_group_dimension(TG_ARN) == "targetgroup/payments-v1/73e2d6bc24d8a067"
    assert load_balancer_dimension(RULE_ARN) == "app/edge/50dc6c495c0c9188"
    with pytest.raises(AwsStepError):
        target_group_name(RULE_ARN)


def test_raw_weights_read_as_percent() -> None:
    other = TG_ARN.replace("payments-v1", "payments-v2")
    assert as_percent({TG_ARN: 1}) == {"payments-v1": 100}
    assert as_percent({TG_ARN: 9, other: 1}) == {"payments-v1": 90, "payments-v2": 10}
    assert same_split({TG_ARN: 1}, {"payments-v1": 100})
    assert same_split({TG_ARN: 9, other: 1}, {"payments-v1": 90, "payments-v2": 10})
    assert not same_split({TG_ARN: 100, other: 0}, {"payments-v1": 100})


def test_shifts_keep_conditions_priority_and_stickiness_and_are_idempotent(
    clients: AwsClients, seeded: dict[str, str]
) -> None:
    canary_arn = add_target_group(clients, "payments-4f2a9c1e")
    router = AlbRouter(clients.elbv2, listener_rule=seeded["listener_rule"])
    assert isinstance(router, TrafficRouter)
    before = without_weights(rule(clients, seeded["listener_rule"]))
    assert before["Conditions"] and before["Actions"][0]["ForwardConfig"][
        "TargetGroupStickinessConfig"
    ] == {"Enabled": True, "DurationSeconds": 300}
    log = CallLog(clients)
    for percent in (0, 10, 25, 50, 100):
        weights = canary_weights("payments-v1", "payments-4f2a9c1e", percent)
        for attempt in range(2):
            changed = router.set_weights(weights)
            calls = log.take()
            if attempt == 0 and percent > 0:
                # a known group: one read, one write; the first time the canary joins, a lookup
                assert changed and calls[0] == "DescribeRules" and calls[-1] == "ModifyRule"
                assert len(calls) == (3 if percent == 10 else 2)
            else:
                assert not changed and calls == ["DescribeRules"]
            assert router.read_weights() == weights
            assert without_weights(rule(clients, seeded["listener_rule"])) == before
            log.take()
    # the end states hold a single target
    router.set_weights({"payments-4f2a9c1e": 100})
    groups = rule(clients, seeded["listener_rule"])["Actions"][0]["ForwardConfig"]["TargetGroups"]
    assert groups == [{"TargetGroupArn": canary_arn, "Weight": 100}]


def test_a_plain_forward_action_and_a_listener_default_action(
    clients: AwsClients, seeded: dict[str, str]
) -> None:
    elbv2 = clients.elbv2
    stable_arn = seeded["target_group_arn"]
    elbv2.modify_listener(
        ListenerArn=seeded["listener_arn"],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": stable_arn}],
    )
    add_target_group(clients, "payments-4f2a9c1e")
    router = AlbRouter(elbv2, listener=seeded["listener_arn"])
    assert router.read_weights() == {"payments-v1": 100}
    assert router.label.startswith("listener canary-sandbox/")
    log = CallLog(clients)
    assert not router.set_weights({"payments-v1": 100})  # weight 1 of 1 is already 100 %
    assert log.take() == ["DescribeListeners"]
    assert router.set_weights({"payments-v1": 75, "payments-4f2a9c1e": 25})
    assert log.take()[-1] == "ModifyListener"
    listener = elbv2.describe_listeners(ListenerArns=[seeded["listener_arn"]])["Listeners"][0]
    assert [a["Type"] for a in listener["DefaultActions"]] == ["forward"]
    assert "TargetGroupArn" not in listener["DefaultActions"][0]
    assert router.read_weights() == {"payments-v1": 75, "payments-4f2a9c1e": 25}
    # the rule itself was never touched
    assert (
        rule(clients, seeded["listener_rule"])["Actions"][0]["ForwardConfig"]["TargetGroups"][0][
            "Weight"
        ]
        == 100
    )


@pytest.mark.parametrize(
    "weights",
    [
        {"payments-v1": 90, "payments-x": 20},
        {"payments-v1": 101},
        {"payments-v1": 50, "payments-x": 50.0},
        {},
        {f"tg{i}": 20 for i in range(5)} | {"tg5": 0},  # six groups: an ALB takes five
    ],
)
def test_bad_weights_are_refused_before_any_call(
    clients: AwsClients, seeded: dict[str, str], weights: dict[str, Any]
) -> None:
    router = AlbRouter(clients.elbv2, listener_rule=seeded["listener_rule"])
    log = CallLog(clients)
    with pytest.raises(WeightsError):
        router.set_weights(weights)
    assert log.take() == []


def test_unknown_target_group_is_refused_without_writing(
    clients: AwsClients, seeded: dict[str, str]
) -> None:
    router = AlbRouter(clients.elbv2, listener_rule=seeded["listener_rule"])
    log = CallLog(clients)
    with pytest.raises(AwsStepError, match="Target group payments-nope does not exist"):
        router.set_weights({"payments-v1": 90, "payments-nope": 10})
    assert log.take_writes() == []


def test_missing_rule_is_a_step_error(clients: AwsClients, seeded: dict[str, str]) -> None:
    gone = seeded["listener_rule"][:-4] + "beef"
    with pytest.raises(AwsStepError, match="does not exist; check the service's catalogue"):
        AlbRouter(clients.elbv2, listener_rule=gone).read_weights()


def test_include_adds_a_group_at_zero_once(clients: AwsClients, seeded: dict[str, str]) -> None:
    arn = add_target_group(clients, "payments-4f2a9c1e")
    router = AlbRouter(clients.elbv2, listener_rule=seeded["listener_rule"])
    log = CallLog(clients)
    assert router.include(arn)
    assert log.take() == ["DescribeRules", "ModifyRule"]
    assert not router.include(arn)
    assert log.take() == ["DescribeRules"]
    assert router.read_weights() == {"payments-v1": 100, "payments-4f2a9c1e": 0}


def test_router_needs_one_rule_or_listener(clients: AwsClients) -> None:
    with pytest.raises(ValueError):
        AlbRouter(clients.elbv2)
    with pytest.raises(ValueError):
        AlbRouter(clients.elbv2, listener_rule=RULE_ARN, listener="x")
