"""Router `ecs`: the ECS service's own CANARY / LINEAR deployment, driven through its pauses.

A deploy registers the canary's task-definition revision and calls UpdateService with the plan
of workers.domain.ecs_plan (a PAUSE hook before every traffic shift). ECS then shifts and restores
the traffic itself: the engine follows the service deployment (`progress`), judges each step,
and lets ECS take the next one (`continue_rollout`: ContinueServiceDeployment CONTINUE). The
router this backend gives the engine's rollback and tear-down steps does not set weights: it
rolls the deployment back (ContinueServiceDeployment ROLLBACK at a pause, StopServiceDeployment
ROLLBACK outside one) or checks that ECS completed it. See docs/ECS.md for the documented
lifecycle and its sources.
"""

from __future__ import annotations

import logging
from typing import Any, TypedDict

from botocore.exceptions import ClientError

from workers.aws.alb.router import (
    AlbRouter,
    alb_target,
    load_balancer_dimension,
    target_group_dimension,
    target_group_name,
)
from workers.aws.base import EcsServiceBackend, Progress, own
from workers.aws.clients import AwsClients
from workers.aws.cloning import ensure_canary_task_definition
from workers.aws.cloudwatch import CountsQuery, alb_query, stable_only
from workers.aws.ecs import (
    Readiness,
    check_name,
    deregister_canary_revision,
    describe_service,
    describe_task_definition,
    first_app_container,
)
from workers.aws.errors import AwsStepError, RolledBackByAws, describe_failure
from workers.aws.presence import Presence
from workers.aws.removal import Removal
from workers.domain.catalogue import ServiceConfig
from workers.domain.ecs_plan import plan_for_service
from workers.domain.traffic import TrafficRouter, Weights
from workers.domain.versions import CanaryRecord, EcsCanary, EcsStable, StableRecord

logger = logging.getLogger(__name__)

#: ServiceDeployment statuses of a deployment still under way (API_ServiceDeployment).
UNDER_WAY = ("PENDING", "IN_PROGRESS")
#: ...of one ECS is rolling back or stopped (traffic back on, or going back to, the source).
ROLLED_BACK = (
    "ROLLBACK_REQUESTED",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_SUCCESSFUL",
    "ROLLBACK_FAILED",
    "STOP_REQUESTED",
    "STOPPED",
)


class _TargetGroups(TypedDict, total=False):
    """The ALB exposure fields of an EcsStable (none when the service is not behind an ALB)."""

    listener_rule: str
    target_group_arn: str
    target_group_name: str
    canary_target_group_arn: str
    canary_target_group_name: str


def _td_name(arn: str) -> str:
    """ "payments:7" of a task definition ARN: how a revision is named in weights and messages."""
    return arn.rsplit("/", 1)[-1]


class EcsDeployments:
    """The service-deployment calls of one ECS service (the new ECS API of late 2025)."""

    def __init__(self, clients: AwsClients, *, cluster: str, service: str) -> None:
        self.ecs, self.cluster, self.service = clients.ecs, cluster, service

    def describe(self, arn: str) -> dict[str, Any]:
        """DescribeServiceDeployments of one ARN; AwsStepError when ECS no longer knows it."""
        found = self.ecs.describe_service_deployments(serviceDeploymentArns=[arn])
        deployments = found.get("serviceDeployments") or []
        if not deployments:
            raise AwsStepError(f"ECS no longer knows the service deployment {arn}.")
        return dict(deployments[0])

    def newest(self, *, statuses: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The service's deployments, newest first (ListServiceDeployments), optionally by
        status."""
        request: dict[str, Any] = {"cluster": self.cluster, "service": self.service}
        if statuses:
            request["status"] = list(statuses)
        found: list[dict[str, Any]] = []
        while True:  # botocore has no paginator for it
            page = self.ecs.list_service_deployments(**request)
            found += page.get("serviceDeployments") or []
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
        # The API reference documents no order (API_ListServiceDeployments): sorted here.
        return sorted(found, key=lambda d: d.get("createdAt") or d.get("startedAt"), reverse=True)

    def task_definition_of(self, revision_arn: str) -> str | None:
        """The task definition a service revision runs (DescribeServiceRevisions)."""
        found = self.ecs.describe_service_revisions(serviceRevisionArns=[revision_arn])
        revisions = found.get("serviceRevisions") or []
        return str(revisions[0]["taskDefinition"]) if revisions else None

    def under_way_for(self, task_definition_arn: str) -> str | None:
        """The ARN of a deployment under way that brings `task_definition_arn` in, if any."""
        for brief in self.newest(statuses=UNDER_WAY):
            target = brief.get("targetServiceRevisionArn")
            if target and self.task_definition_of(target) == task_definition_arn:
                return str(brief["serviceDeploymentArn"])
        return None


def ecs_reason(deployment: dict[str, Any]) -> str:
    """ECS's own words for a rolled-back or stopped deployment."""
    rollback = deployment.get("rollback") or {}
    reason = deployment.get("statusReason") or rollback.get("reason")
    alarms = (deployment.get("alarms") or {}).get("triggeredAlarmNames") or []
    text = reason or f"service deployment {str(deployment.get('status', '')).lower()}"
    if alarms and not any(a in text for a in alarms):
        text += f" (alarms: {', '.join(alarms)})"
    return f"ECS rolled the deployment back: {text}"


def progress_of(deployment: dict[str, Any]) -> Progress:
    """Where a DescribeServiceDeployments answer stands (pure)."""
    target = deployment.get("targetServiceRevision") or {}
    weight = float(target.get("requestedProductionTrafficWeight") or 0.0)
    status = str(deployment.get("status", ""))
    awaiting = next(
        (
            str(h["hookId"])
            for h in deployment.get("lifecycleHookDetails") or []
            if h.get("status") == "AWAITING_ACTION" and h.get("hookId")
        ),
        None,
    )
    return Progress(
        weight=weight,
        awaiting_hook=awaiting if status in UNDER_WAY else None,
        rolled_back=ecs_reason(deployment) if status in ROLLED_BACK else None,
        done=status == "SUCCESSFUL",
    )


class EcsDeploymentRouter:
    """The `TrafficRouter` of router ecs: ECS holds the weights, so "all traffic to X" is done by
    rolling the deployment back (X is the old revision) or by checking ECS completed it."""

    def __init__(self, clients: AwsClients, deployments: EcsDeployments) -> None:
        self.clients, self.deployments = clients, deployments

    def _latest(self) -> dict[str, Any] | None:
        newest = self.deployments.newest()
        if not newest:
            return None
        return self.deployments.describe(str(newest[0]["serviceDeploymentArn"]))

    def _names(self, deployment: dict[str, Any]) -> tuple[str, str]:
        sources = deployment.get("sourceServiceRevisions") or [{}]
        target = (deployment.get("targetServiceRevision") or {}).get("arn", "")
        source = sources[0].get("arn", "")
        lookup = self.deployments.task_definition_of
        return _td_name(lookup(source) or "") if source else "", _td_name(lookup(target) or "")

    def read_weights(self) -> Weights:
        deployment = self._latest()
        if deployment is None:
            d = self.deployments
            service = describe_service(self.clients, d.cluster, d.service) or {}
            return {_td_name(str(service.get("taskDefinition", d.service))): 100}
        source, target = self._names(deployment)
        weight = round(progress_of(deployment).weight)
        if weight >= 100:
            return {target: 100}
        return {source: 100 - weight, target: weight} if weight else {source: 100}

    def set_weights(self, weights: Weights) -> bool:
        whole = [name for name, w in weights.items() if w == 100]
        if len(whole) != 1:
            raise AwsStepError("ECS shifts the traffic itself: only all of it can be asked for.")
        deployment = self._latest()
        if deployment is None:
            return False
        source, target = self._names(deployment)
        status, arn = deployment.get("status"), str(deployment["serviceDeploymentArn"])
        if whole[0] == target:  # the tear-down after promotion: ECS must have got there
            if progress_of(deployment).weight < 100 or status in ROLLED_BACK:
                raise AwsStepError(
                    f"ECS has not put all traffic on {target}: its deployment is {status}."
                )
            return False
        # A rollback. ECS restores the old revision's traffic itself (and at once: both
        # revisions run until CLEAN_UP, docs/ECS.md "Rollback triggers").
        if status not in UNDER_WAY:
            if status == "SUCCESSFUL":
                raise AwsStepError(
                    f"ECS already completed the deployment of {target} and removed the old "
                    f"revision: deploy {whole[0]} again to go back."
                )
            return False  # rolled back or stopped already
        if source != whole[0]:
            # Not a deployment away from the stable asked for (someone else's, started while
            # this one failed before its own UpdateService): not this rollback's to stop.
            logger.warning(
                "ECS deployment %s starts from %s, not %s: left alone", arn, source, whole[0]
            )
            return False
        hook = progress_of(deployment).awaiting_hook
        ecs = self.deployments.ecs
        try:
            if hook:
                # At a pause ECS takes ROLLBACK as the answer to it (DG-Continue).
                ecs.continue_service_deployment(
                    serviceDeploymentArn=arn, hookId=hook, action="ROLLBACK"
                )
            else:
                ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
        except ClientError:
            # The pause may have ended (a timeout, ECS's own rollback) between the read and the
            # call: what counts is the state now.
            if progress_of(self.deployments.describe(arn)).rolled_back is None:
                raise
        logger.info("ECS deployment %s: rollback requested", arn)
        return True


class EcsNativeBackend(EcsServiceBackend):
    """ECS's own canary / linear deployments of one service. Targets are task definitions
    ("payments:7")."""

    shifts_traffic_itself = True
    _target_field, _target_key = "task_definition_arn", "task_definition"

    def __init__(self, settings: ServiceConfig, clients: AwsClients) -> None:
        super().__init__(settings, clients)
        self.deployments = EcsDeployments(
            clients, cluster=settings.cluster, service=settings.service or ""
        )

    # discovery and provisioning ------------------------------------------------------------
    def discover(self) -> StableRecord:
        s = self.s
        name = s.service or ""
        service = describe_service(self.clients, s.cluster, name)
        if service is None or service.get("status") != "ACTIVE":
            raise AwsStepError(f"ECS service {name} is not active in cluster {s.cluster}.")
        controller = (service.get("deploymentController") or {}).get("type", "ECS")
        if controller != "ECS":
            raise AwsStepError(
                f"ECS service {name} uses the {controller} deployment controller; router ecs "
                "needs ECS's own (deploymentController ECS) for canary and linear deployments."
            )
        task_definition = describe_task_definition(self.clients, service["taskDefinition"])
        containers = task_definition.get("containerDefinitions", [])
        balancer: dict[str, Any] = next(
            (lb for lb in service.get("loadBalancers") or [] if lb.get("targetGroupArn")), {}
        )
        # The load-balanced container; without a load balancer the first one serving a port (a
        # log router or other sidecar serves none), else the first that is not Envoy.
        container = (
            next((c for c in containers if c.get("name") == balancer.get("containerName")), None)
            or next((c for c in containers if c.get("portMappings")), None)
            or first_app_container(containers)
        )
        if container is None:
            raise AwsStepError(f"Task definition {task_definition['family']} has no app container.")
        groups = self._target_groups(balancer)
        if not groups and not s.alarms:
            # No data is never a pass: without the two target groups nothing tells the revisions
            # apart, and without alarms nothing would judge a step.
            raise AwsStepError(
                f"ECS service {name} is not behind an ALB with an alternate target group, so no "
                "metric tells its revisions apart: router ecs then judges by the catalogue's "
                "`alarms`, and it has none."
            )
        stable = EcsStable(
            cluster=s.cluster,
            ecs_service_name=service["serviceName"],
            ecs_service_arn=service["serviceArn"],
            task_definition_arn=task_definition["taskDefinitionArn"],
            family=task_definition["family"],
            image=container["image"],
            container_name=container["name"],
            desired_count=int(service.get("desiredCount", 0)),
            **groups,
        )
        return stable

    def _target_groups(self, balancer: dict[str, Any]) -> _TargetGroups:
        """Which of the two target groups serves the running revision: the one the production
        listener rule sends traffic to (ECS swaps their roles between deployments, so it is read
        every time, never assumed: docs/ECS.md "Which metrics tell the two revisions apart")."""
        advanced = balancer.get("advancedConfiguration") or {}
        primary, alternate = balancer.get("targetGroupArn"), advanced.get("alternateTargetGroupArn")
        rule = advanced.get("productionListenerRule", "")
        if not primary or not alternate:
            return {}
        stable, canary = primary, alternate
        if rule:
            weights = AlbRouter(self.clients.elbv2, listener_rule=rule).read_target_groups()
            if weights.get(alternate, 0) > 0 and not weights.get(primary, 0):
                stable, canary = alternate, primary
            elif weights.get(alternate, 0) > 0:
                raise AwsStepError(
                    f"The production listener rule of ECS service {self.s.service} already "
                    "splits traffic between its two target groups; a deployment is under way."
                )
        return {
            "listener_rule": rule,
            "target_group_arn": stable,
            "target_group_name": target_group_name(stable),
            "canary_target_group_arn": canary,
            "canary_target_group_name": target_group_name(canary),
        }

    def provision(
        self, stable: StableRecord, *, name: str, image: str, deployment_id: str
    ) -> CanaryRecord:
        """Register the new revision and start ECS's deployment of it; a re-run finds both."""
        check_name(name, deployment_id)
        old = own(stable, EcsStable)
        task_definition_arn = ensure_canary_task_definition(
            self.clients,
            old,
            name=name,
            image=image,
            deployment_id=deployment_id,
            app_container=old.container_name,
        )
        # Idempotent: a deployment of this very revision already under way is this one's (its
        # job died after UpdateService); a second UpdateService would not start another.
        arn = self.deployments.under_way_for(task_definition_arn)
        if arn is None:
            plan = plan_for_service(self.s)
            request = plan.update_service_request(
                cluster=old.cluster,
                service=old.ecs_service_name,
                task_definition=task_definition_arn,
            )
            try:
                self.clients.ecs.update_service(**request)
            except ClientError as exc:
                raise AwsStepError(
                    f"ECS refused to start the deployment of {_td_name(task_definition_arn)}: "
                    f"{describe_failure(exc)}."
                ) from exc
            arn = self.deployments.under_way_for(task_definition_arn)
        if arn is None:
            raise AwsStepError(
                f"UpdateService started no deployment of {_td_name(task_definition_arn)} on ECS "
                f"service {old.ecs_service_name}."
            )
        canary = EcsCanary(
            name=name,
            task_definition_arn=task_definition_arn,
            service_deployment_arn=arn,
            ecs_service_name=old.ecs_service_name,
            target_group_arn=old.canary_target_group_arn,
            target_group_name=old.canary_target_group_name,
        )
        return canary

    def find_canary(self, stable: StableRecord, *, name: str) -> CanaryRecord | None:
        # Only the task definition can be left behind: ECS removes the new revision's tasks
        # when it rolls back.
        return None

    # following the deployment ------------------------------------------------------------------
    def progress(self, canary: CanaryRecord) -> Progress:
        return progress_of(self.deployments.describe(own(canary, EcsCanary).service_deployment_arn))

    def continue_rollout(self, canary: CanaryRecord, hook_id: str) -> None:
        self.clients.ecs.continue_service_deployment(
            serviceDeploymentArn=own(canary, EcsCanary).service_deployment_arn,
            hookId=hook_id,
            action="CONTINUE",
        )

    def readiness(self, canary: CanaryRecord) -> Readiness:
        """Ready when the new revision's tasks run and ECS waits at its first pause."""
        deployment = self.deployments.describe(own(canary, EcsCanary).service_deployment_arn)
        progress = progress_of(deployment)
        if progress.rolled_back:
            raise RolledBackByAws(progress.rolled_back)
        target = deployment.get("targetServiceRevision") or {}
        running, desired = (
            int(target.get("runningTaskCount", 0)),
            int(target.get("requestedTaskCount", 0)),
        )
        ready = running >= desired > 0 and (progress.awaiting_hook is not None or progress.weight)
        return Readiness(
            running=running,
            desired=desired,
            rollout_state=str(deployment.get("lifecycleStage", "")),
            ready=bool(ready),
        )

    def check_canary(self, canary: CanaryRecord) -> None:
        progress = self.progress(canary)
        if progress.rolled_back:
            raise RolledBackByAws(progress.rolled_back)

    def presence(self, canary: CanaryRecord) -> Presence:
        # The ECS service and target groups are the stable's own: what can be gone or rolled
        # back is the service deployment, which `check_rest` follows.
        return Presence(cluster=self.s.cluster)

    def check_rest(self, canary: CanaryRecord) -> None:
        self.check_canary(canary)

    def router(self) -> TrafficRouter:
        return EcsDeploymentRouter(self.clients, self.deployments)

    def traffic_name(self) -> str:
        return f"ECS service {self.s.service}"

    def target(self, version: StableRecord | CanaryRecord) -> str:
        return _td_name(version.task_definition_arn)

    # judging ---------------------------------------------------------------------------------
    def count_query(self, stable: StableRecord, canary: CanaryRecord) -> CountsQuery | None:
        """The two target groups' ALB counters and, when the catalogue judges latency, their
        TargetResponseTime at the percentile; None when the service is not behind an ALB (no
        published metric tells the revisions apart: judged by alarms only; Service Connect's
        latency is per ECS service, and both revisions are the same service: docs/METRICS.md)."""
        old, new = own(stable, EcsStable), own(canary, EcsCanary)
        if not old.listener_rule or not new.target_group_arn:
            return None
        s, rule = self.s, old.listener_rule
        return alb_query(
            s.alb_metrics,
            canary=alb_target(rule, new.target_group_arn, new.target_group_name, s.cluster),
            stable=alb_target(rule, old.target_group_arn, old.target_group_name, s.cluster),
            period=s.metric_period,
            percentile=s.latency_limits.percentile if s.latency_limits.enabled else None,
        )

    def stable_query(self, stable: StableRecord) -> CountsQuery | None:
        old = own(stable, EcsStable)
        if not old.listener_rule:
            return None  # judged by alarms only: no series counts the stable alone
        mine = alb_target(
            old.listener_rule, old.target_group_arn, old.target_group_name, self.s.cluster
        )
        return stable_only(
            alb_query(self.s.alb_metrics, canary=mine, stable=mine, period=self.s.metric_period)
        )

    def stable_series(self, stable: StableRecord) -> tuple[dict[str, Any], ...]:
        old = own(stable, EcsStable)
        if not old.listener_rule:
            return ()  # judged by alarms only: no series to look for
        return (
            self.s.alb_metrics.metric_for(
                self.s.alb_metrics.requests_metric,
                load_balancer=load_balancer_dimension(old.listener_rule),
                target_group=target_group_dimension(old.target_group_arn),
                target_group_name=old.target_group_name,
                cluster=self.s.cluster,
            ),
        )

    def judged_by_alarms_only(self, stable: StableRecord) -> bool:
        """True when no metric tells the two revisions apart (not behind an ALB)."""
        return not own(stable, EcsStable).listener_rule

    # the end -----------------------------------------------------------------------------------
    def remove_canary(self, stable: StableRecord, canary: CanaryRecord, *, keep: bool) -> Removal:
        # ECS stopped the new revision's tasks when it rolled back; what is left is the
        # registered task definition, kept for diagnosis with keep_failed_canary.
        if keep:
            return Removal()
        problems = deregister_canary_revision(
            self.clients, canary.task_definition_arn, canary_name=canary.name
        )
        return Removal(problems=problems)

    def retire_stable(self, stable: StableRecord, canary: CanaryRecord) -> Removal:
        # ECS removed the old revision's tasks itself (CLEAN_UP); its task definition stays
        # registered, as with the other routers.
        return Removal()

    def describe(self, version: StableRecord | CanaryRecord) -> dict[str, Any]:
        return {
            "ecs_service": version.ecs_service_name,
            "task_definition": _td_name(version.task_definition_arn),
            "target_group": getattr(version, "target_group_name", "") or None,
        }
