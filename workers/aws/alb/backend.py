"""An ALB listener rule (or listener default action) as a traffic backend: weights of its
forward action between target groups, each fed by one ECS service."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from workers.aws.alb.discovery import discover_alb_stable
from workers.aws.alb.provisioning import (
    find_alb_canary,
    provision_alb_canary,
    remove_alb_canary,
    retire_alb_stable,
)
from workers.aws.alb.router import (
    AlbRouter,
    alb_target,
    load_balancer_dimension,
    rule_label,
    target_group_dimension,
)
from workers.aws.base import EcsServiceBackend, own
from workers.aws.cloudwatch import AlbTarget, CountsQuery, alb_query, stable_only
from workers.aws.errors import is_not_found
from workers.aws.presence import Presence
from workers.aws.removal import Removal
from workers.domain.traffic import TrafficRouter
from workers.domain.versions import AlbCanary, AlbStable, CanaryRecord, StableRecord


class AlbBackend(EcsServiceBackend):
    """Weights of an ALB listener rule's forward action between target groups, each target group
    fed by one ECS service. Targets are target-group names."""

    _stable_type = AlbStable
    _provision = staticmethod(provision_alb_canary)
    _find = staticmethod(find_alb_canary)
    _target_field, _target_key = "target_group_name", "target_group"

    def _target_exists(self, canary: CanaryRecord) -> bool:
        arn = own(canary, AlbCanary).target_group_arn
        try:
            self.clients.elbv2.describe_target_groups(TargetGroupArns=[arn])
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    def presence(self, canary: CanaryRecord) -> Presence:
        own_canary = own(canary, AlbCanary)
        return Presence(
            cluster=self.s.cluster,
            ecs_service=own_canary.ecs_service_name,
            target_group_arn=own_canary.target_group_arn,
            target_group_label=own_canary.target_group_name,
        )

    def check_rest(self, canary: CanaryRecord) -> None:
        return None  # the ECS service and the target group are both in `presence`

    def discover(self) -> StableRecord:
        return discover_alb_stable(
            self.clients,
            cluster=self.s.cluster,
            listener_rule=self.s.listener_rule,
            listener=self.s.listener,
        )

    def router(self) -> TrafficRouter:
        return AlbRouter(
            self.clients.elbv2, listener_rule=self.s.listener_rule, listener=self.s.listener
        )

    def count_query(self, stable: StableRecord, canary: CanaryRecord) -> CountsQuery:
        s, old = self.s, own(stable, AlbStable)
        return alb_query(
            s.alb_metrics,
            canary=self._target_of(old, own(canary, AlbCanary)),
            stable=self._target_of(old, old),
            period=s.metric_period,
            # The target groups' TargetResponseTime at the percentile, in the counts' own call.
            percentile=s.latency_limits.percentile if s.latency_limits.enabled else None,
        )

    def stable_query(self, stable: StableRecord) -> CountsQuery:
        old = own(stable, AlbStable)
        mine = self._target_of(old, old)
        return stable_only(
            alb_query(self.s.alb_metrics, canary=mine, stable=mine, period=self.s.metric_period)
        )

    def _target_of(self, stable: AlbStable, version: AlbStable | AlbCanary) -> AlbTarget:
        return alb_target(
            stable.load_balancer_arn,
            version.target_group_arn,
            version.target_group_name,
            self.s.cluster,
        )

    def stable_series(self, stable: StableRecord) -> tuple[dict[str, Any], ...]:
        # The requests metric: ALB error counts are published only when non-zero (docs/ALB.md).
        old = own(stable, AlbStable)
        return (
            self.s.alb_metrics.metric_for(
                self.s.alb_metrics.requests_metric,
                load_balancer=load_balancer_dimension(old.load_balancer_arn),
                target_group=target_group_dimension(old.target_group_arn),
                target_group_name=old.target_group_name,
                cluster=self.s.cluster,
            ),
        )

    def remove_canary(self, stable: StableRecord, canary: CanaryRecord, *, keep: bool) -> Removal:
        return Removal(
            problems=remove_alb_canary(
                self.clients, own(stable, AlbStable), own(canary, AlbCanary), keep=keep
            )
        )

    def retire_stable(self, stable: StableRecord, canary: CanaryRecord) -> Removal:
        # Nothing of an ALB version drains: DeleteTargetGroup only needs the rule to forward to
        # it no more, which set_weights has seen to.
        return Removal(problems=retire_alb_stable(self.clients, own(stable, AlbStable)))

    def traffic_name(self) -> str:
        return rule_label(listener_rule=self.s.listener_rule, listener=self.s.listener)
