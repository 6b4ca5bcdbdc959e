"""Discovery of the stable version behind an ALB rule, on moto: every link and every refusal."""

from __future__ import annotations

import pytest

from sandbox.seed_alb import seed_alb_service
from tests.alb_fixtures import (  # noqa: F401 - fixtures
    CallLog,
    add_target_group,
    clients_fixture,
    seeded_fixture,
)
from workers.aws.alb.discovery import discover_alb_stable
from workers.aws.alb.router import AlbRouter
from workers.aws.clients import AwsClients
from workers.aws.errors import AwsStepError


def discover(clients: AwsClients, seeded: dict[str, str], **kw: str):  # type: ignore[no-untyped-def]
    args = {"cluster": "prod", "listener_rule": seeded["listener_rule"], "listener": None} | kw
    return discover_alb_stable(clients, **args)  # type: ignore[arg-type]


def test_discovers_every_link_and_writes_nothing(
    clients: AwsClients, seeded: dict[str, str]
) -> None:
    seed_alb_service(clients, key="search")  # a neighbour on the same load balancer
    log = CallLog(clients)
    stable = discover(clients, seeded)
    assert log.take_writes() == []
    assert stable.target_group_name == "payments-v1"
    assert stable.target_group_arn == seeded["target_group_arn"]
    assert stable.load_balancer_arn == seeded["load_balancer_arn"]
    assert stable.ecs_service_name == "payments" and stable.family == "payments"
    assert stable.task_definition_arn == seeded["task_definition_arn"]
    # the load-balanced container, not the log router listed first
    assert stable.container_name == "app" and stable.container_port == 8080
    assert stable.image.endswith("payments:v1")
    assert stable.desired_count == 2 and stable.listener == ""


def test_a_listener_default_action_is_discovered_too(
    clients: AwsClients, seeded: dict[str, str]
) -> None:
    clients.elbv2.modify_listener(
        ListenerArn=seeded["listener_arn"],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": seeded["target_group_arn"]}],
    )
    stable = discover(clients, seeded, listener_rule=None, listener=seeded["listener_arn"])
    assert stable.target_group_name == "payments-v1" and stable.listener_rule == ""


def test_a_rule_that_already_splits_traffic_is_refused(
    clients: AwsClients, seeded: dict[str, str]
) -> None:
    add_target_group(clients, "payments-old")
    AlbRouter(clients.elbv2, listener_rule=seeded["listener_rule"]).set_weights(
        {"payments-v1": 90, "payments-old": 10}
    )
    with pytest.raises(AwsStepError, match="already splits traffic between payments-v1"):
        discover(clients, seeded)


def test_a_zero_weight_group_is_not_a_split(clients: AwsClients, seeded: dict[str, str]) -> None:
    add_target_group(clients, "payments-old")
    AlbRouter(clients.elbv2, listener_rule=seeded["listener_rule"]).set_weights(
        {"payments-v1": 100, "payments-old": 0}
    )
    assert discover(clients, seeded).target_group_name == "payments-v1"


def test_no_forward_action(clients: AwsClients, seeded: dict[str, str]) -> None:
    clients.elbv2.modify_rule(
        RuleArn=seeded["listener_rule"],
        Actions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain"},
            }
        ],
    )
    with pytest.raises(AwsStepError, match="no forward actions"):
        discover(clients, seeded)


def test_no_ecs_service_behind_the_target_group(
    clients: AwsClients, seeded: dict[str, str]
) -> None:
    clients.ecs.delete_service(cluster="prod", service="payments", force=True)
    with pytest.raises(AwsStepError, match="No ECS service in cluster prod is registered to"):
        discover(clients, seeded)


def test_two_ecs_services_on_one_target_group_is_ambiguous(
    clients: AwsClients, seeded: dict[str, str]
) -> None:
    svc = clients.ecs.describe_services(cluster="prod", services=["payments"])["services"][0]
    clients.ecs.create_service(
        cluster="prod",
        serviceName="payments-copy",
        taskDefinition=svc["taskDefinition"],
        desiredCount=1,
        loadBalancers=svc["loadBalancers"],
    )
    with pytest.raises(AwsStepError, match="payments, payments-copy"):
        discover(clients, seeded)


def test_missing_rule_and_cluster(clients: AwsClients, seeded: dict[str, str]) -> None:
    with pytest.raises(AwsStepError, match="does not exist"):
        discover(clients, seeded, listener_rule=seeded["listener_rule"][:-4] + "beef")
    with pytest.raises(AwsStepError, match="ECS cluster nope does not exist"):
        discover(clients, seeded, cluster="nope")
