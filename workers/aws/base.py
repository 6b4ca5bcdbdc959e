"""The traffic-backend interface: how the engine finds, clones, shifts, measures and removes a
version, and the part every backend shares (each version is an ECS service).

The engine speaks only to `Backend`; `workers.aws.appmesh` and `workers.aws.alb` implement it
(`workers.aws.backends.backend_for` picks one). A backend takes and returns what it learns about
the stable and the canary as its own typed records (workers.domain.versions), stored as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

from workers.analysis.judge import Counts
from workers.aws.clients import AwsClients
from workers.aws.cloudwatch import (
    CountsQuery,
    CountsRead,
    Measurement,
    QueryFailed,
    alarms_firing,
    fetch_many,
    fetch_one,
    series_present,
)
from workers.aws.ecs import Readiness, canary_readiness
from workers.aws.errors import AwsStepError
from workers.aws.presence import Presence
from workers.aws.removal import Removal
from workers.domain.catalogue import ServiceConfig
from workers.domain.traffic import TrafficRouter
from workers.domain.versions import CanaryBase, CanaryRecord, StableBase, StableRecord

_Version = TypeVar("_Version", bound=StableBase | CanaryBase)


def own(record: StableBase | CanaryBase, kind: type[_Version]) -> _Version:
    """The record as the backend's own type (a deployment's records are those its backend made:
    another router's is a clear error, not a missing field)."""
    if not isinstance(record, kind):
        raise ValueError(f"expected a {kind.__name__} record, got {type(record).__name__}")
    return record


class Backend(Protocol):
    """One way of running two versions side by side and splitting traffic between them."""

    #: True when AWS shifts the traffic itself and the engine only lets it go on (router ecs:
    #: `ManagedBackend`); False when the engine sets the weights through `router()`.
    shifts_traffic_itself: bool

    def discover(self) -> StableRecord:
        """The stable version, found from AWS (the route's or rule's heaviest target)."""

    def provision(
        self, stable: StableRecord, *, name: str, image: str, deployment_id: str
    ) -> CanaryRecord:
        """Create (or find) the canary beside the stable; idempotent."""

    def find_canary(self, stable: StableRecord, *, name: str) -> CanaryRecord | None:
        """What exists of a canary that was being created when its job died."""

    def readiness(self, canary: CanaryRecord) -> Readiness:
        """Whether the canary's ECS tasks are running and steady."""

    def check_canary(self, canary: CanaryRecord) -> None:
        """Raise AwsStepError naming what of the canary is gone (deleted by someone else)."""

    def presence(self, canary: CanaryRecord) -> Presence:
        """What of the canary's existence can be looked up together with other canaries'
        (workers.aws.presence); `check_rest` looks at the rest."""

    def check_rest(self, canary: CanaryRecord) -> None:
        """`check_canary` less what `presence` names (AwsStepError when something is gone)."""

    def router(self) -> TrafficRouter:
        """Reads and sets the weights of the targets."""

    def target(self, version: StableRecord | CanaryRecord) -> str:
        """The router's name for a version (stable or canary record)."""

    def counts(
        self,
        stable: StableRecord,
        canary: CanaryRecord,
        *,
        start: datetime,
        end: datetime,
    ) -> tuple[Counts, Counts]:
        """Cumulative (canary, stable) requests and 5xx between start and end."""

    def count_query(self, stable: StableRecord, canary: CanaryRecord) -> CountsQuery | None:
        """The CloudWatch queries `measure` reads (None when no metric tells the versions apart):
        the counts and, where the backend publishes latency and the catalogue judges it, each
        side's latency at the percentile per period; so that the reads of checks due together
        share one GetMetricData (workers.engine.batch)."""

    def measure(
        self,
        stable: StableRecord,
        canary: CanaryRecord,
        *,
        start: datetime,
        end: datetime,
    ) -> Measurement:
        """The counts of `counts` and, where the backend publishes latency, each whole period's
        latency at the catalogue's percentile, from the same GetMetricData call."""

    def remove_canary(self, stable: StableRecord, canary: CanaryRecord, *, keep: bool) -> Removal:
        """Delete the canary (or scale it to 0 with `keep`): what a person must clean up, and
        what AWS is still draining (call again later)."""

    def retire_stable(self, stable: StableRecord, canary: CanaryRecord) -> Removal:
        """After promotion: remove the old version: what a person must clean up, and what AWS
        is still draining (call again later)."""

    def describe(self, version: StableRecord | CanaryRecord) -> dict[str, Any]:
        """What a person reads about a version (names of its resources)."""

    def traffic_name(self) -> str:
        """What a person calls the thing whose weights move ("route payments-route")."""

    def alarms_firing(self, names: Sequence[str]) -> tuple[str, ...]:
        """The configured CloudWatch alarms now in ALARM (a missing one raises ValueError)."""

    def stable_series(self, stable: StableRecord) -> tuple[dict[str, Any], ...]:
        """The CloudWatch metrics (boto3 `Metric`s) that count the stable's requests, exactly as
        a check queries them; empty when no metric tells the versions apart (alarms only)."""

    def series_present(
        self, metrics: Sequence[dict[str, Any]], *, start: datetime, end: datetime
    ) -> bool:
        """True when any of `metrics` has a data point between start and end (read-only)."""

    def judged_by_alarms_only(self, stable: StableRecord) -> bool:
        """True when no published metric tells the two versions apart."""

    def stable_query(self, stable: StableRecord) -> CountsQuery | None:
        """The stable's side of `count_query` alone, before any canary exists (None when no
        metric tells the versions apart)."""

    def stable_counts(
        self, stable: StableRecord, *, start: datetime, end: datetime
    ) -> Counts | None:
        """The stable's requests and 5xx between start and end through `stable_query` (one
        GetMetricData; QueryFailed when CloudWatch answers a query short), None without one."""


@dataclass(frozen=True)
class Progress:
    """Where a rollout AWS runs itself stands (router ecs: one service deployment)."""

    #: The new version's share of production traffic now, in percent.
    weight: float
    #: The id of the pause waiting for CONTINUE or ROLLBACK, None when nothing waits.
    awaiting_hook: str | None
    #: AWS's own words when it rolled the rollout back or stopped it; None while it goes on.
    rolled_back: str | None = None
    #: The rollout finished: all traffic on the new version and the old one removed.
    done: bool = False


class ManagedBackend(Backend, Protocol):
    """A backend whose traffic AWS shifts itself between pauses (router ecs)."""

    def progress(self, canary: CanaryRecord) -> Progress:
        """Where the canary's rollout stands now."""

    def continue_rollout(self, canary: CanaryRecord, hook_id: str) -> None:
        """Let the paused rollout take its next traffic step (the pause `hook_id`)."""


class EcsServiceBackend:
    """What both backends do alike, each version being an ECS service: the records are the
    backend's own stable and canary types, and readiness is the ECS service's."""

    #: The backend's stable-version type, and its provisioning and lookup of a canary.
    _stable_type: type[StableBase]
    _provision: Callable[..., Any]
    _find: Callable[..., Any]
    #: The record field naming a version to the router, and its key in `describe`.
    _target_field: str
    _target_key: str
    #: The engine sets these backends' weights itself.
    shifts_traffic_itself = False

    def __init__(self, settings: ServiceConfig, clients: AwsClients) -> None:
        self.s, self.clients = settings, clients

    def provision(
        self, stable: StableRecord, *, name: str, image: str, deployment_id: str
    ) -> CanaryRecord:
        canary: CanaryRecord = self._provision(
            self.clients,
            own(stable, self._stable_type),
            name=name,
            image=image,
            deployment_id=deployment_id,
        )
        return canary

    def find_canary(self, stable: StableRecord, *, name: str) -> CanaryRecord | None:
        found: CanaryRecord | None = self._find(
            self.clients, own(stable, self._stable_type), name=name
        )
        return found

    def readiness(self, canary: CanaryRecord) -> Readiness:
        return canary_readiness(
            self.clients, cluster=self.s.cluster, ecs_service_name=canary.ecs_service_name
        )

    def check_canary(self, canary: CanaryRecord) -> None:
        # DescribeServices: a missing or inactive ECS service raises AwsStepError by itself.
        self.readiness(canary)
        self.check_rest(canary)

    def presence(self, canary: CanaryRecord) -> Presence:
        return Presence(cluster=self.s.cluster, ecs_service=canary.ecs_service_name)

    def check_rest(self, canary: CanaryRecord) -> None:
        if not self._target_exists(canary):
            name = self.target(canary)
            raise AwsStepError(f"The canary's {self._target_key.replace('_', ' ')} {name} is gone.")

    def _target_exists(self, canary: CanaryRecord) -> bool:
        raise NotImplementedError

    def target(self, version: StableRecord | CanaryRecord) -> str:
        return str(getattr(version, self._target_field))

    def describe(self, version: StableRecord | CanaryRecord) -> dict[str, Any]:
        return {
            self._target_key: getattr(version, self._target_field, None),
            "ecs_service": version.ecs_service_name,
            "task_definition": version.task_definition_arn.rsplit("/", 1)[-1],
        }

    def count_query(self, stable: StableRecord, canary: CanaryRecord) -> CountsQuery | None:
        raise NotImplementedError

    def stable_query(self, stable: StableRecord) -> CountsQuery | None:
        raise NotImplementedError

    def stable_counts(
        self, stable: StableRecord, *, start: datetime, end: datetime
    ) -> Counts | None:
        query = self.stable_query(stable)
        if query is None:
            return None
        # Not lenient: a query answered short gives no baseline rather than a wrong one.
        found = fetch_many(self.clients.cloudwatch, [CountsRead(query, start, end)])[0]
        if isinstance(found, QueryFailed):
            raise found
        return found.stable

    def counts(
        self,
        stable: StableRecord,
        canary: CanaryRecord,
        *,
        start: datetime,
        end: datetime,
    ) -> tuple[Counts, Counts]:
        query = self.count_query(stable, canary)
        if query is None:
            return Counts(0, 0), Counts(0, 0)
        # The counts alone: no latency queries.
        found = fetch_one(
            self.clients.cloudwatch, CountsRead(replace(query, latency=None), start, end)
        )
        return found.canary, found.stable

    def measure(
        self,
        stable: StableRecord,
        canary: CanaryRecord,
        *,
        start: datetime,
        end: datetime,
    ) -> Measurement:
        # Latency where `count_query` asks for it (ALB-backed backends): App Mesh's Envoy latency
        # is a Prometheus histogram, which the CloudWatch agent drops (docs/METRICS.md).
        query = self.count_query(stable, canary)
        if query is None:
            return Measurement(Counts(0, 0), Counts(0, 0))
        return fetch_one(self.clients.cloudwatch, CountsRead(query, start, end))

    def alarms_firing(self, names: Sequence[str]) -> tuple[str, ...]:
        return alarms_firing(self.clients.cloudwatch, names) if names else ()

    def series_present(
        self, metrics: Sequence[dict[str, Any]], *, start: datetime, end: datetime
    ) -> bool:
        return series_present(
            self.clients.cloudwatch, metrics, start=start, end=end, period_s=self.s.metric_period
        )

    def judged_by_alarms_only(self, stable: StableRecord) -> bool:
        return False
