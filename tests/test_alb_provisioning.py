"""Canary provisioning, removal and retirement behind an ALB, on moto; every step run twice."""

from __future__ import annotations

import pytest

from tests.alb_fixtures import (  # noqa: F401 - fixtures
    CallLog,
    clients_fixture,
    rule,
    seeded_fixture,
)
from tests.aws_faults import overtaken_at
from workers.aws.alb.discovery import discover_alb_stable
from workers.aws.alb.provisioning import (
    canary_target_group_name,
    clone_alb_service_request,
    find_alb_canary,
    provision_alb_canary,
    remove_alb_canary,
    retire_alb_stable,
)
from workers.aws.alb.router import AlbRouter
from workers.aws.clients import AwsClients
from workers.aws.ecs import TAG_KEY
from workers.aws.errors import AwsStepError
from workers.domain.versions import AlbCanary, AlbStable

DEP = "4f2a9c1e"
NAME = f"payments-{DEP}"
NEW_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v42"


@pytest.fixture
def stable(clients: AwsClients, seeded: dict[str, str]) -> AlbStable:
    return discover_alb_stable(
        clients, cluster="prod", listener_rule=seeded["listener_rule"], listener=None
    )


def provision(clients: AwsClients, stable: AlbStable) -> AlbCanary:
    return provision_alb_canary(clients, stable, name=NAME, image=NEW_IMAGE, deployment_id=DEP)


def service(clients: AwsClients, name: str) -> dict:
    found = clients.ecs.describe_services(cluster="prod", services=[name], include=["TAGS"])
    return found["services"][0] if found["services"] else {}


def group(clients: AwsClients, name: str) -> dict | None:
    try:
        return clients.elbv2.describe_target_groups(Names=[name])["TargetGroups"][0]
    except clients.elbv2.exceptions.TargetGroupNotFoundException:
        return None


def attributes(clients: AwsClients, arn: str) -> dict[str, str]:
    found = clients.elbv2.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]
    return {a["Key"]: a["Value"] for a in found}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("payments", "payments-4f2a9c1e"),
        ("a-very-long-service-key-that-goes-on", "a-very-long-service-key-4f2a9c1e"),
        ("long_key_with_under_scores_and_more", "long-key-with-under-sco-4f2a9c1e"),
        ("twenty-one-characters--tail", "twenty-one-characters-4f2a9c1e"),
    ],
)
def test_target_group_names_fit_in_32_characters(key: str, expected: str) -> None:
    name = canary_target_group_name(f"{key}-{DEP}", DEP)
    assert name == expected
    assert len(name) <= 32 and name.endswith(f"-{DEP}") and not name.startswith("-")


def test_provision_clones_and_changes_only_what_must_change(
    clients: AwsClients, stable: AlbStable
) -> None:
    canary = provision(clients, stable)
    assert canary.target_group_name == NAME and canary.ecs_service_name == NAME
    old, new = group(clients, "payments-v1"), group(clients, NAME)
    assert old is not None and new is not None
    for field in (
        "Protocol",
        "Port",
        "VpcId",
        "TargetType",
        "HealthCheckPath",
        "HealthCheckIntervalSeconds",
        "HealthyThresholdCount",
        "Matcher",
    ):
        assert new[field] == old[field], field
    assert attributes(clients, canary.target_group_arn) == attributes(
        clients, stable.target_group_arn
    )
    assert (
        attributes(clients, canary.target_group_arn)["deregistration_delay.timeout_seconds"] == "30"
    )
    tags = clients.elbv2.describe_tags(ResourceArns=[canary.target_group_arn])["TagDescriptions"]
    assert {"Key": TAG_KEY, "Value": DEP} in tags[0]["Tags"]
    # listed in the rule without traffic, so ECS accepts it (real AWS needs an associated LB)
    assert AlbRouter(clients.elbv2, listener_rule=stable.listener_rule).read_weights() == {
        "payments-v1": 100,
        NAME: 0,
    }
    old_svc, new_svc = service(clients, "payments"), service(clients, NAME)
    assert new_svc["loadBalancers"] == [
        {"targetGroupArn": canary.target_group_arn, "containerName": "app", "containerPort": 8080}
    ]
    for field in ("networkConfiguration", "launchType", "platformVersion", "desiredCount"):
        assert new_svc[field] == old_svc[field], field
    assert not new_svc.get("serviceRegistries")
    assert {"key": TAG_KEY, "value": DEP} in new_svc["tags"]
    old_td = clients.ecs.describe_task_definition(taskDefinition=stable.task_definition_arn)
    new_td = clients.ecs.describe_task_definition(taskDefinition=canary.task_definition_arn)
    old_c = {c["name"]: c for c in old_td["taskDefinition"]["containerDefinitions"]}
    new_c = {c["name"]: c for c in new_td["taskDefinition"]["containerDefinitions"]}
    assert new_c["app"]["image"] == NEW_IMAGE
    assert new_c["log-router"] == old_c["log-router"]  # the sidecar listed first is left alone
    assert {k: v for k, v in new_c["app"].items() if k != "image"} == {
        k: v for k, v in old_c["app"].items() if k != "image"
    }
    assert new_td["taskDefinition"]["family"] == "payments"


def test_provision_twice_writes_only_once(clients: AwsClients, stable: AlbStable) -> None:
    log = CallLog(clients)
    first = provision(clients, stable)
    writes = log.take_writes()
    assert sorted(writes) == sorted(
        [
            "RegisterTaskDefinition",
            "CreateTargetGroup",
            "ModifyTargetGroupAttributes",
            "ModifyRule",
            "CreateService",
        ]
    )
    assert provision(clients, stable) == first
    assert log.take_writes() == []
    assert find_alb_canary(clients, stable, name=NAME) == first


@pytest.mark.parametrize(
    ("client", "operation"),
    [
        ("ecs", "register_task_definition"),
        ("elbv2", "create_target_group"),
        ("ecs", "create_service"),
    ],
)
def test_a_rerun_overtaking_a_slow_first_attempt_leaves_one_canary_both_agree_on(
    clients: AwsClients,
    stable: AlbStable,
    monkeypatch: pytest.MonkeyPatch,
    client: str,
    operation: str,
) -> None:
    """The watchdog's re-run of a slow provisioning step creates the canary while the first
    attempt is between its look and its create: ELBv2 then refuses the first attempt's target
    group (DuplicateTargetGroupName), ECS its service; it adopts the re-run's."""
    rerun: list[AlbCanary] = []
    overtaken_at(
        monkeypatch,
        getattr(clients, client),
        operation,
        lambda: rerun.append(provision(clients, stable)),
    )

    first = provision(clients, stable)

    assert rerun == [first]
    assert find_alb_canary(clients, stable, name=NAME) == first
    assert service(clients, NAME)["taskDefinition"] == first.task_definition_arn
    groups = clients.elbv2.describe_target_groups()["TargetGroups"]
    assert [g["TargetGroupArn"] for g in groups if g["TargetGroupName"] == NAME] == [
        first.target_group_arn
    ]
    mine = clients.ecs.list_task_definitions(familyPrefix="payments", status="ACTIVE")
    assert [a for a in mine["taskDefinitionArns"] if not a.endswith(":1")] == [
        first.task_definition_arn
    ]
    assert AlbRouter(clients.elbv2, listener_rule=stable.listener_rule).read_weights() == {
        "payments-v1": 100,
        NAME: 0,
    }


def test_rule_conditions_and_stickiness_survive_provisioning_and_shifts(
    clients: AwsClients, stable: AlbStable
) -> None:
    before = rule(clients, stable.listener_rule)
    canary = provision(clients, stable)
    router = AlbRouter(clients.elbv2, listener_rule=stable.listener_rule)
    for weights in ({"payments-v1": 90, NAME: 10}, {"payments-v1": 0, NAME: 100}, {NAME: 100}):
        router.set_weights(weights)
        after = rule(clients, stable.listener_rule)
        assert after["Conditions"] == before["Conditions"]
        assert after["Priority"] == before["Priority"]
        forward = after["Actions"][0]["ForwardConfig"]
        assert forward["TargetGroupStickinessConfig"] == {"Enabled": True, "DurationSeconds": 300}
    assert canary.target_group_arn in router.read_target_groups()


def test_remove_canary_deletes_everything_and_is_idempotent(
    clients: AwsClients, stable: AlbStable
) -> None:
    canary = provision(clients, stable)
    router = AlbRouter(clients.elbv2, listener_rule=stable.listener_rule)
    router.set_weights({"payments-v1": 90, NAME: 10})
    # still forwarded to: the group stays (the engine restores the rule first)
    problems = remove_alb_canary(clients, stable, canary, keep=False)
    assert any("still forwards to target group" in p for p in problems)
    router.set_weights({"payments-v1": 100})
    log = CallLog(clients)
    assert remove_alb_canary(clients, stable, canary, keep=False) == []
    assert "DeleteTargetGroup" in log.take_writes()
    assert group(clients, NAME) is None
    assert service(clients, NAME).get("status") != "ACTIVE"
    td = clients.ecs.describe_task_definition(taskDefinition=canary.task_definition_arn)
    assert td["taskDefinition"]["status"] == "INACTIVE"
    assert remove_alb_canary(clients, stable, canary, keep=False) == []
    assert log.take_writes() == []
    assert group(clients, "payments-v1") is not None


def test_remove_canary_keep_scales_to_zero_only(clients: AwsClients, stable: AlbStable) -> None:
    canary = provision(clients, stable)
    AlbRouter(clients.elbv2, listener_rule=stable.listener_rule).set_weights({"payments-v1": 100})
    log = CallLog(clients)
    for _ in range(2):
        assert remove_alb_canary(clients, stable, canary, keep=True) == []
    assert log.take_writes() == ["UpdateService"]
    svc = service(clients, NAME)
    assert svc["status"] == "ACTIVE" and svc["desiredCount"] == 0
    assert group(clients, NAME) is not None


def test_remove_never_touches_a_group_that_is_not_the_canarys(
    clients: AwsClients, stable: AlbStable
) -> None:
    canary = provision(clients, stable)
    AlbRouter(clients.elbv2, listener_rule=stable.listener_rule).set_weights({"payments-v1": 100})
    clients.elbv2.remove_tags(ResourceArns=[canary.target_group_arn], TagKeys=[TAG_KEY])
    problems = remove_alb_canary(clients, stable, canary, keep=False)
    assert any("not tagged for canary" in p for p in problems)
    assert group(clients, NAME) is not None


def test_retire_stable_after_promotion(clients: AwsClients, stable: AlbStable) -> None:
    canary = provision(clients, stable)
    router = AlbRouter(clients.elbv2, listener_rule=stable.listener_rule)
    router.set_weights({"payments-v1": 0, NAME: 100})
    with pytest.raises(AwsStepError, match="still lists the old target group payments-v1"):
        retire_alb_stable(clients, stable)
    router.set_weights({NAME: 100})
    log = CallLog(clients)
    assert retire_alb_stable(clients, stable) == []
    assert sorted(log.take_writes()) == ["DeleteService", "DeleteTargetGroup", "UpdateService"]
    assert retire_alb_stable(clients, stable) == []
    assert log.take_writes() == []
    assert group(clients, "payments-v1") is None
    assert service(clients, "payments").get("status") != "ACTIVE"
    old_td = clients.ecs.describe_task_definition(taskDefinition=stable.task_definition_arn)
    assert old_td["taskDefinition"]["status"] == "ACTIVE"
    # the promoted canary is now what the rule discovers as stable
    again = discover_alb_stable(
        clients, cluster="prod", listener_rule=stable.listener_rule, listener=None
    )
    assert again.target_group_arn == canary.target_group_arn
    assert again.ecs_service_name == NAME and again.image == NEW_IMAGE


def test_clone_drops_blue_green_settings_of_the_load_balancer_and_deployment() -> None:
    stable = {
        "serviceName": "payments",
        "launchType": "FARGATE",
        "deploymentConfiguration": {
            "maximumPercent": 200,
            "strategy": "BLUE_GREEN",
            "bakeTimeInMinutes": 5,
            "lifecycleHooks": [{"hookTargetArn": "arn:aws:lambda:x", "lifecycleStages": []}],
        },
        "loadBalancers": [
            {
                "targetGroupArn": "arn:tg/stable",
                "containerName": "app",
                "containerPort": 8080,
                # ECS would shift the stable's production rule to its alternate group by itself.
                "advancedConfiguration": {
                    "alternateTargetGroupArn": "arn:tg/alternate",
                    "productionListenerRule": "arn:rule/prod",
                    "roleArn": "arn:role",
                },
            }
        ],
        "tags": [],
    }
    request = clone_alb_service_request(
        stable,
        cluster="prod",
        name="payments-4f2a9c1e",
        task_definition_arn="arn:td",
        desired_count=2,
        stable_target_group_arn="arn:tg/stable",
        canary_target_group_arn="arn:tg/canary",
        deployment_id="4f2a9c1e",
    )
    assert request["loadBalancers"] == [
        {"targetGroupArn": "arn:tg/canary", "containerName": "app", "containerPort": 8080}
    ]
    assert request["deploymentConfiguration"] == {"maximumPercent": 200}
