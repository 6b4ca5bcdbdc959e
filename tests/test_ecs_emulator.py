"""The ECS service-deployment emulator plays the documented lifecycle (see docs/ECS.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator
from moto import mock_aws

from sandbox.ecs_deployments import EcsDeployments, route_client
from workers.aws.ecs_native.strategy import plan_rollout

OLD = "arn:aws:ecs:us-east-1:123456789012:task-definition/payments:42"
NEW = "arn:aws:ecs:us-east-1:123456789012:task-definition/payments:43"
MODEL = botocore.session.get_session().get_service_model("ecs")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: float = 0, seconds: float = 0) -> None:
        self.now += timedelta(minutes=minutes, seconds=seconds)


def linear(
    step: float = 25,
    bake: int = 5,
    final_bake: int = 15,
    hook: dict[str, Any] | None = None,
    alarms: list[str] | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "strategy": "LINEAR",
        "linearConfiguration": {"stepPercent": step, "stepBakeTimeInMinutes": bake},
        "bakeTimeInMinutes": final_bake,
    }
    if hook is not None:
        config["lifecycleHooks"] = [
            {
                "targetType": "PAUSE",
                "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
                "timeoutConfiguration": hook,
            }
        ]
    if alarms:
        config["alarms"] = {"alarmNames": alarms, "enable": True, "rollback": True}
    return config


PAUSE_1H = {"timeoutInMinutes": 60, "action": "ROLLBACK"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ecs(clock: Clock) -> EcsDeployments:
    world = EcsDeployments(clock=clock)
    world.create_service(cluster="prod", serviceName="payments", taskDefinition=OLD, desiredCount=2)
    return world


def start(ecs: EcsDeployments, config: dict[str, Any]) -> str:
    answer = ecs.update_service(
        cluster="prod", service="payments", taskDefinition=NEW, deploymentConfiguration=config
    )
    return answer["service"]["currentServiceDeployment"]


def describe(ecs: EcsDeployments, arn: str) -> dict[str, Any]:
    answer = ecs.describe_service_deployments(serviceDeploymentArns=[arn])
    assert_shape("DescribeServiceDeployments", answer)
    return answer["serviceDeployments"][0]


def new_share(d: dict[str, Any]) -> float:
    return d["targetServiceRevision"]["requestedProductionTrafficWeight"]


def awaiting(d: dict[str, Any]) -> str | None:
    """The hookId of the pause awaiting action, if any."""
    hooks = [h for h in d["lifecycleHookDetails"] if h["status"] == "AWAITING_ACTION"]
    return hooks[0]["hookId"] if hooks else None


def bounded(limit: int = 10_000) -> range:
    """Loop bounds for the walks below, so a lifecycle that never ends fails instead of hanging."""
    return range(limit)


def assert_shape(operation: str, answer: dict[str, Any]) -> None:
    shape = MODEL.operation_model(operation).output_shape
    report = ParamValidator().validate(answer, shape)
    assert not report.has_errors(), report.generate_report()


# --- pauses before every shift ---------------------------------------------------------------


def test_a_hook_pauses_before_each_linear_step_and_continue_moves_on(
    ecs: EcsDeployments, clock: Clock
) -> None:
    arn = start(ecs, linear(step=25, bake=5, final_bake=15, hook=PAUSE_1H))
    seen_hooks = []
    for share in (0.0, 25.0, 50.0, 75.0):
        d = describe(ecs, arn)
        hook = awaiting(d)
        assert hook is not None, f"no pause before the shift from {share} %"
        assert (d["status"], d["lifecycleStage"], new_share(d)) == (
            "IN_PROGRESS",
            "PRE_PRODUCTION_TRAFFIC_SHIFT",
            share,
        )
        assert d["lifecycleHookDetails"][0]["timeoutAction"] == "ROLLBACK"
        assert d["lifecycleHookDetails"][0]["expiresAt"] == clock.now + timedelta(minutes=60)
        seen_hooks.append(hook)
        answer = ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook)
        assert_shape("ContinueServiceDeployment", answer)
        d = describe(ecs, arn)
        assert new_share(d) == share + 25
        if share < 75:
            # The step bakes before the next pause: nothing awaits action for 5 minutes.
            assert (awaiting(d), d["lifecycleStage"]) == (None, "PRODUCTION_TRAFFIC_SHIFT")
            clock.tick(minutes=4, seconds=59)
            assert awaiting(describe(ecs, arn)) is None
            clock.tick(seconds=1)
    assert len(set(seen_hooks)) == 4  # a new hookId at every pause
    d = describe(ecs, arn)
    assert (d["status"], d["lifecycleStage"], new_share(d)) == ("IN_PROGRESS", "BAKE_TIME", 100.0)
    assert d["sourceServiceRevisions"][0]["requestedTaskCount"] == 2  # old kept through the bake
    clock.tick(minutes=15)
    d = describe(ecs, arn)
    assert (d["status"], d["lifecycleStage"]) == ("SUCCESSFUL", "CLEAN_UP")
    assert d["finishedAt"] == clock.now
    assert d["sourceServiceRevisions"][0]["requestedTaskCount"] == 0
    assert ecs.describe_service(cluster="prod", service="payments")["taskDefinition"] == NEW
    assert ecs.production_traffic(cluster="prod", service="payments") == {NEW: 100.0}


def test_a_canary_pauses_before_its_two_shifts(ecs: EcsDeployments, clock: Clock) -> None:
    config = {
        "strategy": "CANARY",
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 3},
        "bakeTimeInMinutes": 0,
        "lifecycleHooks": linear(hook=PAUSE_1H)["lifecycleHooks"],
    }
    arn = start(ecs, config)
    shares = []
    for _ in bounded():
        if (d := describe(ecs, arn))["status"] != "IN_PROGRESS":
            break
        hook = awaiting(d)
        if hook:
            shares.append(new_share(d))
            ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook)
        else:
            clock.tick(minutes=1)
    assert shares == [0.0, 10.0]
    assert d["status"] == "SUCCESSFUL"


def test_without_hooks_the_clock_alone_drives_the_steps(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(step=30, bake=5, final_bake=10))
    timeline = []
    for minute in range(0, 26, 5):
        d = describe(ecs, arn)
        timeline.append((minute, new_share(d), d["status"]))
        clock.tick(minutes=5)
    # 30, 60, 90 then the rest; no bake after 100 %, then the 10-minute deployment bake.
    assert timeline == [
        (0, 30.0, "IN_PROGRESS"),
        (5, 60.0, "IN_PROGRESS"),
        (10, 90.0, "IN_PROGRESS"),
        (15, 100.0, "IN_PROGRESS"),
        (20, 100.0, "IN_PROGRESS"),
        (25, 100.0, "SUCCESSFUL"),
    ]


def test_the_strategys_plan_plays_as_planned(ecs: EcsDeployments, clock: Clock) -> None:
    rollout = plan_rollout(
        steps=[20, 40, 60, 80, 100],
        bake=120,
        gates="final",
        gate_timeout=3600,
        post_promotion_bake=300,
    )
    arn = ecs.update_service(
        **rollout.update_service_request(cluster="prod", service="payments", task_definition=NEW)
    )["service"]["currentServiceDeployment"]
    met = []
    for _ in bounded():
        if (d := describe(ecs, arn))["status"] != "IN_PROGRESS":
            break
        hook = awaiting(d)
        if hook:
            met.append((new_share(d), rollout.pauses[len(met)].next_percent))
            ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook)
            assert new_share(describe(ecs, arn)) == met[-1][1]
        else:
            clock.tick(minutes=1)
    assert [at for at, _ in met] == [p.at_percent for p in rollout.pauses]
    assert d["status"] == "SUCCESSFUL"


# --- rolling back ----------------------------------------------------------------------------


def pause_at(ecs: EcsDeployments, clock: Clock, arn: str, share: float) -> str:
    """Continue every pause until one waits with the new revision at `share` %; its hookId."""
    for _ in bounded():
        d = describe(ecs, arn)
        hook = awaiting(d)
        if hook and new_share(d) == share:
            return hook
        if hook:
            ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook)
        else:
            clock.tick(minutes=1)
    raise AssertionError(f"no pause with the new revision at {share} %")


def test_rollback_at_a_hook_restores_the_old_revision(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(hook=PAUSE_1H))
    hook = pause_at(ecs, clock, arn, 50.0)
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook, action="ROLLBACK")
    d = describe(ecs, arn)
    assert d["status"] == "ROLLBACK_SUCCESSFUL"
    assert d["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"] == 100.0
    assert new_share(d) == 0.0 and d["targetServiceRevision"]["requestedTaskCount"] == 0
    assert d["rollback"]["serviceRevisionArn"] == d["sourceServiceRevisions"][0]["arn"]
    assert hook in d["rollback"]["reason"]
    assert ecs.production_traffic(cluster="prod", service="payments") == {OLD: 100.0}
    assert ecs.describe_service(cluster="prod", service="payments")["taskDefinition"] == OLD


def test_traffic_is_back_before_the_rollback_finishes(clock: Clock) -> None:
    ecs = EcsDeployments(clock=clock, rollback_seconds=30)
    ecs.create_service(cluster="prod", serviceName="payments", taskDefinition=OLD)
    arn = start(ecs, linear(hook=PAUSE_1H))
    hook = pause_at(ecs, clock, arn, 25.0)
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook, action="ROLLBACK")
    d = describe(ecs, arn)
    assert (d["status"], new_share(d)) == ("ROLLBACK_IN_PROGRESS", 0.0)
    assert ecs.production_traffic(cluster="prod", service="payments") == {OLD: 100.0}
    clock.tick(seconds=30)
    assert describe(ecs, arn)["status"] == "ROLLBACK_SUCCESSFUL"


def test_a_hook_left_past_its_timeout_rolls_back(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(hook=PAUSE_1H))
    hook = pause_at(ecs, clock, arn, 25.0)
    expires = describe(ecs, arn)["lifecycleHookDetails"][0]["expiresAt"]
    clock.tick(minutes=59)
    assert awaiting(describe(ecs, arn)) == hook
    clock.tick(minutes=2)
    d = describe(ecs, arn)
    assert d["lifecycleHookDetails"][0] == {
        "hookId": hook,
        "targetType": "PAUSE",
        "status": "TIMED_OUT",
        "expiresAt": expires,
        "timeoutAction": "ROLLBACK",
    }
    assert (d["status"], new_share(d), d["finishedAt"]) == ("ROLLBACK_SUCCESSFUL", 0.0, expires)
    assert "timed out" in d["statusReason"]
    with pytest.raises(ClientError) as err:
        ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook)
    assert err.value.response["Error"]["Code"] == "ClientException"


def test_a_hook_timing_out_with_continue_goes_on(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(hook={"timeoutInMinutes": 10, "action": "CONTINUE"}))
    assert new_share(describe(ecs, arn)) == 0.0
    clock.tick(minutes=10)
    d = describe(ecs, arn)
    assert new_share(d) == 25.0 and d["status"] == "IN_PROGRESS"


def test_the_hook_timeout_defaults_to_a_day_and_rollback(ecs: EcsDeployments, clock: Clock) -> None:
    config = linear()
    config["lifecycleHooks"] = [
        {"targetType": "PAUSE", "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"]}
    ]
    arn = start(ecs, config)
    detail = describe(ecs, arn)["lifecycleHookDetails"][0]
    assert detail["expiresAt"] == clock.now + timedelta(minutes=1440)
    assert detail["timeoutAction"] == "ROLLBACK"


def test_an_alarm_in_alarm_rolls_back_during_a_step(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(alarms=["payments-5xx", "payments-p99"]))
    clock.tick(minutes=6)
    assert new_share(describe(ecs, arn)) == 50.0
    ecs.set_alarm_state(AlarmName="payments-p99", StateValue="ALARM", StateReason="test")
    clock.tick(seconds=1)
    d = describe(ecs, arn)
    assert (d["status"], new_share(d)) == ("ROLLBACK_SUCCESSFUL", 0.0)
    assert d["alarms"] == {
        "status": "TRIGGERED",
        "alarmNames": ["payments-5xx", "payments-p99"],
        "triggeredAlarmNames": ["payments-p99"],
    }
    assert "payments-p99" in d["statusReason"]


def test_alarms_are_watched_through_the_bake_time(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(step=50, bake=1, final_bake=15, alarms=["payments-5xx"]))
    clock.tick(minutes=2)
    d = describe(ecs, arn)
    assert (d["lifecycleStage"], new_share(d)) == ("BAKE_TIME", 100.0)
    ecs.set_alarm_state(AlarmName="payments-5xx", StateValue="ALARM")
    d = describe(ecs, arn)
    assert (d["status"], new_share(d)) == ("ROLLBACK_SUCCESSFUL", 0.0)
    assert ecs.production_traffic(cluster="prod", service="payments") == {OLD: 100.0}


def test_an_alarm_after_success_changes_nothing(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(step=50, bake=1, final_bake=1, alarms=["payments-5xx"]))
    clock.tick(minutes=5)
    assert describe(ecs, arn)["alarms"]["status"] == "MONITORING_COMPLETE"
    ecs.set_alarm_state(AlarmName="payments-5xx", StateValue="ALARM")
    assert describe(ecs, arn)["status"] == "SUCCESSFUL"


def test_an_injected_alarm_source_is_read(clock: Clock) -> None:
    in_alarm: set[str] = set()
    ecs = EcsDeployments(clock=clock, alarms=lambda names: [n for n in names if n in in_alarm])
    ecs.create_service(cluster="prod", serviceName="payments", taskDefinition=OLD)
    arn = start(ecs, linear(alarms=["x"]))
    assert describe(ecs, arn)["status"] == "IN_PROGRESS"
    in_alarm.add("x")
    assert describe(ecs, arn)["status"] == "ROLLBACK_SUCCESSFUL"


def test_stop_rolls_back_outside_a_pause(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear())
    clock.tick(minutes=6)
    answer = ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert_shape("StopServiceDeployment", answer)
    d = describe(ecs, arn)
    assert (d["status"], new_share(d)) == ("ROLLBACK_SUCCESSFUL", 0.0)
    assert d["rollback"]["reason"] == "stopped with StopServiceDeployment"


def test_stop_during_a_pause_fails_the_hook(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(hook=PAUSE_1H))
    hook = pause_at(ecs, clock, arn, 25.0)
    ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    d = describe(ecs, arn)
    assert d["status"] == "ROLLBACK_SUCCESSFUL"
    assert d["lifecycleHookDetails"][0]["hookId"] == hook
    assert d["lifecycleHookDetails"][0]["status"] == "FAILED"


def test_stop_while_rolling_back_goes_on_and_after_the_end_is_refused(clock: Clock) -> None:
    ecs = EcsDeployments(clock=clock, rollback_seconds=20)
    ecs.create_service(cluster="prod", serviceName="payments", taskDefinition=OLD)
    arn = start(ecs, linear())
    ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")  # no error
    clock.tick(seconds=20)
    with pytest.raises(ClientError) as err:
        ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert err.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as err:
        ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"


# --- what a crashed or confused caller meets ---------------------------------------------------


def test_a_hook_cannot_be_continued_twice(ecs: EcsDeployments, clock: Clock) -> None:
    arn = start(ecs, linear(hook=PAUSE_1H, bake=0))
    first = awaiting(describe(ecs, arn))
    assert first is not None
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=first)
    # With no step bake the next pause is already there, under a new hookId: a retried
    # CONTINUE with the old one must not skip it.
    d = describe(ecs, arn)
    assert new_share(d) == 25.0 and awaiting(d) not in (None, first)
    with pytest.raises(ClientError) as err:
        ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=first)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert new_share(describe(ecs, arn)) == 25.0


def test_unknown_deployments_and_services(ecs: EcsDeployments) -> None:
    missing = "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/payments/nope"
    answer = ecs.describe_service_deployments(serviceDeploymentArns=[missing])
    assert answer == {"serviceDeployments": [], "failures": [{"arn": missing, "reason": "MISSING"}]}
    with pytest.raises(ClientError) as err:
        ecs.continue_service_deployment(serviceDeploymentArn=missing, hookId="h")
    assert err.value.response["Error"]["Code"] == "ServiceDeploymentNotFoundException"
    with pytest.raises(ClientError) as err:
        ecs.update_service(cluster="prod", service="orders", taskDefinition=NEW)
    assert err.value.response["Error"]["Code"] == "ServiceNotFoundException"


def test_update_service_again_is_idempotent_but_a_new_revision_waits(
    ecs: EcsDeployments,
) -> None:
    arn = start(ecs, linear(hook=PAUSE_1H))
    assert start(ecs, linear(hook=PAUSE_1H)) == arn
    assert (
        len(ecs.list_service_deployments(cluster="prod", service="payments")["serviceDeployments"])
        == 1
    )
    with pytest.raises(ClientError) as err:
        ecs.update_service(cluster="prod", service="payments", taskDefinition=OLD + "0")
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"


def test_list_service_deployments_newest_first(ecs: EcsDeployments, clock: Clock) -> None:
    first = start(ecs, linear(step=100, final_bake=0))
    assert describe(ecs, first)["status"] == "SUCCESSFUL"
    clock.tick(minutes=1)
    second = ecs.update_service(
        cluster="prod",
        service="payments",
        taskDefinition=OLD,
        deploymentConfiguration=linear(hook=PAUSE_1H),
    )["service"]["currentServiceDeployment"]
    answer = ecs.list_service_deployments(cluster="prod", service="payments")
    assert_shape("ListServiceDeployments", answer)
    assert [d["serviceDeploymentArn"] for d in answer["serviceDeployments"]] == [second, first]
    only = ecs.list_service_deployments(cluster="prod", service="payments", status=["IN_PROGRESS"])[
        "serviceDeployments"
    ]
    assert [(d["serviceDeploymentArn"], d["status"]) for d in only] == [(second, "IN_PROGRESS")]


@pytest.mark.parametrize(
    ("config", "code", "needle"),
    [
        (
            {
                **linear(),
                "lifecycleHooks": [
                    {"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}
                ],
            },
            "InvalidParameterException",
            "PAUSE hooks cannot be configured",
        ),
        (
            {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 0.05}},
            "InvalidParameterException",
            "canaryPercent",
        ),
        (linear(step=2.5), "InvalidParameterException", "stepPercent"),
        (linear(bake=1441), "InvalidParameterException", "stepBakeTimeInMinutes"),
        (
            {**linear(), "canaryConfiguration": {"canaryPercent": 5.0}},
            "InvalidParameterException",
            "only valid with strategy CANARY",
        ),
        (linear(hook={"timeoutInMinutes": 0}), "InvalidParameterException", "timeoutInMinutes"),
        (linear(hook={"timeoutInMinutes": 20161}), "InvalidParameterException", "20160"),
        ({"strategy": "ROLLING"}, "UnsupportedFeatureException", "CANARY and LINEAR"),
    ],
)
def test_configurations_ecs_refuses(
    ecs: EcsDeployments, config: dict[str, Any], code: str, needle: str
) -> None:
    with pytest.raises(ClientError) as err:
        start(ecs, config)
    assert err.value.response["Error"]["Code"] == code
    assert needle in err.value.response["Error"]["Message"]
    assert (
        ecs.list_service_deployments(cluster="prod", service="payments")["serviceDeployments"] == []
    )
    # ...and the service keeps the (empty) configuration it was created with.
    assert ecs.describe_service(cluster="prod", service="payments")["deploymentConfiguration"] == {}


def test_update_service_answer_has_the_service_shape(ecs: EcsDeployments) -> None:
    answer = ecs.update_service(
        cluster="prod", service="payments", taskDefinition=NEW, deploymentConfiguration=linear()
    )
    assert_shape("UpdateService", answer)
    assert answer["service"]["deploymentConfiguration"]["strategy"] == "LINEAR"


# --- behind a real boto3 client ------------------------------------------------------------------


def test_a_boto3_client_can_be_answered_by_the_emulator(ecs: EcsDeployments, clock: Clock) -> None:
    client = boto3.client(
        "ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    route_client(client, ecs)
    arn = client.update_service(
        cluster="prod",
        service="payments",
        taskDefinition=NEW,
        deploymentConfiguration=linear(hook=PAUSE_1H),
    )["service"]["currentServiceDeployment"]
    found = client.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"]
    hook = awaiting(found[0])
    assert hook is not None
    client.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook, action="CONTINUE")
    found = client.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"]
    assert new_share(found[0]) == 25.0
    # Errors come back as the client's own exception classes.
    with pytest.raises(client.exceptions.ClientException):  # no longer awaiting action
        client.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook)
    with pytest.raises(client.exceptions.ServiceDeploymentNotFoundException):
        client.stop_service_deployment(serviceDeploymentArn=arn + "x", stopType="ROLLBACK")
    # botocore validates before the emulator is asked: a wrong type never reaches it.
    with pytest.raises(Exception, match="Parameter validation failed"):
        client.continue_service_deployment(serviceDeploymentArn=arn, hookId=7)


def test_calls_the_emulator_does_not_own_go_on_to_moto(ecs: EcsDeployments) -> None:
    with mock_aws():
        client = boto3.client("ecs", region_name="us-east-1")
        route_client(client, ecs)
        client.create_cluster(clusterName="prod")
        client.register_task_definition(
            family="orders",
            containerDefinitions=[{"name": "app", "image": "orders:1", "memory": 512}],
        )
        client.create_service(
            cluster="prod", serviceName="orders", taskDefinition="orders:1", desiredCount=1
        )
        answer = client.update_service(cluster="prod", service="orders", desiredCount=3)
        assert answer["service"]["desiredCount"] == 3  # moto's answer: orders is not emulated
        assert not ecs.knows(cluster="prod", service="orders")
        # ...while payments, created in the emulator, is answered there.
        answer = client.update_service(
            cluster="prod", service="payments", taskDefinition=NEW, deploymentConfiguration=linear()
        )
        assert answer["service"]["currentServiceDeployment"].startswith(
            "arn:aws:ecs:us-east-1:123456789012:service-deployment/prod/payments/"
        )


def test_service_revisions_name_their_task_definitions(ecs: EcsDeployments) -> None:
    arn = start(ecs, linear(hook=PAUSE_1H))
    d = describe(ecs, arn)
    source = d["sourceServiceRevisions"][0]["arn"]
    target = d["targetServiceRevision"]["arn"]
    answer = ecs.describe_service_revisions(serviceRevisionArns=[source, target, "arn:nope"])
    assert_shape("DescribeServiceRevisions", answer)
    assert [r["taskDefinition"] for r in answer["serviceRevisions"]] == [OLD, NEW]
    assert answer["failures"] == [{"arn": "arn:nope", "reason": "MISSING"}]
