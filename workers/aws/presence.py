"""Is each canary still there? The existence reads of many canaries, batched where AWS allows:
DescribeServices takes up to 10 services of one cluster, DescribeTargetGroups several ARNs.

A batch that AWS refuses as a whole because one of its members is gone (DescribeTargetGroups
raises TargetGroupNotFound for the whole call; DescribeServices a missing cluster) is split and
each member asked alone, so one deleted canary never fails the others' checks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from workers.aws.ecs import ECS_DESCRIBE_BATCH
from workers.aws.errors import describe_failure, is_not_found

log = logging.getLogger(__name__)

#: ARNs asked for in one DescribeTargetGroups. The API reference gives no maximum for
#: TargetGroupArns (only PageSize, 1..400); 20 is a doubt kept small on purpose.
TARGET_GROUPS_PER_CALL = 20


@dataclass(frozen=True)
class Presence:
    """What of one canary can be looked up in a batch: its ECS service, its target group."""

    cluster: str
    ecs_service: str = ""
    target_group_arn: str = ""
    #: How the target group is named to a person ("target group payments-4f2a9c1e").
    target_group_label: str = ""


def find_gone(clients: Any, canaries: Sequence[Presence]) -> list[str | None]:
    """For each canary, None when what it names exists (and its service is ACTIVE), else a
    sentence saying what is gone. Errors other than "not found" are raised."""
    gone: list[str | None] = [None] * len(canaries)
    _services(clients.ecs, canaries, gone)
    _target_groups(clients.elbv2, canaries, gone)
    return gone


def _services(ecs: Any, canaries: Sequence[Presence], gone: list[str | None]) -> None:
    by_cluster: dict[str, list[int]] = {}
    for i, c in enumerate(canaries):
        if c.ecs_service:
            by_cluster.setdefault(c.cluster, []).append(i)
    for cluster, members in by_cluster.items():
        for k in range(0, len(members), ECS_DESCRIBE_BATCH):
            chunk = members[k : k + ECS_DESCRIBE_BATCH]
            names = list(dict.fromkeys(canaries[i].ecs_service for i in chunk))
            try:
                found = ecs.describe_services(cluster=cluster, services=names)
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
                for i in chunk:
                    gone[i] = f"ECS cluster {cluster} does not exist ({describe_failure(exc)})."
                continue
            status: dict[str, str] = {}
            for service in found.get("services", []):
                name = str(service.get("serviceName"))
                # An ACTIVE service wins over a DRAINING or INACTIVE one of the same name.
                if status.get(name) != "ACTIVE":
                    status[name] = str(service.get("status"))
            for i in chunk:
                state = status.get(canaries[i].ecs_service, "missing")
                if state != "ACTIVE":
                    gone[i] = f"The canary's ECS service {canaries[i].ecs_service} is {state}."


def _target_groups(elbv2: Any, canaries: Sequence[Presence], gone: list[str | None]) -> None:
    members = [i for i, c in enumerate(canaries) if c.target_group_arn and gone[i] is None]
    for k in range(0, len(members), TARGET_GROUPS_PER_CALL):
        chunk = members[k : k + TARGET_GROUPS_PER_CALL]
        missing = _missing_groups(elbv2, [canaries[i].target_group_arn for i in chunk])
        for i in chunk:
            if canaries[i].target_group_arn in missing:
                label = canaries[i].target_group_label or canaries[i].target_group_arn
                gone[i] = f"The canary's target group {label} is gone."


def _missing_groups(elbv2: Any, arns: list[str]) -> set[str]:
    """The ARNs of `arns` that name no target group. One call; split when it fails as a whole."""
    wanted = list(dict.fromkeys(arns))
    try:
        found = elbv2.describe_target_groups(TargetGroupArns=wanted)
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        if len(wanted) == 1:
            return set(wanted)
        # TargetGroupNotFound fails the whole call: ask each alone (one missing costs n calls,
        # only while a canary is gone, and is then rolled back).
        log.info("DescribeTargetGroups of %d failed (%s): asking each", len(wanted), exc)
        return {arn for arn in wanted if _missing_groups(elbv2, [arn])}
    present = {str(g.get("TargetGroupArn")) for g in found.get("TargetGroups", [])}
    return {arn for arn in wanted if arn not in present}
