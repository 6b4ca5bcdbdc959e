"""Seed moto (in-process or server) with the infrastructure a user already runs on ECS + App Mesh.

Only boto3 calls, so it works against mock_aws and a moto_server alike; every resource is
looked up before it is created, so seeding twice is harmless. The VPC, cluster, task definition
and ECS service steps shared with the ALB sandbox are in sandbox.seed_ecs.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from sandbox.seed_ecs import (
    APP_PORT,
    active_task_definition,
    app_container,
    ec2_client,
    ensure_ecs_service,
    ensure_task_definition,
    sandbox_network,
)
from sandbox.seed_ecs import ensure_cluster as _ensure_cluster  # the name bench/ seeds through
from workers.aws.clients import AwsClients
from workers.aws.errors import is_not_found

logger = logging.getLogger(__name__)

ENVOY_IMAGE = "840364872350.dkr.ecr.us-east-1.amazonaws.com/aws-appmesh-envoy:v1.29.4.0-prod"

# Listener protocol of the router and node for each route kind.
_PROTOCOLS = {"http": "http", "http2": "http2", "grpc": "grpc", "tcp": "tcp"}


def seed_appmesh_service(
    clients: AwsClients,
    *,
    key: str = "payments",
    cluster: str = "prod",
    mesh: str = "prod-mesh",
    image: str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v1",
    desired_count: int = 2,
    with_retry_policy: bool = True,
    route_kind: str = "http",
) -> dict[str, str]:
    """Create (or find) one service's ECS, Cloud Map and App Mesh resources; return their names.

    The cluster, the VPC, the Cloud Map namespace ("<cluster>.local") and the mesh are shared by
    every service seeded into them.
    """
    if route_kind not in _PROTOCOLS:
        raise ValueError(f"route_kind must be one of {', '.join(_PROTOCOLS)}, not {route_kind!r}")
    protocol = _PROTOCOLS[route_kind]
    vpc_id, subnet_id, group_id = sandbox_network(ec2_client(clients))

    _ensure_cluster(clients.ecs, cluster)
    namespace_name = f"{cluster}.local"
    namespace_id = _ensure_namespace(clients.servicediscovery, namespace_name, vpc_id)
    cloudmap = _ensure_cloudmap_service(clients.servicediscovery, key, namespace_id)
    _ensure_mesh(clients.appmesh, mesh)

    virtual_node = f"{key}-v1"
    virtual_router = f"{key}-vr"
    route = f"{key}-route"
    names = {
        "key": key,
        "cluster": cluster,
        "mesh": mesh,
        "virtual_router": virtual_router,
        "route": route,
        "virtual_node": virtual_node,
        "namespace": namespace_name,
        "namespace_id": namespace_id,
        "cloudmap_service": key,
        "cloudmap_service_id": cloudmap["Id"],
        "cloudmap_service_arn": cloudmap["Arn"],
        "ecs_service": key,
        "family": key,
        "vpc": vpc_id,
        "subnet": subnet_id,
        "security_group": group_id,
    }
    if _route_exists(clients.appmesh, mesh, virtual_router, route):
        # Seeded before: the service may have moved on (a promoted canary is now its stable),
        # so leave its App Mesh and ECS resources exactly as they are.
        logger.info("route %s already exists; %s is already seeded", route, key)
        active = active_task_definition(clients.ecs, cluster, key)
        if active:
            names["task_definition_arn"] = active
        return names

    node_arn = _ensure_virtual_node(
        clients.appmesh, mesh, virtual_node, protocol, namespace_name, cloudmap_name=key
    )
    _ensure_virtual_router(clients.appmesh, mesh, virtual_router, protocol)
    task_definition_arn = _ensure_task_definition(clients.ecs, key, image, node_arn)
    _ensure_ecs_service(
        clients.ecs,
        cluster=cluster,
        name=key,
        task_definition_arn=task_definition_arn,
        desired_count=desired_count,
        registry_arn=cloudmap["Arn"],
        subnet_id=subnet_id,
        group_id=group_id,
    )
    spec = _route_spec(route_kind, key, virtual_node, with_retry_policy)
    clients.appmesh.create_route(
        meshName=mesh, virtualRouterName=virtual_router, routeName=route, spec=spec
    )
    names["task_definition_arn"] = task_definition_arn
    return names


def _find_namespace(servicediscovery: Any, name: str) -> str | None:
    for page in servicediscovery.get_paginator("list_namespaces").paginate():
        for namespace in page["Namespaces"]:
            if namespace["Name"] == name:
                return str(namespace["Id"])
    return None


def _ensure_namespace(servicediscovery: Any, name: str, vpc_id: str) -> str:
    found = _find_namespace(servicediscovery, name)
    if found:
        return found
    servicediscovery.create_private_dns_namespace(Name=name, Vpc=vpc_id, CreatorRequestId=name)
    created = _find_namespace(servicediscovery, name)
    if created is None:
        raise RuntimeError(f"Cloud Map namespace {name} was not created")
    return created


def _ensure_cloudmap_service(servicediscovery: Any, name: str, namespace_id: str) -> dict[str, Any]:
    filters = [{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
    for page in servicediscovery.get_paginator("list_services").paginate(Filters=filters):
        for summary in page["Services"]:
            if summary["Name"] != name:
                continue
            service = servicediscovery.get_service(Id=summary["Id"])["Service"]
            if service.get("NamespaceId") == namespace_id:
                return dict(service)
    return dict(
        servicediscovery.create_service(
            Name=name,
            NamespaceId=namespace_id,
            CreatorRequestId=f"{namespace_id}-{name}",
            DnsConfig={
                "RoutingPolicy": "MULTIVALUE",
                "DnsRecords": [{"Type": "A", "TTL": 10}],
            },
            HealthCheckCustomConfig={"FailureThreshold": 1},
        )["Service"]
    )


def _ensure_mesh(appmesh: Any, mesh: str) -> None:
    try:
        appmesh.describe_mesh(meshName=mesh)
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        appmesh.create_mesh(meshName=mesh, spec={"egressFilter": {"type": "DROP_ALL"}})


def _ensure_virtual_node(
    appmesh: Any, mesh: str, name: str, protocol: str, namespace: str, *, cloudmap_name: str
) -> str:
    try:
        found = appmesh.describe_virtual_node(meshName=mesh, virtualNodeName=name)
        return str(found["virtualNode"]["metadata"]["arn"])
    except ClientError as exc:
        if not is_not_found(exc):
            raise
    spec = {
        "listeners": [{"portMapping": {"port": APP_PORT, "protocol": protocol}}],
        "serviceDiscovery": {
            "awsCloudMap": {
                "namespaceName": namespace,
                "serviceName": cloudmap_name,
                "attributes": [],
            }
        },
        "logging": {"accessLog": {"file": {"path": "/dev/stdout"}}},
    }
    created = appmesh.create_virtual_node(meshName=mesh, virtualNodeName=name, spec=spec)
    return str(created["virtualNode"]["metadata"]["arn"])


def _ensure_virtual_router(appmesh: Any, mesh: str, name: str, protocol: str) -> None:
    try:
        appmesh.describe_virtual_router(meshName=mesh, virtualRouterName=name)
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        appmesh.create_virtual_router(
            meshName=mesh,
            virtualRouterName=name,
            spec={"listeners": [{"portMapping": {"port": APP_PORT, "protocol": protocol}}]},
        )


def _route_exists(appmesh: Any, mesh: str, router: str, route: str) -> bool:
    try:
        appmesh.describe_route(meshName=mesh, virtualRouterName=router, routeName=route)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise
    return True


def _ensure_task_definition(ecs: Any, family: str, image: str, node_arn: str) -> str:
    """The app behind an Envoy sidecar that joins the mesh as virtual node node_arn."""
    return ensure_task_definition(
        ecs,
        family,
        cpu="512",
        memory="1024",
        containers=[
            app_container(image, dependsOn=[{"containerName": "envoy", "condition": "HEALTHY"}]),
            {
                "name": "envoy",
                "image": ENVOY_IMAGE,
                "essential": True,
                "user": "1337",
                "environment": [{"name": "APPMESH_RESOURCE_ARN", "value": node_arn}],
                "healthCheck": {
                    "command": [
                        "CMD-SHELL",
                        "curl -s http://localhost:9901/server_info | grep state | grep -q LIVE",
                    ],
                    "interval": 5,
                    "timeout": 2,
                    "retries": 3,
                    "startPeriod": 10,
                },
            },
        ],
        proxyConfiguration={
            "type": "APPMESH",
            "containerName": "envoy",
            "properties": [
                {"name": "IgnoredUID", "value": "1337"},
                {"name": "ProxyIngressPort", "value": "15000"},
                {"name": "ProxyEgressPort", "value": "15001"},
                {"name": "AppPorts", "value": str(APP_PORT)},
                {"name": "EgressIgnoredIPs", "value": "169.254.170.2,169.254.169.254"},
            ],
        },
    )


def _ensure_ecs_service(
    ecs: Any,
    *,
    cluster: str,
    name: str,
    task_definition_arn: str,
    desired_count: int,
    registry_arn: str,
    subnet_id: str,
    group_id: str,
) -> None:
    """The service registered to the Cloud Map service registry_arn."""
    ensure_ecs_service(
        ecs,
        cluster=cluster,
        name=name,
        task_definition_arn=task_definition_arn,
        desired_count=desired_count,
        subnets=[subnet_id],
        group_id=group_id,
        serviceRegistries=[{"registryArn": registry_arn}],
    )


def _seconds(value: int) -> dict[str, Any]:
    return {"unit": "s", "value": value}


def _route_spec(kind: str, key: str, node: str, with_retry_policy: bool) -> dict[str, Any]:
    action = {"weightedTargets": [{"virtualNode": node, "weight": 100}]}
    if kind == "tcp":
        body: dict[str, Any] = {"action": action}
        if with_retry_policy:
            body["timeout"] = {"idle": _seconds(15)}
        return {"tcpRoute": body}
    if kind == "grpc":
        body = {"action": action, "match": {"serviceName": key}}
        if with_retry_policy:
            body["retryPolicy"] = {
                "grpcRetryEvents": ["unavailable"],
                "httpRetryEvents": ["server-error"],
                "maxRetries": 2,
                "perRetryTimeout": _seconds(2),
            }
            body["timeout"] = {"perRequest": _seconds(15)}
        return {"grpcRoute": body}
    body = {"action": action, "match": {"prefix": "/"}}
    if with_retry_policy:
        body["retryPolicy"] = {
            "httpRetryEvents": ["server-error"],
            "maxRetries": 2,
            "perRetryTimeout": _seconds(2),
        }
        body["timeout"] = {"perRequest": _seconds(15)}
    return {"http2Route" if kind == "http2" else "httpRoute": body}
