"""What a backend learns of the two versions of a deployment: the stable it found and the canary
it made, as typed records kept in the Deployment (and so in Redis, as JSON).

Each record names its router (`router`: the catalogue's `appmesh`, `alb` or `ecs`), so the
stored JSON reads back as the backend's own type (a pydantic discriminated union). The bases
hold what the engine and the Slack side read; the rest is each backend's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class StableBase(BaseModel):
    """The version serving traffic before the deployment, and what a canary is cloned from."""

    model_config = ConfigDict(frozen=True)

    cluster: str
    ecs_service_name: str
    ecs_service_arn: str
    task_definition_arn: str
    family: str
    #: The image of the app container (the load-balanced one, else the first non-Envoy one).
    image: str
    desired_count: int


class AppMeshStable(StableBase):
    """The version an App Mesh route sends its traffic to."""

    router: Literal["appmesh"] = "appmesh"
    mesh: str
    virtual_router: str
    route: str
    virtual_node: str
    cloudmap_service_id: str
    cloudmap_service_arn: str
    cloudmap_service_name: str
    cloudmap_namespace_id: str


class AlbStable(StableBase):
    """The version an ALB rule sends its traffic to."""

    router: Literal["alb"] = "alb"
    listener_rule: str  # "" when the listener's default action is weighted
    listener: str  # "" when a listener rule is weighted
    load_balancer_arn: str
    target_group_arn: str
    target_group_name: str
    container_name: str
    container_port: int


class EcsStable(StableBase):
    """The revision the ECS service runs before the deployment, and how its traffic is seen."""

    router: Literal["ecs"] = "ecs"
    container_name: str
    #: ALB exposure (loadBalancers[].advancedConfiguration): the production listener rule and the
    #: target group serving this revision; empty when the service is not behind an ALB (alarms
    #: only then).
    listener_rule: str = ""
    target_group_arn: str = ""
    target_group_name: str = ""
    #: The other target group, where ECS registers the new revision's tasks.
    canary_target_group_arn: str = ""
    canary_target_group_name: str = ""


class CanaryBase(BaseModel):
    """The resources of one canary; a field is "" when that resource does not exist (yet)."""

    model_config = ConfigDict(frozen=True)

    #: `<catalogue key>-<deployment id>`: whose the resources are (their names or canary tag).
    name: str
    ecs_service_name: str
    task_definition_arn: str
    #: A backend that shifts traffic itself (router ecs): the pause the engine last let go on,
    #: recorded before ContinueServiceDeployment so a re-run never continues a pause twice.
    continued_hook: str | None = None


class AppMeshCanary(CanaryBase):
    """A canary behind App Mesh: its virtual node, Cloud Map and ECS service are all `name`."""

    router: Literal["appmesh"] = "appmesh"
    virtual_node: str
    cloudmap_service_id: str
    cloudmap_service_arn: str


class AlbCanary(CanaryBase):
    """A canary behind an ALB: its ECS service is `name`, its target group `name` shortened to
    32 characters if need be."""

    router: Literal["alb"] = "alb"
    target_group_name: str
    target_group_arn: str


class EcsCanary(CanaryBase):
    """The new revision and the service deployment that brings it in (router ecs)."""

    router: Literal["ecs"] = "ecs"
    service_deployment_arn: str
    target_group_arn: str = ""
    target_group_name: str = ""


#: A stable version as stored in a Deployment: the backend's own type, told apart by `router`.
StableRecord = Annotated[AppMeshStable | AlbStable | EcsStable, Field(discriminator="router")]
#: A canary as stored in a Deployment: the backend's own type, told apart by `router`.
CanaryRecord = Annotated[AppMeshCanary | AlbCanary | EcsCanary, Field(discriminator="router")]
