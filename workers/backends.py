"""Traffic backends: how the engine finds, clones, shifts, measures and removes a version.

The engine speaks only to `Backend`; App Mesh and ALB weighted target groups implement it. A
backend keeps what it learns about the stable and the canary as plain dicts, stored as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

from botocore.exceptions import ClientError

from workers.analysis import Counts
from workers.aws.alb_discovery import AlbStableVersion, discover_alb_stable
from workers.aws.alb_provisioning import (
    AlbCanary,
    find_alb_canary,
    provision_alb_canary,
    remove_alb_canary,
    retire_alb_stable,
)
from workers.aws.alb_router import (
    AlbRouter,
    load_balancer_dimension,
    rule_label,
    target_group_dimension,
)
from workers.aws.appmesh_router import AppMeshRouter
from workers.aws.clients import AwsClients
from workers.aws.cloudwatch import AlbTarget, Target, fetch_alb_counts, fetch_counts
from workers.aws.discovery import StableVersion, discover_stable
from workers.aws.ecs import Readiness, canary_readiness
from workers.aws.errors import AwsStepError, is_not_found
from workers.aws.provisioning import (
    Canary,
    find_canary,
    provision_canary,
    remove_canary,
    retire_stable,
)
from workers.config import ServiceConfig
from workers.traffic import TrafficRouter

Record = dict[str, Any]


class Backend(Protocol):
    """One way of running two versions side by side and splitting traffic between them."""

    def discover(self) -> Record:
        """The stable version, found from AWS (the route's or rule's heaviest target)."""

    def provision(self, stable: Record, *, name: str, image: str, deployment_id: str) -> Record:
        """Create (or find) the canary beside the stable; idempotent."""

    def find_canary(self, stable: Record, *, name: str) -> Record | None:
        """What exists of a canary that was being created when its job died."""

    def readiness(self, canary: Record) -> Readiness:
        """Whether the canary's ECS tasks are running and steady."""

    def check_canary(self, canary: Record) -> None:
        """Raise AwsStepError naming what of the canary is gone (deleted by someone else)."""

    def router(self) -> TrafficRouter:
        """Reads and sets the weights of the targets."""

    def target(self, version: Record) -> str:
        """The router's name for a version (stable or canary record)."""

    def counts(
        self,
        stable: Record,
        canary: Record,
        *,
        start: datetime,
        end: datetime,
    ) -> tuple[Counts, Counts]:
        """Cumulative (canary, stable) requests and 5xx between start and end."""

    def remove_canary(self, stable: Record, canary: Record, *, keep: bool) -> list[str]:
        """Delete the canary (or scale it to 0 with `keep`); what a person must clean up."""

    def retire_stable(self, stable: Record, canary: Record) -> list[str]:
        """After promotion: remove the old version; what a person must clean up."""

    def describe(self, version: Record) -> dict[str, Any]:
        """What a person reads about a version (names of its resources)."""

    def traffic_name(self) -> str:
        """What a person calls the thing whose weights move ("route payments-route")."""


class _EcsBackend:
    """What both backends do alike, each version being an ECS service: the records are the
    backend's stable and canary dataclasses as dicts, and readiness is the ECS service's."""

    #: The backend's stable-version dataclass, and its provisioning and lookup of a canary.
    _stable_type: Callable[..., Any]
    _provision: Callable[..., Any]
    _find: Callable[..., Any]
    #: The record field naming a version to the router, and its key in `describe`.
    _target_field: str
    _target_key: str

    def __init__(self, settings: ServiceConfig, clients: AwsClients) -> None:
        self.s, self.clients = settings, clients

    def provision(self, stable: Record, *, name: str, image: str, deployment_id: str) -> Record:
        canary = self._provision(
            self.clients,
            self._stable_type(**stable),
            name=name,
            image=image,
            deployment_id=deployment_id,
        )
        return asdict(canary)

    def find_canary(self, stable: Record, *, name: str) -> Record | None:
        found = self._find(self.clients, self._stable_type(**stable), name=name)
        return asdict(found) if found else None

    def readiness(self, canary: Record) -> Readiness:
        return canary_readiness(
            self.clients, cluster=self.s.cluster, ecs_service_name=canary["ecs_service_name"]
        )

    def check_canary(self, canary: Record) -> None:
        # DescribeServices: a missing or inactive ECS service raises AwsStepError by itself.
        self.readiness(canary)
        if not self._target_exists(canary):
            name = self.target(canary)
            raise AwsStepError(f"The canary's {self._target_key.replace('_', ' ')} {name} is gone.")

    def _target_exists(self, canary: Record) -> bool:
        raise NotImplementedError

    def target(self, version: Record) -> str:
        return str(version[self._target_field])

    def describe(self, version: Record) -> dict[str, Any]:
        return {
            self._target_key: version.get(self._target_field),
            "ecs_service": version.get("ecs_service_name"),
            "task_definition": str(version.get("task_definition_arn", "")).rsplit("/", 1)[-1],
        }


class AppMeshBackend(_EcsBackend):
    """App Mesh route weights between virtual nodes, each backed by an ECS service."""

    _stable_type = StableVersion
    _provision = staticmethod(provision_canary)
    _find = staticmethod(find_canary)
    _target_field = _target_key = "virtual_node"

    def _target_exists(self, canary: Record) -> bool:
        try:
            self.clients.appmesh.describe_virtual_node(
                meshName=self.s.mesh or "", virtualNodeName=canary["virtual_node"]
            )
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def discover(self) -> Record:
        s = self.s
        return asdict(
            discover_stable(
                self.clients,
                cluster=s.cluster,
                mesh=s.mesh or "",
                virtual_router=s.virtual_router or "",
                route=s.route or "",
            )
        )

    def router(self) -> TrafficRouter:
        s = self.s
        return AppMeshRouter(
            self.clients.appmesh, s.mesh or "", s.virtual_router or "", s.route or ""
        )

    def counts(
        self,
        stable: Record,
        canary: Record,
        *,
        start: datetime,
        end: datetime,
    ) -> tuple[Counts, Counts]:
        s = self.s
        return fetch_counts(
            self.clients.cloudwatch,
            s.metrics,
            canary=Target(s.cluster, stable["family"], canary["virtual_node"]),
            stable=Target(s.cluster, stable["family"], stable["virtual_node"]),
            start=start,
            end=end,
            period_s=s.metric_period,
        )

    def remove_canary(self, stable: Record, canary: Record, *, keep: bool) -> list[str]:
        return remove_canary(
            self.clients,
            cluster=self.s.cluster,
            canary=Canary(**canary),
            mesh=self.s.mesh or "",
            keep=keep,
        )

    def retire_stable(self, stable: Record, canary: Record) -> list[str]:
        return retire_stable(self.clients, StableVersion(**stable))

    def traffic_name(self) -> str:
        return f"route {self.s.route}"


class AlbBackend(_EcsBackend):
    """Weights of an ALB listener rule's forward action between target groups, each target group
    fed by one ECS service. Targets are target-group names."""

    _stable_type = AlbStableVersion
    _provision = staticmethod(provision_alb_canary)
    _find = staticmethod(find_alb_canary)
    _target_field, _target_key = "target_group_name", "target_group"

    def _target_exists(self, canary: Record) -> bool:
        try:
            self.clients.elbv2.describe_target_groups(TargetGroupArns=[canary["target_group_arn"]])
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def discover(self) -> Record:
        return asdict(
            discover_alb_stable(
                self.clients,
                cluster=self.s.cluster,
                listener_rule=self.s.listener_rule,
                listener=self.s.listener,
            )
        )

    def router(self) -> TrafficRouter:
        return AlbRouter(
            self.clients.elbv2, listener_rule=self.s.listener_rule, listener=self.s.listener
        )

    def counts(
        self,
        stable: Record,
        canary: Record,
        *,
        start: datetime,
        end: datetime,
    ) -> tuple[Counts, Counts]:
        s = self.s
        load_balancer = load_balancer_dimension(stable["load_balancer_arn"])

        def target(version: Record) -> AlbTarget:
            return AlbTarget(
                load_balancer=load_balancer,
                target_group=target_group_dimension(version["target_group_arn"]),
                target_group_name=version["target_group_name"],
                cluster=s.cluster,
            )

        return fetch_alb_counts(
            self.clients.cloudwatch,
            s.alb_metrics,
            canary=target(canary),
            stable=target(stable),
            start=start,
            end=end,
            period_s=s.metric_period,
        )

    def remove_canary(self, stable: Record, canary: Record, *, keep: bool) -> list[str]:
        return remove_alb_canary(
            self.clients, AlbStableVersion(**stable), AlbCanary(**canary), keep=keep
        )

    def retire_stable(self, stable: Record, canary: Record) -> list[str]:
        return retire_alb_stable(self.clients, AlbStableVersion(**stable))

    def traffic_name(self) -> str:
        return rule_label(listener_rule=self.s.listener_rule, listener=self.s.listener)


def backend_for(settings: ServiceConfig, clients: AwsClients) -> Backend:
    """The backend the service's `router` key names."""
    if settings.router == "appmesh":
        return AppMeshBackend(settings, clients)
    if settings.router == "alb":
        return AlbBackend(settings, clients)
    raise ValueError(f"router {settings.router!r} is not available")
