"""Canary lifecycle behind App Mesh: clone the stable's task definition, Cloud Map service,
virtual node and ECS service, then remove the canary or retire the old version.

Every step looks before it acts, so a job re-run after a crash finishes what was started. The
ECS steps shared with the ALB backend live in workers.aws.ecs.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from workers.aws.appmesh.discovery import find_service_in_namespace
from workers.aws.appmesh.router import AppMeshRouter, route_targets, weights_of
from workers.aws.clients import AwsClients
from workers.aws.cloning import (
    clone_cloudmap_request,
    clone_service_request,
    clone_virtual_node_spec,
    ensure_canary_task_definition,
)
from workers.aws.ecs import (
    TAG_KEY,
    check_name,
    deregister_canary_revision,
    ensure_ecs_service,
    find_canary_service,
    scale_down_and_delete,
    scale_down_canary_service,
    settle_task_definition,
)
from workers.aws.errors import AwsStepError, describe_failure, error_code, is_not_found
from workers.aws.removal import Removal
from workers.domain.versions import AppMeshCanary, AppMeshStable

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# AWS lookups


def _describe_node(clients: AwsClients, mesh: str, node: str) -> dict[str, Any] | None:
    try:
        response = clients.appmesh.describe_virtual_node(meshName=mesh, virtualNodeName=node)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise AwsStepError(
            f"Could not read virtual node {node} in mesh {mesh}: {describe_failure(exc)}."
        ) from exc
    node_info = dict(response["virtualNode"])
    if node_info.get("status", {}).get("status") == "DELETED":
        return None
    return node_info


def _find_cloudmap_service(
    clients: AwsClients, stable: AppMeshStable, name: str
) -> dict[str, Any] | None:
    """The Cloud Map service called name in the stable's namespace, or None."""
    try:
        return find_service_in_namespace(clients, stable.cloudmap_namespace_id, name)
    except ClientError as exc:
        raise AwsStepError(
            f"Could not look for Cloud Map service {name}: {describe_failure(exc)}."
        ) from exc


def _get_cloudmap_service(clients: AwsClients, service_id: str) -> dict[str, Any] | None:
    try:
        return dict(clients.servicediscovery.get_service(Id=service_id)["Service"])
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise AwsStepError(
            f"Could not read Cloud Map service {service_id}: {describe_failure(exc)}."
        ) from exc


# ---------------------------------------------------------------------------------------------
# Provisioning


def provision_canary(
    clients: AwsClients, stable: AppMeshStable, *, name: str, image: str, deployment_id: str
) -> AppMeshCanary:
    """Create (or find, when re-run) the canary's task definition revision, Cloud Map service,
    virtual node and ECS service, cloned from the stable version.

    A run overlapping another of the same step (the watchdog's re-run of a slow one) may find
    its create refused because the other has just made the resource: it adopts it."""
    check_name(name, deployment_id)
    task_definition_arn = ensure_canary_task_definition(
        clients,
        stable,
        name=name,
        image=image,
        deployment_id=deployment_id,
        virtual_node=name,
    )
    cloudmap = _ensure_cloudmap_service(clients, stable, name=name, deployment_id=deployment_id)
    # The node must exist before the ECS service starts Envoys that ask for its config.
    _ensure_virtual_node(clients, stable, name=name, deployment_id=deployment_id)
    runs = ensure_ecs_service(
        clients,
        cluster=stable.cluster,
        name=name,
        stable_service_name=stable.ecs_service_name,
        clone=lambda source: clone_service_request(
            source,
            cluster=stable.cluster,
            name=name,
            task_definition_arn=task_definition_arn,
            desired_count=stable.desired_count,
            stable_registry_arn=stable.cloudmap_service_arn,
            canary_registry_arn=cloudmap["Arn"],
            deployment_id=deployment_id,
        ),
    )
    task_definition_arn = settle_task_definition(
        clients, name=name, ensured=task_definition_arn, runs=runs
    )
    return AppMeshCanary(
        name=name,
        virtual_node=name,
        cloudmap_service_id=cloudmap["Id"],
        cloudmap_service_arn=cloudmap["Arn"],
        ecs_service_name=name,
        task_definition_arn=task_definition_arn,
    )


def _ensure_cloudmap_service(
    clients: AwsClients, stable: AppMeshStable, *, name: str, deployment_id: str
) -> dict[str, Any]:
    existing = _find_cloudmap_service(clients, stable, name)
    if existing is not None:
        logger.info("canary %s: reusing Cloud Map service %s", name, existing["Id"])
        return existing
    source = _get_cloudmap_service(clients, stable.cloudmap_service_id)
    if source is None:
        raise AwsStepError(
            f"The stable's Cloud Map service {stable.cloudmap_service_name} "
            f"({stable.cloudmap_service_id}) no longer exists."
        )
    request = clone_cloudmap_request(source, name=name, deployment_id=deployment_id)
    try:
        created = clients.servicediscovery.create_service(**request)["Service"]
    except ClientError as exc:
        # ServiceAlreadyExists: another run of this step created it since this one looked.
        meanwhile = _find_cloudmap_service(clients, stable, name)
        if meanwhile is None:
            raise AwsStepError(
                f"Could not create Cloud Map service {name}: {describe_failure(exc)}."
            ) from exc
        logger.info("canary %s: Cloud Map service %s created meanwhile", name, meanwhile["Id"])
        return meanwhile
    logger.info("canary %s: created Cloud Map service %s", name, created["Id"])
    return dict(created)


def _ensure_virtual_node(
    clients: AwsClients, stable: AppMeshStable, *, name: str, deployment_id: str
) -> None:
    if _describe_node(clients, stable.mesh, name) is not None:
        logger.info("canary %s: reusing virtual node", name)
        return
    source = _describe_node(clients, stable.mesh, stable.virtual_node)
    if source is None:
        raise AwsStepError(
            f"The stable's virtual node {stable.virtual_node} no longer exists in mesh "
            f"{stable.mesh}."
        )
    spec = clone_virtual_node_spec(
        source["spec"], name, stable_ecs_service=stable.ecs_service_name, canary_ecs_service=name
    )
    try:
        clients.appmesh.create_virtual_node(
            meshName=stable.mesh,
            virtualNodeName=name,
            spec=spec,
            tags=[{"key": TAG_KEY, "value": deployment_id}],
        )
    except ClientError as exc:
        # ConflictException (moto: VirtualNodeNameAlreadyTaken): another run of this step
        # created it since this one looked.
        if _describe_node(clients, stable.mesh, name) is None:
            raise AwsStepError(
                f"Could not create virtual node {name} in mesh {stable.mesh}: "
                f"{describe_failure(exc)}."
            ) from exc
        logger.info("canary %s: virtual node created meanwhile", name)
        return
    logger.info("canary %s: created virtual node", name)


# ---------------------------------------------------------------------------------------------
# Finding and removing


def find_canary(clients: AwsClients, stable: AppMeshStable, *, name: str) -> AppMeshCanary | None:
    """What already exists of the canary called name (for resuming or cleaning up), or None."""
    service, task_definition_arn = find_canary_service(
        clients,
        cluster=stable.cluster,
        family=stable.family,
        stable_task_definition_arn=stable.task_definition_arn,
        name=name,
        deployment_id=name.rsplit("-", 1)[-1],
    )
    node = _describe_node(clients, stable.mesh, name)
    cloudmap = _find_cloudmap_service(clients, stable, name)
    if service is None and not task_definition_arn and node is None and cloudmap is None:
        return None
    return AppMeshCanary(
        name=name,
        virtual_node=name if node is not None else "",
        cloudmap_service_id=cloudmap["Id"] if cloudmap else "",
        cloudmap_service_arn=cloudmap["Arn"] if cloudmap else "",
        ecs_service_name=name if service is not None else "",
        task_definition_arn=task_definition_arn,
    )


def _delete_node(clients: AwsClients, mesh: str, node: str) -> list[str]:
    try:
        if _describe_node(clients, mesh, node) is None:
            return []
        clients.appmesh.delete_virtual_node(meshName=mesh, virtualNodeName=node)
    except (ClientError, AwsStepError) as exc:
        if is_not_found(exc):
            return []
        detail = describe_failure(exc) if isinstance(exc, ClientError) else str(exc)
        return [f"Could not delete virtual node {node} in mesh {mesh} ({detail}); delete it."]
    logger.info("virtual node %s: deleted", node)
    return []


def _delete_cloudmap_service(clients: AwsClients, service_id: str, expected_name: str) -> Removal:
    """Delete a Cloud Map service once its instances are gone.

    Cloud Map refuses `DeleteService` with ResourceInUse while instances are registered
    (https://docs.aws.amazon.com/cloud-map/latest/api/API_DeleteService.html), and ECS
    deregisters a task's instance only once the task has stopped
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-discovery.html). So the
    refusal means "not yet": the caller looks again later. The instances are not deregistered
    here: ECS owns them, a task still stopping may still answer requests, and DeregisterInstance
    would need Route 53 rights the worker does not otherwise have.
    """
    label = f"Cloud Map service {expected_name} ({service_id})"
    try:
        service = _get_cloudmap_service(clients, service_id)
        if service is None:
            return Removal()
        if service.get("Name") != expected_name:
            return Removal(
                problems=[
                    f"Cloud Map service {service_id} is named {service.get('Name')}, not "
                    f"{expected_name}; it was left alone."
                ]
            )
        clients.servicediscovery.delete_service(Id=service_id)
    except (ClientError, AwsStepError) as exc:
        if is_not_found(exc):
            return Removal()
        if error_code(exc) == "ResourceInUse":
            return Removal(draining=[_still_registered(clients, service_id, label)])
        detail = describe_failure(exc) if isinstance(exc, ClientError) else str(exc)
        return Removal(problems=[f"Could not delete {label} ({detail}); delete it by hand."])
    logger.info("%s: deleted", label)
    return Removal()


def _still_registered(clients: AwsClients, service_id: str, label: str) -> str:
    """What a person must do if the instances of a Cloud Map service never go."""
    try:
        pages = clients.servicediscovery.get_paginator("list_instances").paginate(
            ServiceId=service_id
        )
        ids = [i["Id"] for page in pages for i in page.get("Instances", [])]
    except ClientError:
        ids = []
    listed = f" ({', '.join(ids)})" if ids else ""
    count = f"{len(ids)} registered instance(s)" if ids else "registered instances"
    return (
        f"{label} still has {count}{listed}; ECS deregisters them as its tasks stop. If they "
        "stay, stop those ECS tasks (or deregister the instances), then delete the service."
    )


def remove_canary(
    clients: AwsClients, *, cluster: str, canary: AppMeshCanary, mesh: str, keep: bool
) -> Removal:
    """Tear the canary down (keep=False) or scale it to 0 for diagnosis (keep=True).

    Missing resources count as removed; returns what a person must still clean up and what AWS
    is still draining (run it again later for those).
    """
    todo: list[str] = []
    if canary.ecs_service_name:
        todo += scale_down_canary_service(
            clients,
            cluster,
            canary_name=canary.name,
            service_name=canary.ecs_service_name,
            delete=not keep,
        )
    if keep:
        return Removal(problems=todo)
    if canary.virtual_node:
        if canary.virtual_node != canary.name:
            todo.append(
                f"Virtual node {canary.virtual_node} is not named for canary {canary.name}; "
                "it was left alone."
            )
        else:
            todo += _delete_node(clients, mesh, canary.virtual_node)
    removal = Removal()
    if canary.cloudmap_service_id:
        removal = _delete_cloudmap_service(clients, canary.cloudmap_service_id, canary.name)
    if canary.task_definition_arn:
        todo += deregister_canary_revision(
            clients, canary.task_definition_arn, canary_name=canary.name
        )
    return Removal(problems=todo) + removal


def retire_stable(clients: AwsClients, stable: AppMeshStable) -> Removal:
    """After a promotion: remove the old version's ECS service, virtual node and Cloud Map
    service (its task definition revision stays registered). Returns what a person must finish
    and what AWS is still draining (run it again later for those).

    Refuses while the route still lists the old virtual node.
    """
    router = AppMeshRouter(clients.appmesh, stable.mesh, stable.virtual_router, stable.route)
    weights = weights_of(route_targets(router.describe()))
    if stable.virtual_node in weights:
        raise AwsStepError(
            f"Route {stable.route} still lists the old virtual node {stable.virtual_node} "
            f"({weights[stable.virtual_node]} %); move all traffic to the new version first."
        )
    todo = scale_down_and_delete(
        clients,
        stable.cluster,
        stable.ecs_service_name,
        delete=True,
        expected_arn=stable.ecs_service_arn,
    )
    todo += _delete_node(clients, stable.mesh, stable.virtual_node)
    return Removal(problems=todo) + _delete_cloudmap_service(
        clients, stable.cloudmap_service_id, stable.cloudmap_service_name
    )
