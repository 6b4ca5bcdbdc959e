"""App Mesh as a traffic backend: route weights between virtual nodes, each backed by an ECS
service with its own Cloud Map service."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from workers.analysis.templates import CODE_CLASSES, Version
from workers.aws.appmesh.discovery import discover_stable
from workers.aws.appmesh.provisioning import (
    find_canary,
    provision_canary,
    remove_canary,
    retire_stable,
)
from workers.aws.appmesh.router import AppMeshRouter
from workers.aws.base import EcsServiceBackend, own
from workers.aws.cloudwatch import CountsQuery, envoy_query, stable_only
from workers.aws.errors import is_not_found
from workers.aws.removal import Removal
from workers.domain.traffic import TrafficRouter
from workers.domain.versions import AppMeshCanary, AppMeshStable, CanaryRecord, StableRecord


def revision_of(task_definition_arn: str) -> str:
    """The revision of "arn:...:task-definition/payments:7" ("7"), as in TaskRevision."""
    return task_definition_arn.rsplit(":", 1)[-1]


class AppMeshBackend(EcsServiceBackend):
    """App Mesh route weights between virtual nodes, each backed by an ECS service."""

    _stable_type = AppMeshStable
    _provision = staticmethod(provision_canary)
    _find = staticmethod(find_canary)
    _target_field = _target_key = "virtual_node"

    def _target_exists(self, canary: CanaryRecord) -> bool:
        try:
            self.clients.appmesh.describe_virtual_node(
                meshName=self.s.mesh or "", virtualNodeName=own(canary, AppMeshCanary).virtual_node
            )
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def discover(self) -> StableRecord:
        s = self.s
        return discover_stable(
            self.clients,
            cluster=s.cluster,
            mesh=s.mesh or "",
            virtual_router=s.virtual_router or "",
            route=s.route or "",
        )

    def router(self) -> TrafficRouter:
        s = self.s
        return AppMeshRouter(
            self.clients.appmesh, s.mesh or "", s.virtual_router or "", s.route or ""
        )

    def count_query(self, stable: StableRecord, canary: CanaryRecord) -> CountsQuery:
        old = own(stable, AppMeshStable)
        return envoy_query(
            self.s.metrics,
            canary=self.version(old, own(canary, AppMeshCanary)),
            stable=self.version(old, old),
            period=self.s.metric_period,
        )

    def stable_query(self, stable: StableRecord) -> CountsQuery:
        old = own(stable, AppMeshStable)
        mine = self.version(old, old)
        return stable_only(
            envoy_query(self.s.metrics, canary=mine, stable=mine, period=self.s.metric_period)
        )

    def stable_series(self, stable: StableRecord) -> tuple[dict[str, Any], ...]:
        # Requests are the sum over the status classes: any class's series counts them.
        old = own(stable, AppMeshStable)
        version = self.version(old, old)
        return tuple(self.s.metrics.metric_for(version, c) for c in CODE_CLASSES)

    def version(self, stable: AppMeshStable, version: AppMeshStable | AppMeshCanary) -> Version:
        """How a version's Envoy counters are labelled (the canary shares the stable's family)."""
        return Version(
            cluster=self.s.cluster,
            family=stable.family,
            revision=revision_of(version.task_definition_arn),
            ecs_service=version.ecs_service_name,
            virtual_node=version.virtual_node,
        )

    def remove_canary(self, stable: StableRecord, canary: CanaryRecord, *, keep: bool) -> Removal:
        return remove_canary(
            self.clients,
            cluster=self.s.cluster,
            canary=own(canary, AppMeshCanary),
            mesh=self.s.mesh or "",
            keep=keep,
        )

    def retire_stable(self, stable: StableRecord, canary: CanaryRecord) -> Removal:
        return retire_stable(self.clients, own(stable, AppMeshStable))

    def traffic_name(self) -> str:
        return f"route {self.s.route}"
