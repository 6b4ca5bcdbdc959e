"""Canary lifecycle behind an ALB: clone the stable's target group, task definition and ECS service,
then remove the canary or retire the old version. Every step looks before it acts.

The ECS steps shared with the App Mesh backend live in workers.aws.ecs.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from botocore.exceptions import ClientError

from workers.aws.alb.discovery import describe_target_group, services_using
from workers.aws.alb.router import AlbRouter
from workers.aws.clients import AwsClients
from workers.aws.cloning import ensure_canary_task_definition
from workers.aws.ecs import (
    TAG_KEY,
    canary_tags,
    check_name,
    clone_service_base,
    deregister_canary_revision,
    ensure_ecs_service,
    find_canary_service,
    list_ecs_services,
    owned_by,
    scale_down_and_delete,
    scale_down_canary_service,
    settle_task_definition,
    without_advanced_configuration,
)
from workers.aws.errors import AwsStepError, describe_failure, error_code, is_not_found
from workers.domain.versions import AlbCanary, AlbStable

logger = logging.getLogger(__name__)

#: ELBv2 refuses target-group names longer than this.
TARGET_GROUP_NAME_MAX = 32
#: Service fields that only matter behind a load balancer, cloned besides the common ones.
_SERVICE_EXTRA_FIELDS = ("healthCheckGracePeriodSeconds",)


# ---------------------------------------------------------------------------------------------
# Pure cloning logic


def canary_target_group_name(name: str, deployment_id: str) -> str:
    """`<key>-<id>` as a valid target-group name: at most 32 characters of letters, digits and
    hyphens, the key part shortened (never the id) so that the name still says whose it is."""
    check_name(name, deployment_id)
    key = re.sub(r"[^A-Za-z0-9-]", "-", name[: -len(deployment_id) - 1])
    room = TARGET_GROUP_NAME_MAX - len(deployment_id) - 1
    key = key[:room].strip("-") or "canary"
    return f"{key}-{deployment_id}"


def clone_target_group_request(
    stable: dict[str, Any],
    *,
    accepted_fields: frozenset[str],
    name: str,
    user_tags: list[dict[str, str]],
    deployment_id: str,
) -> dict[str, Any]:
    """CreateTargetGroup arguments: the stable group's protocol, port, VPC, target type and
    health check, under a new name and tagged with the deployment id."""
    request: dict[str, Any] = {
        field: copy.deepcopy(value)
        for field, value in stable.items()
        if field in accepted_fields and field not in ("Name", "Tags") and value is not None
    }
    request["Name"] = name
    tags = [t for t in user_tags if not t["Key"].startswith("aws:") and t["Key"] != TAG_KEY]
    request["Tags"] = [*tags, {"Key": TAG_KEY, "Value": deployment_id}]
    return request


def attributes_to_copy(
    stable: list[dict[str, str]], canary: list[dict[str, str]]
) -> list[dict[str, str]]:
    """The stable group's attributes whose value the canary's group does not have yet."""
    have = {a["Key"]: a.get("Value") for a in canary}
    return [
        {"Key": a["Key"], "Value": a.get("Value", "")}
        for a in stable
        if have.get(a["Key"]) != a.get("Value")
    ]


def clone_alb_service_request(
    stable: dict[str, Any],
    *,
    cluster: str,
    name: str,
    task_definition_arn: str,
    desired_count: int,
    stable_target_group_arn: str,
    canary_target_group_arn: str,
    deployment_id: str,
) -> dict[str, Any]:
    """CreateService arguments for the canary's ECS service, cloned from the stable's and
    registered to the canary's target group (same container name and port)."""
    request = clone_service_base(
        stable,
        cluster=cluster,
        name=name,
        task_definition_arn=task_definition_arn,
        desired_count=desired_count,
        extra_fields=_SERVICE_EXTRA_FIELDS,
    )
    # Only the weighted group is cloned, and no service registry: any other entry point would
    # send the canary traffic that the rule's weights do not govern.
    request["loadBalancers"] = [
        {**without_advanced_configuration(lb), "targetGroupArn": canary_target_group_arn}
        for lb in stable.get("loadBalancers", [])
        if lb.get("targetGroupArn") == stable_target_group_arn
    ]
    if not request["loadBalancers"]:
        raise AwsStepError(
            f"ECS service {stable.get('serviceName')} no longer uses target group "
            f"{stable_target_group_arn}."
        )
    request["tags"] = canary_tags(stable.get("tags", []), deployment_id)
    return request


def _ecs_style(tags: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"key": t["Key"], "value": t.get("Value", "")} for t in tags]


# ---------------------------------------------------------------------------------------------
# AWS lookups


def _router(clients: AwsClients, stable: AlbStable) -> AlbRouter:
    return AlbRouter(
        clients.elbv2, listener_rule=stable.listener_rule or None, listener=stable.listener or None
    )


def _target_group_by_name(clients: AwsClients, name: str) -> dict[str, Any] | None:
    try:
        groups = clients.elbv2.describe_target_groups(Names=[name])["TargetGroups"]
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise AwsStepError(
            f"Could not look up target group {name}: {describe_failure(exc)}."
        ) from exc
    return dict(groups[0]) if groups else None


def _target_group_tags(clients: AwsClients, arn: str) -> list[dict[str, str]]:
    try:
        found = clients.elbv2.describe_tags(ResourceArns=[arn])["TagDescriptions"]
    except ClientError as exc:
        raise AwsStepError(
            f"Could not read the tags of target group {arn}: {describe_failure(exc)}."
        ) from exc
    return list(found[0].get("Tags", [])) if found else []


def _attributes(clients: AwsClients, arn: str) -> list[dict[str, str]]:
    try:
        response = clients.elbv2.describe_target_group_attributes(TargetGroupArn=arn)
    except ClientError as exc:
        raise AwsStepError(
            f"Could not read the attributes of target group {arn}: {describe_failure(exc)}."
        ) from exc
    return list(response.get("Attributes", []))


# ---------------------------------------------------------------------------------------------
# Provisioning


def provision_alb_canary(
    clients: AwsClients, stable: AlbStable, *, name: str, image: str, deployment_id: str
) -> AlbCanary:
    """Create (or find, when re-run) the canary's task definition revision, target group (listed
    in the rule at weight 0) and ECS service, cloned from the stable version.

    A run overlapping another of the same step (the watchdog's re-run of a slow one) may find
    its create refused because the other has just made the resource: it adopts it."""
    check_name(name, deployment_id)
    task_definition_arn = ensure_canary_task_definition(
        clients,
        stable,
        name=name,
        image=image,
        deployment_id=deployment_id,
        app_container=stable.container_name,
    )
    group_name = canary_target_group_name(name, deployment_id)
    group_arn = _ensure_target_group(clients, stable, name=group_name, deployment_id=deployment_id)
    # ECS only registers tasks in a target group that a load balancer uses.
    _router(clients, stable).include(group_arn)
    runs = ensure_ecs_service(
        clients,
        cluster=stable.cluster,
        name=name,
        stable_service_name=stable.ecs_service_name,
        clone=lambda source: clone_alb_service_request(
            source,
            cluster=stable.cluster,
            name=name,
            task_definition_arn=task_definition_arn,
            desired_count=stable.desired_count,
            stable_target_group_arn=stable.target_group_arn,
            canary_target_group_arn=group_arn,
            deployment_id=deployment_id,
        ),
    )
    task_definition_arn = settle_task_definition(
        clients, name=name, ensured=task_definition_arn, runs=runs
    )
    return AlbCanary(
        name=name,
        target_group_name=group_name,
        target_group_arn=group_arn,
        ecs_service_name=name,
        task_definition_arn=task_definition_arn,
    )


def _ensure_target_group(
    clients: AwsClients, stable: AlbStable, *, name: str, deployment_id: str
) -> str:
    existing = _target_group_by_name(clients, name)
    if existing is not None:
        arn = _own_target_group(clients, existing, name)
        logger.info("canary %s: reusing target group", name)
    else:
        source = describe_target_group(clients, stable.target_group_arn)
        if source is None:
            raise AwsStepError(
                f"The stable's target group {stable.target_group_name} no longer exists."
            )
        shape = clients.elbv2.meta.service_model.operation_model("CreateTargetGroup").input_shape
        request = clone_target_group_request(
            source,
            accepted_fields=frozenset(shape.members),
            name=name,
            user_tags=_target_group_tags(clients, stable.target_group_arn),
            deployment_id=deployment_id,
        )
        try:
            created = clients.elbv2.create_target_group(**request)["TargetGroups"][0]
        except ClientError as exc:
            # DuplicateTargetGroupName: another run of this step created it since this one
            # looked (ELBv2 answers an identical request with the group, a different one not).
            meanwhile = _target_group_by_name(clients, name)
            if meanwhile is None:
                raise AwsStepError(
                    f"Could not create target group {name}: {describe_failure(exc)}."
                ) from exc
            arn = _own_target_group(clients, meanwhile, name)
            logger.info("canary %s: target group created meanwhile", name)
        else:
            arn = str(created["TargetGroupArn"])
            logger.info("canary %s: created target group %s", name, arn)
    # Checked on every run: a crash between the create and this write leaves defaults behind.
    changes = attributes_to_copy(
        _attributes(clients, stable.target_group_arn), _attributes(clients, arn)
    )
    if changes:
        try:
            clients.elbv2.modify_target_group_attributes(TargetGroupArn=arn, Attributes=changes)
        except ClientError as exc:
            raise AwsStepError(
                f"Could not copy the attributes of target group {stable.target_group_name} to "
                f"{name}: {describe_failure(exc)}."
            ) from exc
    return arn


def _own_target_group(clients: AwsClients, group: dict[str, Any], name: str) -> str:
    """The ARN of `group`, found by the canary's target group name, if it is tagged as this
    deployment's; else the bot refuses to touch it."""
    arn = str(group["TargetGroupArn"])
    if not owned_by(_ecs_style(_target_group_tags(clients, arn)), name):
        raise AwsStepError(
            f"A target group named {name} already exists but was not created for this "
            "deployment; the bot will not touch it."
        )
    return arn


# ---------------------------------------------------------------------------------------------
# Finding and removing


def find_alb_canary(clients: AwsClients, stable: AlbStable, *, name: str) -> AlbCanary | None:
    """What already exists of the canary called name (for resuming or cleaning up), or None."""
    deployment_id = name.rsplit("-", 1)[-1]
    service, task_definition_arn = find_canary_service(
        clients,
        cluster=stable.cluster,
        family=stable.family,
        stable_task_definition_arn=stable.task_definition_arn,
        name=name,
        deployment_id=deployment_id,
    )
    group_name = canary_target_group_name(name, deployment_id)
    group = _target_group_by_name(clients, group_name)
    if group is not None and not owned_by(
        _ecs_style(_target_group_tags(clients, group["TargetGroupArn"])), group_name
    ):
        group = None
    if service is None and not task_definition_arn and group is None:
        return None
    return AlbCanary(
        name=name,
        target_group_name=group_name if group else "",
        target_group_arn=str(group["TargetGroupArn"]) if group else "",
        ecs_service_name=name if service is not None else "",
        task_definition_arn=task_definition_arn,
    )


def remove_alb_canary(
    clients: AwsClients, stable: AlbStable, canary: AlbCanary, *, keep: bool
) -> list[str]:
    """Tear the canary down (keep=False) or scale its ECS service to 0 for diagnosis (keep=True).

    Missing resources count as removed; returns the things a person must still clean up.
    """
    todo: list[str] = []
    cluster = stable.cluster
    if canary.ecs_service_name:
        todo += scale_down_canary_service(
            clients,
            cluster,
            canary_name=canary.name,
            service_name=canary.ecs_service_name,
            delete=not keep,
        )
    if keep:
        return todo
    if canary.target_group_arn:
        todo += _delete_target_group(
            clients, stable, canary.target_group_arn, owner=canary.target_group_name
        )
    if canary.task_definition_arn:
        todo += deregister_canary_revision(
            clients, canary.task_definition_arn, canary_name=canary.name
        )
    return todo


def _delete_target_group(
    clients: AwsClients, stable: AlbStable, arn: str, *, owner: str | None
) -> list[str]:
    """Delete a target group once the rule no longer forwards to it and no ECS service uses it."""
    try:
        group = describe_target_group(clients, arn)
        if group is None:
            return []
        name = group["TargetGroupName"]
        if owner is not None and not owned_by(_ecs_style(_target_group_tags(clients, arn)), owner):
            return [f"Target group {name} is not tagged for canary {owner}; it was left alone."]
        router = _router(clients, stable)
        if arn in router.read_target_groups():
            return [
                f"{router.label.capitalize()} still forwards to target group {name}; set its "
                "weights first, then delete the target group."
            ]
        users = services_using(
            list_ecs_services(clients, stable.cluster), arn, statuses=("ACTIVE",)
        )
        if users:
            names = ", ".join(s["serviceName"] for s in users)
            return [f"Target group {name} is still used by ECS service {names}; it was kept."]
        clients.elbv2.delete_target_group(TargetGroupArn=arn)
    except (ClientError, AwsStepError) as exc:
        if is_not_found(exc):
            return []
        if error_code(exc) == "ResourceInUse":
            return [f"Target group {arn} is still used by a listener or rule; delete it by hand."]
        detail = describe_failure(exc) if isinstance(exc, ClientError) else str(exc)
        return [f"Could not delete target group {arn} ({detail}); delete it by hand."]
    logger.info("target group %s: deleted", name)
    return []


def retire_alb_stable(clients: AwsClients, stable: AlbStable) -> list[str]:
    """After a promotion: remove the old version's ECS service and target group (its task
    definition revision stays registered). Returns what a person must finish.

    Refuses while the rule still lists the old target group.
    """
    router = _router(clients, stable)
    if stable.target_group_arn in router.read_target_groups():
        raise AwsStepError(
            f"{router.label.capitalize()} still lists the old target group "
            f"{stable.target_group_name}; move all traffic to the new version first."
        )
    todo = scale_down_and_delete(
        clients,
        stable.cluster,
        stable.ecs_service_name,
        delete=True,
        expected_arn=stable.ecs_service_arn,
    )
    todo += _delete_target_group(clients, stable, stable.target_group_arn, owner=None)
    return todo
