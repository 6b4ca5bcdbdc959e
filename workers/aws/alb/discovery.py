"""Discovery of a service's stable version behind an ALB: rule -> target group -> ECS service."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from workers.aws.alb.router import AlbRouter, load_balancer_arn_of, target_group_name
from workers.aws.clients import AwsClients
from workers.aws.ecs import describe_task_definition, list_ecs_services, only_stable_service
from workers.aws.errors import AwsStepError, describe_failure, is_not_found
from workers.domain.versions import AlbStable

logger = logging.getLogger(__name__)


def discover_alb_stable(
    clients: AwsClients, *, cluster: str, listener_rule: str | None, listener: str | None
) -> AlbStable:
    """Follow the links from the rule to the ECS service behind it; each missing or ambiguous
    link raises an AwsStepError naming it."""
    router = AlbRouter(clients.elbv2, listener_rule=listener_rule, listener=listener)
    arn = _stable_target_group(router.label, router.read_target_groups())
    group = describe_target_group(clients, arn)
    if group is None:
        raise AwsStepError(
            f"{router.label.capitalize()} forwards to target group {target_group_name(arn)}, "
            "which does not exist."
        )
    service = _ecs_service_behind(clients, cluster, arn)
    balancer = next(lb for lb in service["loadBalancers"] if lb.get("targetGroupArn") == arn)
    task_definition = describe_task_definition(clients, service["taskDefinition"])
    containers = task_definition.get("containerDefinitions", [])
    container = next(
        (c for c in containers if c.get("name") == balancer.get("containerName")), None
    )
    if container is None:
        raise AwsStepError(
            f"ECS service {service['serviceName']} sends target group {group['TargetGroupName']} "
            f"to container {balancer.get('containerName')!r}, which task definition "
            f"{task_definition['taskDefinitionArn']} does not have."
        )
    stable = AlbStable(
        cluster=cluster,
        listener_rule=listener_rule or "",
        listener=listener or "",
        load_balancer_arn=load_balancer_arn_of(listener_rule or listener or ""),
        target_group_arn=arn,
        target_group_name=str(group["TargetGroupName"]),
        ecs_service_name=service["serviceName"],
        ecs_service_arn=service["serviceArn"],
        task_definition_arn=task_definition["taskDefinitionArn"],
        family=task_definition["family"],
        image=container["image"],
        container_name=container["name"],
        container_port=int(balancer.get("containerPort", 0)),
        desired_count=int(service.get("desiredCount", 0)),
    )
    logger.info("stable version of %s: %s", router.label, stable)
    return stable


def _stable_target_group(label: str, targets: dict[str, int]) -> str:
    live = {arn: weight for arn, weight in targets.items() if weight > 0}
    if len(live) > 1:
        split = " and ".join(f"{target_group_name(a)} (weight {w})" for a, w in live.items())
        raise AwsStepError(
            f"{label.capitalize()} already splits traffic between {split}; finish or undo that "
            "first."
        )
    if not live:
        raise AwsStepError(f"{label.capitalize()} sends no traffic to any target group.")
    return next(iter(live))


def describe_target_group(clients: AwsClients, arn: str) -> dict[str, Any] | None:
    """DescribeTargetGroups for one ARN, or None when it does not exist."""
    try:
        groups = clients.elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise AwsStepError(
            f"Could not read target group {target_group_name(arn)}: {describe_failure(exc)}."
        ) from exc
    return dict(groups[0]) if groups else None


def services_using(
    services: list[dict[str, Any]], target_group_arn: str, *, statuses: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The ECS services (in one of `statuses`) whose loadBalancers use the target group."""
    return [
        s
        for s in services
        if s.get("status") in statuses
        and any(lb.get("targetGroupArn") == target_group_arn for lb in s.get("loadBalancers", []))
    ]


def _ecs_service_behind(clients: AwsClients, cluster: str, arn: str) -> dict[str, Any]:
    matches = services_using(list_ecs_services(clients, cluster), arn, statuses=("ACTIVE",))
    label = f"target group {target_group_name(arn)}"
    return only_stable_service(matches, cluster=cluster, label=label)
