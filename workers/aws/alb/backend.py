"""An ALB listener rule (or listener default action) as a traffic backend: weights of its
forward action between target groups, each fed by one ECS service."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from workers.analysis.judge import Counts
from workers.aws.alb.discovery import AlbStableVersion, discover_alb_stable
from workers.aws.alb.provisioning import (
    AlbCanary,
    find_alb_canary,
    provision_alb_canary,
    remove_alb_canary,
    retire_alb_stable,
)
from workers.aws.alb.router import (
    AlbRouter,
    load_balancer_dimension,
    rule_label,
    target_group_dimension,
)
from workers.aws.base import EcsServiceBackend, Record
from workers.aws.cloudwatch import AlbTarget, fetch_alb_counts
from workers.aws.errors import is_not_found
from workers.aws.removal import Removal
from workers.domain.traffic import TrafficRouter


class AlbBackend(EcsServiceBackend):
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

    def stable_series(self, stable: Record) -> tuple[dict[str, Any], ...]:
        # The requests metric: ALB error counts are published only when non-zero (docs/ALB.md).
        return (
            self.s.alb_metrics.metric_for(
                self.s.alb_metrics.requests_metric,
                load_balancer=load_balancer_dimension(stable["load_balancer_arn"]),
                target_group=target_group_dimension(stable["target_group_arn"]),
                target_group_name=stable["target_group_name"],
                cluster=self.s.cluster,
            ),
        )

    def remove_canary(self, stable: Record, canary: Record, *, keep: bool) -> Removal:
        return Removal(
            problems=remove_alb_canary(
                self.clients, AlbStableVersion(**stable), AlbCanary(**canary), keep=keep
            )
        )

    def retire_stable(self, stable: Record, canary: Record) -> Removal:
        # Nothing of an ALB version drains: DeleteTargetGroup only needs the rule to forward to
        # it no more, which set_weights has seen to.
        return Removal(problems=retire_alb_stable(self.clients, AlbStableVersion(**stable)))

    def traffic_name(self) -> str:
        return rule_label(listener_rule=self.s.listener_rule, listener=self.s.listener)
