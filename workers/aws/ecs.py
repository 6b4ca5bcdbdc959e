"""The ECS side of a canary, the same behind App Mesh and an ALB: the ownership tag, task
definition revisions and ECS services, looked up, cloned, created, scaled down and removed.

Every step looks before it acts, so a job re-run after a crash finishes what was started. What
differs per backend (how a service is wired to the traffic, how a revision is cloned) comes in as
a callable that builds the request.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from workers.aws.clients import AwsClients
from workers.aws.errors import AwsStepError, describe_failure, is_not_found

logger = logging.getLogger(__name__)

TAG_KEY = "canary:deployment-id"
"""Tag put on every resource a canary owns; its value is the deployment id."""

ECS_DESCRIBE_BATCH = 10  # DescribeServices takes at most 10 services per call
REVISIONS_TO_SEARCH = 10

# Service fields cloned verbatim onto the canary's ECS service. Load balancers and service
# registries are left to each backend: they decide which share of the traffic the canary gets.
_SERVICE_FIELDS = (
    "platformVersion",
    "networkConfiguration",
    "deploymentConfiguration",
    "placementConstraints",
    "placementStrategy",
    "schedulingStrategy",
    "enableECSManagedTags",
    "propagateTags",
    "enableExecuteCommand",
)

# ECS's own traffic-shifting deployments (blue/green, canary, linear, with bake times and
# lifecycle hooks: the DeploymentConfiguration shape of botocore's ECS model). Cloned onto the
# canary they would have ECS shift listener rules or pause on the stable's hooks by itself,
# beside the bot's own shifting; the canary gets ECS's default rolling deployment instead.
_NATIVE_DEPLOYMENT_FIELDS = (
    "strategy",
    "bakeTimeInMinutes",
    "lifecycleHooks",
    "linearConfiguration",
    "canaryConfiguration",
)


@dataclass(frozen=True)
class Readiness:
    """Whether the canary's ECS service runs all its tasks and its rollout has completed."""

    running: int
    desired: int
    rollout_state: str | None
    ready: bool
    #: ECS's rolloutStateReason: why a FAILED rollout failed.
    reason: str | None = None

    @property
    def failed(self) -> bool:
        """ECS gave up on the rollout (deployment circuit breaker): it will never be steady."""
        return self.rollout_state == "FAILED"


# ---------------------------------------------------------------------------------------------
# Tags and names


def tags_to_copy(tags: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """User tags (ECS style) worth carrying over; "aws:" tags are reserved and the canary tag
    is set anew."""
    return [t for t in tags if not t["key"].startswith("aws:") and t["key"] != TAG_KEY]


def canary_tags(tags: Iterable[dict[str, str]], deployment_id: str) -> list[dict[str, str]]:
    """The user tags worth carrying over (ECS style) plus the canary tag for deployment_id."""
    return [*tags_to_copy(tags), {"key": TAG_KEY, "value": deployment_id}]


def owned_by(tags: Iterable[dict[str, str]], name: str) -> bool:
    """True when the canary tag (ECS style) says the resource belongs to the canary `name`."""
    return any(t["key"] == TAG_KEY and name.endswith(f"-{t['value']}") for t in tags)


def check_name(name: str, deployment_id: str) -> None:
    """Refuse a canary name that does not end with its deployment id."""
    if not deployment_id or not name.endswith(f"-{deployment_id}"):
        raise ValueError(f"Canary name {name!r} must end with '-{deployment_id}'")


# ---------------------------------------------------------------------------------------------
# Pure cloning logic


def clone_service_base(
    stable: dict[str, Any],
    *,
    cluster: str,
    name: str,
    task_definition_arn: str,
    desired_count: int,
    extra_fields: tuple[str, ...] = (),
) -> dict[str, Any]:
    """CreateService arguments shared by every backend: the stable's capacity, network and
    deployment settings (and `extra_fields`) under a new name and task definition; the caller
    adds how the service meets the traffic, and the tags."""
    request: dict[str, Any] = {
        "cluster": cluster,
        "serviceName": name,
        "taskDefinition": task_definition_arn,
        "desiredCount": desired_count,
    }
    if stable.get("capacityProviderStrategy"):
        request["capacityProviderStrategy"] = copy.deepcopy(stable["capacityProviderStrategy"])
    elif stable.get("launchType"):
        request["launchType"] = stable["launchType"]
    for field in (*_SERVICE_FIELDS, *extra_fields):
        if stable.get(field) not in (None, [], {}):
            request[field] = copy.deepcopy(stable[field])
    deployment = request.get("deploymentConfiguration")
    if deployment:
        for native in _NATIVE_DEPLOYMENT_FIELDS:
            deployment.pop(native, None)
    return request


def without_advanced_configuration(load_balancer: dict[str, Any]) -> dict[str, Any]:
    """A service's load balancer entry without its blue/green `advancedConfiguration` (the
    alternate target group and the production listener rule ECS would shift by itself)."""
    return {k: v for k, v in load_balancer.items() if k != "advancedConfiguration"}


# ---------------------------------------------------------------------------------------------
# AWS lookups


def describe_task_definition(clients: AwsClients, task_definition: str) -> dict[str, Any]:
    """DescribeTaskDefinition with its tags folded in under "tags"."""
    try:
        response = clients.ecs.describe_task_definition(
            taskDefinition=task_definition, include=["TAGS"]
        )
    except ClientError as exc:
        raise AwsStepError(
            f"Could not read task definition {task_definition}: {describe_failure(exc)}."
        ) from exc
    return {**response["taskDefinition"], "tags": response.get("tags", [])}


def list_ecs_services(clients: AwsClients, cluster: str) -> list[dict[str, Any]]:
    """Every service of a cluster, fully described (with tags)."""
    try:
        arns: list[str] = []
        for page in clients.ecs.get_paginator("list_services").paginate(cluster=cluster):
            arns.extend(page["serviceArns"])
        services: list[dict[str, Any]] = []
        for start in range(0, len(arns), ECS_DESCRIBE_BATCH):
            batch = arns[start : start + ECS_DESCRIBE_BATCH]
            response = clients.ecs.describe_services(
                cluster=cluster, services=batch, include=["TAGS"]
            )
            services.extend(response["services"])
    except ClientError as exc:
        if is_not_found(exc):
            raise AwsStepError(f"ECS cluster {cluster} does not exist.") from exc
        raise AwsStepError(
            f"Could not list the services of ECS cluster {cluster}: {describe_failure(exc)}."
        ) from exc
    return services


def only_stable_service(
    matches: list[dict[str, Any]], *, cluster: str, label: str
) -> dict[str, Any]:
    """The one ECS service of `matches` (those of cluster that serve `label`); none or several
    raise an AwsStepError."""
    if not matches:
        raise AwsStepError(f"No ECS service in cluster {cluster} is registered to {label}.")
    if len(matches) > 1:
        names = ", ".join(s["serviceName"] for s in matches)
        raise AwsStepError(
            f"Several ECS services in cluster {cluster} are registered to {label}: {names}; "
            "the bot cannot tell which one is the stable version."
        )
    return matches[0]


def describe_service(clients: AwsClients, cluster: str, name: str) -> dict[str, Any] | None:
    """The ECS service called name (with tags), or None; prefers an ACTIVE one."""
    try:
        response = clients.ecs.describe_services(cluster=cluster, services=[name], include=["TAGS"])
    except ClientError as exc:
        if is_not_found(exc):
            raise AwsStepError(f"ECS cluster {cluster} does not exist.") from exc
        raise AwsStepError(
            f"Could not read ECS service {name} in cluster {cluster}: {describe_failure(exc)}."
        ) from exc
    services = response.get("services", [])
    for service in services:
        if service.get("status") == "ACTIVE":
            return dict(service)
    return dict(services[0]) if services else None


def _revision(arn: str) -> int:
    return int(arn.rsplit(":", 1)[1])


def find_tagged_revision(
    clients: AwsClients, family: str, deployment_id: str, *, skip: str = ""
) -> dict[str, Any] | None:
    """The newest revision of family tagged with deployment_id among the last few revisions."""
    arns: list[str] = []
    try:
        # ListTaskDefinitions answers at most 100 ARNs a page, newest first with sort=DESC
        # (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTaskDefinitions.html);
        # pages are read until enough revisions of this very family are known.
        pages = clients.ecs.get_paginator("list_task_definitions").paginate(
            familyPrefix=family, status="ACTIVE", sort="DESC"
        )
        for page in pages:
            arns.extend(
                arn
                for arn in page.get("taskDefinitionArns", [])
                if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family and arn != skip
            )
            if len(arns) >= REVISIONS_TO_SEARCH:
                break
    except ClientError as exc:
        raise AwsStepError(
            f"Could not list revisions of task definition family {family}: {describe_failure(exc)}."
        ) from exc
    # Sorted here too, in case a stand-in ignores sort.
    for arn in sorted(arns, key=_revision, reverse=True)[:REVISIONS_TO_SEARCH]:
        revision = describe_task_definition(clients, arn)
        if any(t["key"] == TAG_KEY and t["value"] == deployment_id for t in revision["tags"]):
            return revision
    return None


def register_fields(clients: AwsClients) -> frozenset[str]:
    """The fields RegisterTaskDefinition accepts."""
    # The API model knows exactly which fields RegisterTaskDefinition accepts, so read-only
    # fields of the describe output (arn, revision, status, registeredAt...) drop out by themselves.
    shape = clients.ecs.meta.service_model.operation_model("RegisterTaskDefinition").input_shape
    return frozenset(shape.members)


def find_canary_service(
    clients: AwsClients,
    *,
    cluster: str,
    family: str,
    stable_task_definition_arn: str,
    name: str,
    deployment_id: str,
) -> tuple[dict[str, Any] | None, str]:
    """The canary's own ECS service (None when missing, removed or not tagged as the canary's)
    and its task definition revision ("" when none is found)."""
    service = describe_service(clients, cluster, name)
    if service is not None and (
        service.get("status") == "INACTIVE" or not owned_by(service.get("tags", []), name)
    ):
        service = None
    task_definition_arn = str(service.get("taskDefinition", "")) if service else ""
    if not task_definition_arn:
        revision = find_tagged_revision(
            clients, family, deployment_id, skip=stable_task_definition_arn
        )
        task_definition_arn = str(revision["taskDefinitionArn"]) if revision else ""
    return service, task_definition_arn


def canary_readiness(clients: AwsClients, *, cluster: str, ecs_service_name: str) -> Readiness:
    """How far the canary's ECS service is from running all its tasks steadily."""
    service = describe_service(clients, cluster, ecs_service_name)
    if service is None or service.get("status") != "ACTIVE":
        state = service.get("status") if service else "missing"
        raise AwsStepError(f"The canary's ECS service {ecs_service_name} is {state}.")
    running = int(service.get("runningCount", 0))
    desired = int(service.get("desiredCount", 0))
    primary = next(
        (d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), None
    )
    rollout_state = primary.get("rolloutState") if primary else None
    ready = rollout_state in (None, "COMPLETED") and desired > 0 and running == desired
    return Readiness(
        running=running,
        desired=desired,
        rollout_state=rollout_state,
        ready=ready,
        reason=primary.get("rolloutStateReason") if primary else None,
    )


# ---------------------------------------------------------------------------------------------
# Provisioning


def ensure_task_definition(
    clients: AwsClients,
    *,
    family: str,
    stable_task_definition_arn: str,
    name: str,
    image: str,
    deployment_id: str,
    clone: Callable[[dict[str, Any], frozenset[str]], dict[str, Any]],
) -> str:
    """The canary's task definition revision: the one tagged with deployment_id, else a new one
    registered from `clone(stable revision, fields RegisterTaskDefinition accepts)`."""
    existing = find_tagged_revision(clients, family, deployment_id, skip=stable_task_definition_arn)
    if existing is not None:
        logger.info("canary %s: reusing %s", name, existing["taskDefinitionArn"])
        return str(existing["taskDefinitionArn"])
    source = describe_task_definition(clients, stable_task_definition_arn)
    request = clone(source, register_fields(clients))
    try:
        registered = clients.ecs.register_task_definition(**request)
    except ClientError as exc:
        raise AwsStepError(
            f"Could not register a new revision of task definition {family} with image "
            f"{image}: {describe_failure(exc)}."
        ) from exc
    arn = str(registered["taskDefinition"]["taskDefinitionArn"])
    logger.info("canary %s: registered %s", name, arn)
    return arn


def ensure_ecs_service(
    clients: AwsClients,
    *,
    cluster: str,
    name: str,
    stable_service_name: str,
    clone: Callable[[dict[str, Any]], dict[str, Any]],
) -> str:
    """The canary's ECS service: reused when this deployment created it, else created from
    `clone(stable service)`; refuses a removed canary's or someone else's service. Returns the
    task definition revision the service runs.

    A create refused because the service now exists (ECS: InvalidParameterException, "Creation
    of service was not idempotent") is another run of the same step, which created it between
    this run's look and its create: that service is adopted, with the same checks as any found.
    """
    existing = describe_service(clients, cluster, name)
    if existing is not None:
        return _reuse_service(existing, cluster=cluster, name=name)
    source = describe_service(clients, cluster, stable_service_name)
    if source is None or source.get("status") != "ACTIVE":
        raise AwsStepError(
            f"The stable's ECS service {stable_service_name} is no longer active in cluster "
            f"{cluster}."
        )
    request = clone(source)
    try:
        created = clients.ecs.create_service(**request)["service"]
    except ClientError as exc:
        now = describe_service(clients, cluster, name)
        if now is None or now.get("status") != "ACTIVE":
            raise AwsStepError(
                f"Could not create ECS service {name} in cluster {cluster}: "
                f"{describe_failure(exc)}."
            ) from exc
        logger.info("canary %s: ECS service created meanwhile by another run of this step", name)
        return _reuse_service(now, cluster=cluster, name=name)
    logger.info("canary %s: created ECS service", name)
    return str(created.get("taskDefinition") or request["taskDefinition"])


def _reuse_service(existing: dict[str, Any], *, cluster: str, name: str) -> str:
    """The task definition of the canary's own ECS service `existing`; refuses a removed one
    or one that is not this deployment's."""
    status = existing.get("status")
    if status != "ACTIVE":
        raise AwsStepError(
            f"ECS service {name} in cluster {cluster} is {status}: this canary was "
            "already removed. Start a new deployment."
        )
    if not owned_by(existing.get("tags", []), name):
        raise AwsStepError(
            f"An ECS service named {name} already runs in cluster {cluster} but was "
            "not created for this deployment; the bot will not touch it."
        )
    logger.info("canary %s: reusing ECS service", name)
    return str(existing.get("taskDefinition", ""))


def settle_task_definition(clients: AwsClients, *, name: str, ensured: str, runs: str) -> str:
    """The canary's revision once its ECS service is there: the one the service `runs`. Two
    overlapping runs of the provisioning step may each register a revision; the one the
    service does not run (`ensured` by this run) is this deployment's and of no use, so it is
    deregistered rather than left behind."""
    if not runs or runs == ensured:
        return ensured
    for problem in deregister_canary_revision(clients, ensured, canary_name=name):
        logger.warning("canary %s: %s", name, problem)
    return runs


# ---------------------------------------------------------------------------------------------
# Removing


def scale_down_and_delete(
    clients: AwsClients, cluster: str, name: str, *, delete: bool, expected_arn: str = ""
) -> list[str]:
    """Scale an ECS service to 0 and optionally delete it; returns what a person must finish.

    Never waits for tasks to drain: ECS stops them by itself once the service is deleted.
    """
    try:
        service = describe_service(clients, cluster, name)
    except AwsStepError as exc:
        return [f"{exc} Scale ECS service {name} in cluster {cluster} to 0 and delete it."]
    if service is None or service.get("status") in ("INACTIVE", "DRAINING"):
        return []
    if expected_arn and service.get("serviceArn") != expected_arn:
        return [
            f"ECS service {name} in cluster {cluster} is not the one the deployment started "
            f"from ({expected_arn}); it was left alone. Check it and delete it by hand if needed."
        ]
    try:
        if int(service.get("desiredCount", 0)) != 0:
            clients.ecs.update_service(cluster=cluster, service=name, desiredCount=0)
        if delete:
            clients.ecs.delete_service(cluster=cluster, service=name, force=True)
    except ClientError as exc:
        if is_not_found(exc):
            return []
        action = "scale to 0 and delete" if delete else "scale to 0"
        return [
            f"Could not {action} ECS service {name} in cluster {cluster} "
            f"({describe_failure(exc)}); {action} it by hand."
        ]
    logger.info("ECS service %s: scaled to 0%s", name, " and deleted" if delete else "")
    return []


def scale_down_canary_service(
    clients: AwsClients, cluster: str, *, canary_name: str, service_name: str, delete: bool
) -> list[str]:
    """Scale the canary's ECS service to 0 (and delete it) if it is named and tagged as the
    canary's; returns what a person must finish."""
    if service_name != canary_name:
        return [
            f"ECS service {service_name} is not named for canary {canary_name}; it was left alone."
        ]
    try:
        service = describe_service(clients, cluster, service_name)
    except AwsStepError as exc:
        return [f"{exc} Scale the canary's ECS service {service_name} to 0 and delete it."]
    if service is None or service.get("status") != "ACTIVE":
        return []
    if not owned_by(service.get("tags", []), canary_name):
        return [
            f"ECS service {canary_name} in cluster {cluster} is not tagged as this canary's; "
            "it was left alone."
        ]
    return scale_down_and_delete(
        clients, cluster, service_name, delete=delete, expected_arn=service["serviceArn"]
    )


def deregister_canary_revision(clients: AwsClients, arn: str, *, canary_name: str) -> list[str]:
    """Deregister the canary's task definition revision if it is tagged as the canary's."""
    try:
        revision = describe_task_definition(clients, arn)
        if revision.get("status") != "ACTIVE":
            return []
        if not owned_by(revision["tags"], canary_name):
            return [
                f"Task definition {arn} is not tagged for canary {canary_name}; it was left alone."
            ]
        clients.ecs.deregister_task_definition(taskDefinition=arn)
    except (ClientError, AwsStepError) as exc:
        detail = describe_failure(exc) if isinstance(exc, ClientError) else str(exc)
        return [f"Could not deregister task definition {arn} ({detail}); deregister it."]
    logger.info("task definition %s: deregistered", arn)
    return []


def is_envoy_container(container: dict[str, Any]) -> bool:
    """True for the App Mesh Envoy sidecar of a task definition."""
    image = str(container.get("image", ""))
    return "aws-appmesh-envoy" in image or container.get("name") == "envoy"


def first_app_container(containers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first container that is not the Envoy sidecar."""
    return next((c for c in containers if not is_envoy_container(c)), None)
