"""Pure cloning of the stable version's definitions: what changes for a canary, and nothing else.

The task definition gets the new image in the app container and (App Mesh) the Envoy pointed at
the canary's virtual node; the virtual node, Cloud Map service and ECS service requests are the
stable's with the canary's names. No I/O here but `ensure_canary_task_definition`, the one
registration every backend shares, which sends its request through workers.aws.ecs; the
backends' provisioning modules send the others.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from workers.aws.clients import AwsClients
from workers.aws.ecs import (
    TAG_KEY,
    canary_tags,
    clone_service_base,
    ensure_task_definition,
    first_app_container,
    is_envoy_container,
)
from workers.aws.errors import AwsStepError
from workers.domain.versions import StableBase

ENVOY_NODE_ARN = "APPMESH_RESOURCE_ARN"
ENVOY_NODE_NAME = "APPMESH_VIRTUAL_NODE_NAME"  # older form: mesh/M/virtualNode/VN
_REGISTRY_FIELDS = ("port", "containerName", "containerPort")


def image_repository(image: str) -> str:
    """The image reference without its tag or digest ("host:5000/app:v1" -> "host:5000/app")."""
    without_digest = image.split("@", 1)[0]
    head, sep, last = without_digest.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{head}{sep}{name}"


def _renamed_node_reference(value: str, node: str) -> str:
    # Both the ARN and the older "mesh/M/virtualNode/VN" form end in "/<node name>".
    prefix, sep, _ = value.rpartition("/")
    if not sep:
        raise AwsStepError(f"Envoy's virtual node reference {value!r} is not a path or ARN.")
    return f"{prefix}/{node}"


def _point_envoy_at(containers: list[dict[str, Any]], virtual_node: str, arn: Any) -> None:
    envoys = [c for c in containers if is_envoy_container(c)]
    references = [
        variable
        for envoy in envoys
        for variable in envoy.get("environment", [])
        if variable.get("name") in (ENVOY_NODE_ARN, ENVOY_NODE_NAME)
    ]
    if not references:
        raise AwsStepError(
            f"Task definition {arn} has no Envoy container with {ENVOY_NODE_ARN} (or "
            f"{ENVOY_NODE_NAME}) set, so the canary could not join the mesh as its own node."
        )
    for variable in references:
        variable["value"] = _renamed_node_reference(variable["value"], virtual_node)


def clone_task_definition(
    source: dict[str, Any],
    *,
    accepted_fields: Iterable[str],
    image: str,
    virtual_node: str | None,
    deployment_id: str,
    app_container: str | None = None,
) -> dict[str, Any]:
    """RegisterTaskDefinition arguments for the canary: the source's registrable fields with the
    app image and Envoy's virtual node swapped, tagged with the deployment id.

    `virtual_node` None leaves the containers' environment alone (no mesh: the ALB backend);
    `app_container` names the container to update instead of guessing it from the image.
    """
    accepted = set(accepted_fields)
    request = {
        field: copy.deepcopy(value)
        for field, value in source.items()
        if field in accepted and field != "tags" and value is not None
    }
    containers: list[dict[str, Any]] = request.get("containerDefinitions", [])
    repository = image_repository(image)
    arn = source.get("taskDefinitionArn", source.get("family"))
    if app_container is not None:
        app = next((c for c in containers if c.get("name") == app_container), None)
        if app is None:
            raise AwsStepError(f"Task definition {arn} has no container named {app_container}.")
    else:
        app = next(
            (
                c
                for c in containers
                if not is_envoy_container(c) and image_repository(c.get("image", "")) == repository
            ),
            None,
        ) or first_app_container(containers)
    if app is None:
        raise AwsStepError(f"Task definition {arn} has no application container to update.")
    app["image"] = image
    if virtual_node is not None:
        _point_envoy_at(containers, virtual_node, arn)

    request["tags"] = canary_tags(source.get("tags", []), deployment_id)
    return request


def ensure_canary_task_definition(
    clients: AwsClients,
    stable: StableBase,
    *,
    name: str,
    image: str,
    deployment_id: str,
    virtual_node: str | None = None,
    app_container: str | None = None,
) -> str:
    """The canary's task definition revision (found when re-run, else registered): the stable
    revision cloned with `image` (clone_task_definition says what `virtual_node` and
    `app_container` change)."""
    return ensure_task_definition(
        clients,
        family=stable.family,
        stable_task_definition_arn=stable.task_definition_arn,
        name=name,
        image=image,
        deployment_id=deployment_id,
        clone=lambda source, fields: clone_task_definition(
            source,
            accepted_fields=fields,
            image=image,
            virtual_node=virtual_node,
            deployment_id=deployment_id,
            app_container=app_container,
        ),
    )


#: The Cloud Map instance attribute in which ECS names the service a task belongs to
#: (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-discovery.html).
ECS_SERVICE_ATTRIBUTE = "ECS_SERVICE_NAME"


def clone_virtual_node_spec(
    spec: dict[str, Any],
    cloudmap_service_name: str,
    *,
    stable_ecs_service: str,
    canary_ecs_service: str,
) -> dict[str, Any]:
    """The stable node's spec pointed at the canary's Cloud Map service, all else unchanged but
    the instance-attribute filters that name the stable.

    App Mesh resolves a node's endpoints to the Cloud Map instances matching every attribute
    filter. ECS registers each task with ECS_SERVICE_NAME set to its own service, so a filter
    `ECS_SERVICE_NAME=<stable>` would leave the canary with no endpoints: it becomes the canary's
    name. Any other filter whose value is the stable's ECS service name can match no canary task
    and is dropped; filters on the cluster, family, zone... stay, the canary shares them.
    """
    new_spec = copy.deepcopy(spec)
    cloud_map = new_spec["serviceDiscovery"]["awsCloudMap"]
    cloud_map["serviceName"] = cloudmap_service_name
    attributes = []
    for attribute in cloud_map.get("attributes") or []:
        if attribute.get("key") == ECS_SERVICE_ATTRIBUTE:
            attributes.append({**attribute, "value": canary_ecs_service})
        elif attribute.get("value") != stable_ecs_service:
            attributes.append(attribute)
    # moto drops "attributes": [] on describe and then refuses a create without it.
    cloud_map["attributes"] = attributes
    return new_spec


def clone_cloudmap_request(
    stable: dict[str, Any], *, name: str, deployment_id: str
) -> dict[str, Any]:
    """CreateService arguments for the canary's Cloud Map service, same DNS and health config."""
    request: dict[str, Any] = {
        "Name": name,
        "NamespaceId": stable["NamespaceId"],
        # The name is unique per deployment, so a retried create returns the same service.
        "CreatorRequestId": name,
        "Description": f"Canary {name} of {stable['Name']}",
        "Tags": [{"Key": TAG_KEY, "Value": deployment_id}],
    }
    if stable.get("DnsConfig"):
        dns = copy.deepcopy(stable["DnsConfig"])
        dns.pop("NamespaceId", None)  # deprecated inside DnsConfig; NamespaceId is set above
        request["DnsConfig"] = dns
    for field in ("HealthCheckConfig", "HealthCheckCustomConfig"):
        if stable.get(field):
            request[field] = copy.deepcopy(stable[field])
    return request


def clone_service_request(
    stable: dict[str, Any],
    *,
    cluster: str,
    name: str,
    task_definition_arn: str,
    desired_count: int,
    stable_registry_arn: str,
    canary_registry_arn: str,
    deployment_id: str,
) -> dict[str, Any]:
    """CreateService arguments for the canary's ECS service, cloned from the stable's.

    Load balancers are left out on purpose: the mesh route decides the canary's share, a shared
    target group would bypass it."""
    request = clone_service_base(
        stable,
        cluster=cluster,
        name=name,
        task_definition_arn=task_definition_arn,
        desired_count=desired_count,
    )
    registries = []
    for registry in stable.get("serviceRegistries", []):
        # Only the mesh's registry is cloned: any other would put canary tasks behind a name
        # that the route's weights do not govern.
        if registry.get("registryArn") == stable_registry_arn:
            entry = {"registryArn": canary_registry_arn}
            entry.update({f: registry[f] for f in _REGISTRY_FIELDS if f in registry})
            registries.append(entry)
    request["serviceRegistries"] = registries or [{"registryArn": canary_registry_arn}]
    request["tags"] = canary_tags(stable.get("tags", []), deployment_id)
    return request
