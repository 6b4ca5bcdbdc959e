"""Seed moto (in-process or server) with an ECS service behind an ALB listener rule.

The VPC, the load balancer and its listener are shared by every service seeded; each service
gets its own target group and a rule (path pattern, stickiness) forwarding 100 to it.
Everything is looked up before it is created, so seeding twice is harmless.
"""

from __future__ import annotations

import logging
from typing import Any

from sandbox.seed_ecs import (
    APP_PORT,
    SANDBOX_TAG,
    active_task_definition,
    app_container,
    ec2_client,
    ensure_cluster,
    ensure_ecs_service,
    ensure_task_definition,
    sandbox_network,
)
from workers.aws.clients import AwsClients

logger = logging.getLogger(__name__)

LOAD_BALANCER = "canary-sandbox"
LISTENER_PORT = 80
#: The second subnet an ALB needs (two availability zones).
_SECOND_SUBNET = ("10.42.2.0/24", "b")


def seed_alb_service(
    clients: AwsClients,
    *,
    key: str,
    cluster: str = "prod",
    image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v1",
    desired_count: int = 2,
) -> dict[str, str]:
    """Create (or find) one service's ECS and ALB resources; return their names and ARNs."""
    ec2 = ec2_client(clients)
    vpc_id, subnet_id, group_id = sandbox_network(ec2)
    second_subnet = _second_subnet(ec2, vpc_id, subnet_id, clients.ecs.meta.region_name)
    elbv2 = clients.elbv2
    lb_arn = _ensure_load_balancer(elbv2, [subnet_id, second_subnet], group_id)
    listener_arn = _ensure_listener(elbv2, lb_arn)
    ensure_cluster(clients.ecs, cluster)

    path = f"/{key}/*"
    names = {
        "key": key,
        "cluster": cluster,
        "load_balancer_arn": lb_arn,
        "listener_arn": listener_arn,
        "path": path,
        "target_group": f"{key}-v1",
        "ecs_service": key,
        "family": key,
        "vpc": vpc_id,
        "subnet": subnet_id,
        "security_group": group_id,
    }
    rule = _find_rule(elbv2, listener_arn, path)
    if rule is not None:
        # Seeded before: the service may have moved on (a promoted canary is its stable now).
        logger.info("listener rule for %s already exists; %s is already seeded", path, key)
        names["listener_rule"] = rule["RuleArn"]
        active = active_task_definition(clients.ecs, cluster, key)
        if active:
            names["task_definition_arn"] = active
        return names

    tg_arn = _ensure_target_group(elbv2, f"{key}-v1", vpc_id)
    names["target_group_arn"] = tg_arn
    names["listener_rule"] = _create_rule(elbv2, listener_arn, path, tg_arn)
    task_definition_arn = _ensure_task_definition(clients.ecs, key, image)
    names["task_definition_arn"] = task_definition_arn
    _ensure_ecs_service(
        clients.ecs,
        cluster=cluster,
        name=key,
        task_definition_arn=task_definition_arn,
        desired_count=desired_count,
        target_group_arn=tg_arn,
        subnets=[subnet_id, second_subnet],
        group_id=group_id,
    )
    return names


def _second_subnet(ec2: Any, vpc_id: str, first: str, region: str) -> str:
    """A subnet of the sandbox VPC other than `first` (created in another zone if need be)."""
    cidr, zone = _SECOND_SUBNET
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    # The shared helper returns whichever subnet EC2 lists first, which may be this one.
    others = [s for s in subnets if s["SubnetId"] != first]
    if others:
        return str(others[0]["SubnetId"])
    created = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=f"{region}{zone}")
    return str(created["Subnet"]["SubnetId"])


def _ensure_load_balancer(elbv2: Any, subnets: list[str], group_id: str) -> str:
    try:
        found = elbv2.describe_load_balancers(Names=[LOAD_BALANCER])["LoadBalancers"]
    except elbv2.exceptions.LoadBalancerNotFoundException:
        found = []
    if found:
        return str(found[0]["LoadBalancerArn"])
    created = elbv2.create_load_balancer(
        Name=LOAD_BALANCER,
        Subnets=subnets,
        SecurityGroups=[group_id],
        Scheme="internal",
        Type="application",
        Tags=[{"Key": "Name", "Value": SANDBOX_TAG}],
    )
    return str(created["LoadBalancers"][0]["LoadBalancerArn"])


def _ensure_listener(elbv2: Any, lb_arn: str) -> str:
    for listener in elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]:
        if listener["Port"] == LISTENER_PORT:
            return str(listener["ListenerArn"])
    created = elbv2.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=LISTENER_PORT,
        DefaultActions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "404",
                    "ContentType": "text/plain",
                    "MessageBody": "no such service",
                },
            }
        ],
    )
    return str(created["Listeners"][0]["ListenerArn"])


def _rules(elbv2: Any, listener_arn: str) -> list[dict[str, Any]]:
    return list(elbv2.describe_rules(ListenerArn=listener_arn)["Rules"])


def _find_rule(elbv2: Any, listener_arn: str, path: str) -> dict[str, Any] | None:
    for rule in _rules(elbv2, listener_arn):
        for condition in rule.get("Conditions", []):
            values = (condition.get("PathPatternConfig") or {}).get("Values") or condition.get(
                "Values", []
            )
            if condition.get("Field") == "path-pattern" and path in values:
                return rule
    return None


def _ensure_target_group(elbv2: Any, name: str, vpc_id: str) -> str:
    try:
        found = elbv2.describe_target_groups(Names=[name])["TargetGroups"]
    except elbv2.exceptions.TargetGroupNotFoundException:
        found = []
    if found:
        return str(found[0]["TargetGroupArn"])
    created = elbv2.create_target_group(
        Name=name,
        Protocol="HTTP",
        Port=APP_PORT,
        VpcId=vpc_id,
        TargetType="ip",
        HealthCheckProtocol="HTTP",
        HealthCheckPath="/health",
        HealthCheckIntervalSeconds=10,
        HealthCheckTimeoutSeconds=5,
        HealthyThresholdCount=3,
        UnhealthyThresholdCount=2,
        Matcher={"HttpCode": "200-299"},
        Tags=[{"Key": "app", "Value": name}],
    )
    arn = str(created["TargetGroups"][0]["TargetGroupArn"])
    elbv2.modify_target_group_attributes(
        TargetGroupArn=arn,
        Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "30"},
            {"Key": "stickiness.enabled", "Value": "true"},
            {"Key": "stickiness.type", "Value": "lb_cookie"},
            {"Key": "slow_start.duration_seconds", "Value": "30"},
        ],
    )
    return arn


def _create_rule(elbv2: Any, listener_arn: str, path: str, tg_arn: str) -> str:
    taken = [int(r["Priority"]) for r in _rules(elbv2, listener_arn) if r["Priority"].isdigit()]
    created = elbv2.create_rule(
        ListenerArn=listener_arn,
        Priority=max(taken, default=0) + 10,
        Conditions=[
            {"Field": "path-pattern", "PathPatternConfig": {"Values": [path]}},
            {
                "Field": "http-request-method",
                "HttpRequestMethodConfig": {"Values": ["GET", "POST"]},
            },
        ],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [{"TargetGroupArn": tg_arn, "Weight": 100}],
                    "TargetGroupStickinessConfig": {"Enabled": True, "DurationSeconds": 300},
                },
            }
        ],
    )
    return str(created["Rules"][0]["RuleArn"])


def _ensure_task_definition(ecs: Any, family: str, image: str) -> str:
    """The app beside a FireLens log router (so the app is not the first container)."""
    return ensure_task_definition(
        ecs,
        family,
        cpu="256",
        memory="512",
        containers=[
            {
                "name": "log-router",
                "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
                "essential": True,
                "firelensConfiguration": {"type": "fluentbit"},
            },
            app_container(image),
        ],
    )


def _ensure_ecs_service(
    ecs: Any,
    *,
    cluster: str,
    name: str,
    task_definition_arn: str,
    desired_count: int,
    target_group_arn: str,
    subnets: list[str],
    group_id: str,
) -> None:
    """The service registered to the target group target_group_arn."""
    ensure_ecs_service(
        ecs,
        cluster=cluster,
        name=name,
        task_definition_arn=task_definition_arn,
        desired_count=desired_count,
        subnets=subnets,
        group_id=group_id,
        loadBalancers=[
            {"targetGroupArn": target_group_arn, "containerName": "app", "containerPort": APP_PORT}
        ],
        healthCheckGracePeriodSeconds=30,
    )
