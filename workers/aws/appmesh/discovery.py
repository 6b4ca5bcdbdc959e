"""Discovery of a service's stable version: route -> virtual node -> Cloud Map -> ECS service."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from workers.aws.appmesh.router import AppMeshRouter, route_targets, weights_of
from workers.aws.clients import AwsClients
from workers.aws.ecs import (
    describe_task_definition,
    first_app_container,
    list_ecs_services,
    only_stable_service,
)
from workers.aws.errors import AwsStepError, describe_failure, is_not_found
from workers.domain.versions import AppMeshStable

logger = logging.getLogger(__name__)


def discover_stable(
    clients: AwsClients, *, cluster: str, mesh: str, virtual_router: str, route: str
) -> AppMeshStable:
    """Follow the links from the route to the ECS service serving it; each missing or ambiguous
    link raises an AwsStepError naming it."""
    router = AppMeshRouter(clients.appmesh, mesh, virtual_router, route)
    node = _stable_node(route, route_targets(router.describe()))
    cloud_map = _cloud_map_of_node(clients, mesh, node)
    cloudmap_service = find_cloudmap_service(
        clients, namespace_name=cloud_map["namespaceName"], service_name=cloud_map["serviceName"]
    )
    if cloudmap_service is None:
        raise AwsStepError(
            f"Virtual node {node} names Cloud Map service {cloud_map['serviceName']} in namespace "
            f"{cloud_map['namespaceName']}, but no such Cloud Map service exists."
        )
    service = _ecs_service_registered_to(clients, cluster, cloudmap_service)
    task_definition = describe_task_definition(clients, service["taskDefinition"])
    app = first_app_container(task_definition.get("containerDefinitions", []))
    if app is None:
        raise AwsStepError(
            f"Task definition {task_definition['taskDefinitionArn']} has no container besides "
            "Envoy, so there is no application image to replace."
        )
    stable = AppMeshStable(
        cluster=cluster,
        mesh=mesh,
        virtual_router=virtual_router,
        route=route,
        virtual_node=node,
        cloudmap_service_id=cloudmap_service["Id"],
        cloudmap_service_arn=cloudmap_service["Arn"],
        cloudmap_service_name=cloudmap_service["Name"],
        cloudmap_namespace_id=cloudmap_service["NamespaceId"],
        ecs_service_name=service["serviceName"],
        ecs_service_arn=service["serviceArn"],
        task_definition_arn=task_definition["taskDefinitionArn"],
        family=task_definition["family"],
        image=app["image"],
        desired_count=int(service.get("desiredCount", 0)),
    )
    logger.info("stable version of route %s: %s", route, stable)
    return stable


def _stable_node(route: str, targets: list[dict[str, Any]]) -> str:
    weights = weights_of(targets)
    live = {node: weight for node, weight in weights.items() if weight > 0}
    if len(live) > 1:
        split = " and ".join(f"{node} ({weight} %)" for node, weight in live.items())
        raise AwsStepError(
            f"Route {route} already splits traffic between {split}; finish or undo that first."
        )
    if not live:
        raise AwsStepError(f"Route {route} sends no traffic to any virtual node.")
    return next(iter(live))


def _cloud_map_of_node(clients: AwsClients, mesh: str, node: str) -> dict[str, Any]:
    try:
        spec = clients.appmesh.describe_virtual_node(meshName=mesh, virtualNodeName=node)[
            "virtualNode"
        ]["spec"]
    except ClientError as exc:
        if is_not_found(exc):
            raise AwsStepError(
                f"The route sends traffic to virtual node {node}, which does not exist in mesh "
                f"{mesh}."
            ) from exc
        raise AwsStepError(
            f"Could not read virtual node {node} in mesh {mesh}: {describe_failure(exc)}."
        ) from exc
    discovery = spec.get("serviceDiscovery") or {}
    cloud_map = discovery.get("awsCloudMap")
    if not cloud_map:
        how = "DNS" if "dns" in discovery else "no"
        raise AwsStepError(
            f"Virtual node {node} uses {how} service discovery; the canary bot needs Cloud Map "
            "(serviceDiscovery.awsCloudMap) to find and clone its ECS service."
        )
    return dict(cloud_map)


def find_namespace_ids(clients: AwsClients, name: str) -> list[str]:
    """Ids of the Cloud Map namespaces with this name (private DNS names may repeat per VPC)."""
    ids: list[str] = []
    for page in clients.servicediscovery.get_paginator("list_namespaces").paginate():
        ids.extend(ns["Id"] for ns in page["Namespaces"] if ns["Name"] == name)
    return ids


def find_service_in_namespace(
    clients: AwsClients, namespace_id: str, service_name: str
) -> dict[str, Any] | None:
    """The Cloud Map service with this name in this namespace, as GetService returns it."""
    filters = [{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
    paginator = clients.servicediscovery.get_paginator("list_services")
    for page in paginator.paginate(Filters=filters):
        for summary in page["Services"]:
            if summary["Name"] != service_name:
                continue
            # ListServices summaries carry no NamespaceId (and moto ignores the filter), so
            # GetService confirms the namespace.
            try:
                service = clients.servicediscovery.get_service(Id=summary["Id"])["Service"]
            except ClientError as exc:
                if is_not_found(exc):
                    continue
                raise
            if service.get("NamespaceId") == namespace_id:
                return dict(service)
    return None


def find_cloudmap_service(
    clients: AwsClients, *, namespace_name: str, service_name: str
) -> dict[str, Any] | None:
    """The one Cloud Map service named service_name in a namespace named namespace_name."""
    try:
        namespace_ids = find_namespace_ids(clients, namespace_name)
        if not namespace_ids:
            raise AwsStepError(f"Cloud Map namespace {namespace_name} does not exist.")
        found = [
            service
            for namespace_id in namespace_ids
            if (service := find_service_in_namespace(clients, namespace_id, service_name))
        ]
    except ClientError as exc:
        raise AwsStepError(
            f"Could not look up Cloud Map service {service_name} in namespace {namespace_name}: "
            f"{describe_failure(exc)}."
        ) from exc
    if len(found) > 1:
        ids = ", ".join(s["Id"] for s in found)
        raise AwsStepError(
            f"Several Cloud Map namespaces named {namespace_name} hold a service "
            f"{service_name} ({ids}); the bot cannot tell which one the mesh uses."
        )
    return found[0] if found else None


def _ecs_service_registered_to(
    clients: AwsClients, cluster: str, cloudmap_service: dict[str, Any]
) -> dict[str, Any]:
    arn = cloudmap_service["Arn"]
    matches = [
        service
        for service in list_ecs_services(clients, cluster)
        if service.get("status") == "ACTIVE"
        and any(r.get("registryArn") == arn for r in service.get("serviceRegistries", []))
    ]
    label = f"Cloud Map service {cloudmap_service['Name']} ({cloudmap_service['Id']})"
    return only_stable_service(matches, cluster=cluster, label=label)
