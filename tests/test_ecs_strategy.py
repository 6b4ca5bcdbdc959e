"""The catalogue's rollout as ECS's own CANARY / LINEAR deployment: hand-checkable cases."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from workers.aws.ecs_native.strategy import (
    EcsPlanError,
    Pause,
    StepsNotExpressible,
    choose_strategy,
    ecs_shifts,
    gate_after,
    plan_for_service,
    plan_rollout,
)
from workers.domain.catalogue import parse_catalogue

MIN = 60
HOUR = 3600
APPMESH = {"cluster": "prod", "mesh": "m", "virtual_router": "vr", "route": "r"}


def plan(**overrides: Any):
    settings: dict[str, Any] = {
        "steps": [25, 50, 75, 100],
        "bake": 5 * MIN,
        "gates": "manual",
        "gate_timeout": 24 * HOUR,
        "post_promotion_bake": 15 * MIN,
        "alarms": (),
    }
    return plan_rollout(**{**settings, **overrides})


# --- which strategy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([10, 100], ("CANARY", 10.0)),
        ([1, 100], ("CANARY", 1.0)),  # canaryPercent goes down to 0.1
        ([50, 100], ("CANARY", 50.0)),  # two steps read as a canary, not LINEAR 50
        ([25, 50, 75, 100], ("LINEAR", 25.0)),
        ([20, 40, 60, 80, 100], ("LINEAR", 20.0)),
        ([30, 60, 90, 100], ("LINEAR", 30.0)),  # the last shift takes what is left
        ([5] + [5 * k for k in range(2, 20)] + [100], ("LINEAR", 5.0)),
        ([100], ("LINEAR", 100.0)),  # all at once: one shift
    ],
)
def test_strategy_for_steps(steps: list[int], expected: tuple[str, float]) -> None:
    assert choose_strategy(steps) == expected


def test_ecs_shifts_by_hand() -> None:
    assert ecs_shifts("CANARY", 10) == (10.0, 100.0)
    assert ecs_shifts("LINEAR", 25) == (25.0, 50.0, 75.0, 100.0)
    # 100 / 11 is not whole: nine shifts of 11 %, then the last 1 % (CloudFormation's count of
    # floor(100 / StepPercent) steps with a bake).
    assert ecs_shifts("LINEAR", 11) == (11.0, 22.0, 33.0, 44.0, 55.0, 66.0, 77.0, 88.0, 99.0, 100.0)
    assert ecs_shifts("LINEAR", 33.3) == (33.3, 66.6, 99.9, 100.0)
    assert ecs_shifts("LINEAR", 100) == (100.0,)


def test_unequal_steps_are_refused_with_steps_ecs_can_do() -> None:
    with pytest.raises(StepsNotExpressible) as err:
        choose_strategy([10, 25, 50, 100])
    assert str(err.value) == (
        "steps=10,25,50,100 are not equal increments (ECS's LINEAR shifts the same percentage "
        "each time, the last shift taking what is left; CANARY is one step then 100); "
        "ECS can do steps=25,50,75,100 (LINEAR 25 %), "
        "steps=10,20,30,40,50,60,70,80,90,100 (LINEAR 10 %) or steps=10,100 (CANARY 10 %)."
    )


def test_steps_ecs_would_round_differently_are_refused() -> None:
    # LINEAR 30 goes 30, 60, 90, 100: it never stops at 60 to jump to 100.
    with pytest.raises(StepsNotExpressible, match="steps=30,60,100 are not equal increments"):
        choose_strategy([30, 60, 100])


def test_steps_below_the_linear_minimum_are_refused_naming_it() -> None:
    with pytest.raises(StepsNotExpressible) as err:
        choose_strategy([2, 4, 100])
    message = str(err.value)
    assert message.startswith("steps=2,4,100 shift 2 % at a time; ECS's LINEAR shifts at least 3 %")
    assert "steps=34,68,100 (LINEAR 34 %)" in message and "steps=2,100 (CANARY 2 %)" in message
    assert "LINEAR 2 %" not in message  # never suggest what ECS refuses


# --- the pauses and what the engine does at each ----------------------------------------------


def test_linear_pauses_before_every_shift_and_gates_after_each_judged_step() -> None:
    rollout = plan(steps=[25, 50, 75, 100], gates="manual")
    assert rollout.shifts == (25.0, 50.0, 75.0, 100.0)
    assert rollout.pauses == (
        Pause(index=0, at_percent=0.0, next_percent=25.0, judge=False, gate=False),
        Pause(index=1, at_percent=25.0, next_percent=50.0, judge=True, gate=True),
        Pause(index=2, at_percent=50.0, next_percent=75.0, judge=True, gate=True),
        Pause(index=3, at_percent=75.0, next_percent=100.0, judge=True, gate=True),
    )


@pytest.mark.parametrize(
    ("gates", "gated_at"),
    [("manual", [25.0, 50.0, 75.0]), ("final", [75.0]), ("auto", [])],
)
def test_gates_follow_the_catalogue_rule(gates: str, gated_at: list[float]) -> None:
    rollout = plan(gates=gates)
    assert [p.at_percent for p in rollout.pauses if p.gate] == gated_at
    # Judged either way: every step that served traffic, whatever the gates.
    assert [p.at_percent for p in rollout.pauses if p.judge] == [25.0, 50.0, 75.0]


def test_canary_pauses_twice() -> None:
    rollout = plan(steps=[10, 100], gates="final")
    assert rollout.strategy == "CANARY"
    assert [(p.at_percent, p.next_percent, p.judge, p.gate) for p in rollout.pauses] == [
        (0.0, 10.0, False, False),
        (10.0, 100.0, True, True),
    ]


def test_gate_rule_agrees_with_the_catalogue() -> None:
    for gates in ("manual", "final", "auto"):
        service = parse_catalogue(
            {"services": {"p": {**APPMESH, "steps": [20, 40, 60, 80, 100], "gates": gates}}}
        ).service("p")
        for i in range(len(service.steps)):
            assert gate_after(service.steps, gates, i) == service.gate_after(i), (gates, i)


# --- the deploymentConfiguration ------------------------------------------------------------


def test_deployment_configuration_by_hand() -> None:
    rollout = plan(alarms=("payments-p99",))
    assert rollout.deployment_configuration() == {
        "strategy": "LINEAR",
        "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 5},
        "bakeTimeInMinutes": 15,
        "lifecycleHooks": [
            {
                "targetType": "PAUSE",
                "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
                "timeoutConfiguration": {"timeoutInMinutes": 1440, "action": "ROLLBACK"},
            }
        ],
        "alarms": {"alarmNames": ["payments-p99"], "enable": True, "rollback": True},
    }


def test_canary_configuration_and_alarms_off_when_none() -> None:
    config = plan(steps=[5, 100], bake=10 * MIN).deployment_configuration()
    assert config["strategy"] == "CANARY"
    assert config["canaryConfiguration"] == {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 10}
    assert "linearConfiguration" not in config
    assert config["alarms"] == {"alarmNames": [], "enable": False, "rollback": False}


def test_durations_round_up_to_whole_minutes_and_say_so() -> None:
    rollout = plan(bake=90, gate_timeout=30, post_promotion_bake=0)
    assert (rollout.step_bake_minutes, rollout.hook_timeout_minutes, rollout.bake_minutes) == (
        2,
        1,
        0,
    )
    assert rollout.notes == (
        "bake of 90s runs as 2 min on ECS (whole minutes only)",
        "gate_timeout of 30s runs as 1 min on ECS (whole minutes only)",
    )


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"bake": 25 * HOUR}, "longest step bake, 1440 min (24h)"),
        ({"post_promotion_bake": 2 * 24 * HOUR}, "bake time limit, 1440 min (24h)"),
        ({"gate_timeout": 15 * 24 * HOUR}, "paused deployment, 20160 min (14d)"),
    ],
)
def test_durations_beyond_ecs_limits_are_refused(overrides: dict[str, int], needle: str) -> None:
    with pytest.raises(EcsPlanError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        plan(**overrides)


def test_plan_for_a_catalogue_entry() -> None:
    service = parse_catalogue(
        {
            "services": {
                "payments": {
                    **APPMESH,
                    "steps": [20, 40, 60, 80, 100],
                    "bake": "3m",
                    "gates": "final",
                    "gate_timeout": "2h",
                    "post_promotion_bake": "10m",
                    "alarms": ["payments-5xx"],
                }
            }
        }
    ).service("payments")
    rollout = plan_for_service(service)
    assert (rollout.strategy, rollout.percent, rollout.step_bake_minutes) == ("LINEAR", 20.0, 3)
    assert (rollout.hook_timeout_minutes, rollout.bake_minutes) == (120, 10)
    assert rollout.alarms == ("payments-5xx",)
    assert [p.at_percent for p in rollout.pauses if p.gate] == [80.0]


def test_the_catalogue_defaults_are_refused_with_a_way_out() -> None:
    # The design's default steps (10, 25, 50, 100) are not equal increments.
    service = parse_catalogue({"services": {"p": APPMESH}}).service("p")
    with pytest.raises(StepsNotExpressible, match="ECS can do steps=25,50,75,100"):
        plan_for_service(service)


# --- validated against botocore's model of UpdateService ---------------------------------------


@pytest.fixture(scope="module")
def update_service_shape():
    model = botocore.session.get_session().get_service_model("ecs")
    return model.operation_model("UpdateService").input_shape


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"steps": [10, 100], "alarms": ("a", "b")},
        {"steps": [100], "post_promotion_bake": 0},
        {"steps": [30, 60, 90, 100], "gates": "auto"},
    ],
)
def test_update_service_request_matches_the_botocore_model(
    update_service_shape: Any, overrides: dict[str, Any]
) -> None:
    request = plan(**overrides).update_service_request(
        cluster="prod", service="payments", task_definition="payments:43"
    )
    report = ParamValidator().validate(request, update_service_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_validator_would_catch_a_wrong_shape(update_service_shape: Any) -> None:
    request = plan().update_service_request(cluster="c", service="s", task_definition="t:1")
    request["deploymentConfiguration"]["lifecycleHooks"][0]["timeoutConfiguration"] = {
        "timeoutInMinutes": 0
    }
    request["deploymentConfiguration"]["linearConfiguration"]["stepPercent"] = "25"
    report = ParamValidator().validate(request, update_service_shape)
    assert report.has_errors()
    text = report.generate_report()
    assert "timeoutInMinutes" in text and "stepPercent" in text
