"""EcsDeployments: the emulator's API (UpdateService and the service-deployment calls, named
after them and taking their keyword arguments), its set-up helpers for tests and the sandbox,
and the services and deployments it keeps. What a configuration means is plan.py's, how a
deployment plays lifecycle.py's, the answers' shapes shapes.py's.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from sandbox.ecs_deployments.lifecycle import Player
from sandbox.ecs_deployments.plan import check_configuration, plan_phases
from sandbox.ecs_deployments.records import (
    ACTIVE,
    ROLLING_BACK,
    AlarmSource,
    Clock,
    Deployment,
    Revision,
    Service,
    error,
    validate_request,
)
from sandbox.ecs_deployments.shapes import brief_shape, deployment_shape, service_shape


class EcsDeployments:
    """Per-service ECS deployments, advanced lazily to the clock's time on every call."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        alarms: AlarmSource | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        scale_up_seconds: float = 0.0,
        rollback_seconds: float = 0.0,
        bake_minute_seconds: float = 60.0,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._alarm_states: dict[str, str] = {}
        self._alarms = alarms or self._alarms_from_states
        self._region = region
        self._account = account
        self._scale_up_seconds = scale_up_seconds
        self._rollback_seconds = rollback_seconds
        # How long a minute of step bake or bake time lasts: the sandbox compresses time (ECS
        # takes whole minutes only); hook timeouts stay in real minutes, like gate_timeout.
        self._bake_minute = bake_minute_seconds
        self._services: dict[tuple[str, str], Service] = {}
        self._deployments: dict[str, Deployment] = {}
        self._ids = itertools.count(1)

    # --- set-up and helpers for tests and the sandbox -------------------------------------------

    def create_service(
        self,
        *,
        serviceName: str,  # the API's own (camelCase) argument names
        taskDefinition: str,
        cluster: str = "default",
        desiredCount: int = 1,
        deploymentConfiguration: dict[str, Any] | None = None,
        deploymentController: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Register a steady service whose revision serves 100 % (no deployment is recorded)."""
        controller = (deploymentController or {"type": "ECS"}).get("type")
        if controller != "ECS":
            raise error(
                "CreateService",
                "InvalidParameterException",
                "linear and canary deployments need deploymentController ECS",
            )
        cluster_arn = f"arn:aws:ecs:{self._region}:{self._account}:cluster/{cluster}"
        service_arn = f"arn:aws:ecs:{self._region}:{self._account}:service/{cluster}/{serviceName}"
        service = Service(
            cluster=cluster,
            name=serviceName,
            arn=service_arn,
            cluster_arn=cluster_arn,
            task_definition=taskDefinition,
            desired_count=desiredCount,
            deployment_configuration=copy.deepcopy(deploymentConfiguration or {}),
            revision=Revision(
                arn=self._revision_arn(cluster, serviceName),
                task_definition=taskDefinition,
                requested=desiredCount,
                production_weight=100.0,
            ),
        )
        self._services[(cluster, serviceName)] = service
        return {"service": service_shape(service)}

    def set_alarm_state(self, *, AlarmName: str, StateValue: str, **_: Any) -> None:
        """CloudWatch's SetAlarmState, for the default alarm source."""
        self._alarm_states[AlarmName] = StateValue

    def production_traffic(self, *, cluster: str, service: str) -> dict[str, float]:
        """Task definition -> percent of production traffic now (e.g. for a metrics feed)."""
        self.advance()
        svc = self._service(cluster, service, "DescribeServices")
        deployment = self._deployments.get(svc.current_deployment or "")
        if deployment is None or deployment.status not in ACTIVE:
            return {svc.task_definition: 100.0}
        shares = {
            deployment.source.task_definition: deployment.source.production_weight,
            deployment.target.task_definition: deployment.target.production_weight,
        }
        return {td: w for td, w in shares.items() if w > 0}

    def describe_service(self, *, cluster: str, service: str) -> dict[str, Any]:
        """The service as DescribeServices would show it (botocore's Service shape)."""
        self.advance()
        return service_shape(self._service(cluster, service, "DescribeServices"))

    def knows(self, *, cluster: str, service: str) -> bool:
        """True when the service was created here (so its UpdateService belongs here)."""
        try:
            self._service(cluster, service, "UpdateService")
        except ClientError:
            return False
        return True

    def advance(self) -> None:
        """Play every deployment up to the clock's time (each API call does this first)."""
        now = self._clock()
        for deployment in self._deployments.values():
            self._play().advance(deployment, now)

    # --- the API ------------------------------------------------------------------------------

    def update_service(self, **request: Any) -> dict[str, Any]:
        """UpdateService: a new task definition starts a CANARY or LINEAR service deployment."""
        validate_request("UpdateService", request)
        self.advance()
        cluster = request.get("cluster", "default")
        svc = self._service(cluster, request["service"], "UpdateService")
        config = request.get("deploymentConfiguration")
        if config is not None:
            check_configuration(config)
        new_td = request.get("taskDefinition", svc.task_definition)
        running = self._deployments.get(svc.current_deployment or "")
        if running is not None and running.status in ACTIVE:
            if new_td == running.target.task_definition and config in (None, running.config):
                return {"service": service_shape(svc)}
            raise error(
                "UpdateService",
                "InvalidParameterException",
                f"service deployment {running.arn} is still {running.status}",
            )
        effective = copy.deepcopy(config) if config is not None else svc.deployment_configuration
        starts = new_td != svc.task_definition or bool(request.get("forceNewDeployment"))
        if starts and effective.get("strategy") not in ("CANARY", "LINEAR"):
            # Refused before anything is stored: a refused request changes nothing.
            raise error(
                "UpdateService",
                "UnsupportedFeatureException",
                "the emulator plays CANARY and LINEAR deployments only",
            )
        svc.deployment_configuration = effective
        if not starts:
            return {"service": service_shape(svc)}
        now = self._clock()
        deployment = Deployment(
            arn=(
                f"arn:aws:ecs:{self._region}:{self._account}:service-deployment/"
                f"{svc.cluster}/{svc.name}/{uuid.uuid4().hex[:22]}"
            ),
            service=svc,
            source=svc.revision,
            target=Revision(arn=self._revision_arn(svc.cluster, svc.name), task_definition=new_td),
            config=copy.deepcopy(effective),
            phases=plan_phases(
                effective,
                scale_up_seconds=self._scale_up_seconds,
                bake_minute=self._bake_minute,
            ),
            created_at=now,
            phase_started_at=now,
            updated_at=now,
        )
        self._deployments[deployment.arn] = deployment
        svc.current_deployment = deployment.arn
        self._play().advance(deployment, now)
        return {"service": service_shape(svc)}

    def describe_service_deployments(self, **request: Any) -> dict[str, Any]:
        """DescribeServiceDeployments: up to 20 ARNs; unknown ones come back as failures."""
        validate_request("DescribeServiceDeployments", request)
        arns = request["serviceDeploymentArns"]
        if len(arns) > 20:
            raise error(
                "DescribeServiceDeployments",
                "InvalidParameterException",
                "at most 20 service deployment ARNs",
            )
        self.advance()
        found = [deployment_shape(self._deployments[a]) for a in arns if a in self._deployments]
        failures = [{"arn": a, "reason": "MISSING"} for a in arns if a not in self._deployments]
        return {"serviceDeployments": found, "failures": failures}

    def list_service_deployments(self, **request: Any) -> dict[str, Any]:
        """ListServiceDeployments of one service, newest first, optionally by status."""
        validate_request("ListServiceDeployments", request)
        self.advance()
        svc = self._service(
            request.get("cluster", "default"), request["service"], "ListServiceDeployments"
        )
        wanted = set(request.get("status") or ())
        mine = [
            d
            for d in self._deployments.values()
            if d.service is svc and (not wanted or d.status in wanted)
        ]
        mine.sort(key=lambda d: d.created_at, reverse=True)
        return {"serviceDeployments": [brief_shape(d) for d in mine]}

    def describe_service_revisions(self, **request: Any) -> dict[str, Any]:
        """DescribeServiceRevisions: a revision's task definition (unknown ARNs are failures)."""
        validate_request("DescribeServiceRevisions", request)
        self.advance()
        known: dict[str, tuple[Service, Revision]] = {}
        for svc in self._services.values():
            known[svc.revision.arn] = (svc, svc.revision)
        for d in self._deployments.values():
            for revision in (d.source, d.target):
                known[revision.arn] = (d.service, revision)
        arns = request["serviceRevisionArns"]
        found = [
            {
                "serviceRevisionArn": known[a][1].arn,
                "serviceArn": known[a][0].arn,
                "clusterArn": known[a][0].cluster_arn,
                "taskDefinition": known[a][1].task_definition,
            }
            for a in arns
            if a in known
        ]
        failures = [{"arn": a, "reason": "MISSING"} for a in arns if a not in known]
        return {"serviceRevisions": found, "failures": failures}

    def continue_service_deployment(self, **request: Any) -> dict[str, Any]:
        """ContinueServiceDeployment: CONTINUE (the default) or ROLLBACK a paused hook."""
        operation = "ContinueServiceDeployment"
        validate_request(operation, request)
        self.advance()
        deployment = self._deployment(request["serviceDeploymentArn"], operation)
        hook = deployment.hook
        if hook is None or hook.hook_id != request["hookId"]:
            raise error(operation, "InvalidParameterException", "no such hookId")
        if hook.status != "AWAITING_ACTION" or deployment.status != "IN_PROGRESS":
            raise error(
                operation,
                "ClientException",
                f"hook {hook.hook_id} is {hook.status} and the deployment {deployment.status}",
            )
        now = self._clock()
        if request.get("action", "CONTINUE") == "ROLLBACK":
            hook.status = "FAILED"
            self._play().roll_back(
                deployment, now, f"rolled back at hook {hook.hook_id} ({hook.stage})"
            )
        else:
            hook.status = "SUCCEEDED"
            self._play().complete_phase(deployment, now)
            self._play().advance(deployment, now)
        return {"serviceDeploymentArn": deployment.arn}

    def stop_service_deployment(self, **request: Any) -> dict[str, Any]:
        """StopServiceDeployment(stopType=ROLLBACK), the only stop type the docs allow."""
        operation = "StopServiceDeployment"
        validate_request(operation, request)
        if request.get("stopType", "ROLLBACK") != "ROLLBACK":
            raise error(operation, "InvalidParameterException", "the valid stopType is ROLLBACK")
        self.advance()
        deployment = self._deployment(request["serviceDeploymentArn"], operation)
        if deployment.status in ("PENDING", "IN_PROGRESS"):
            if deployment.hook is not None and deployment.hook.status == "AWAITING_ACTION":
                deployment.hook.status = "FAILED"
            self._play().roll_back(deployment, self._clock(), "stopped with StopServiceDeployment")
        elif deployment.status not in ROLLING_BACK:
            raise error(
                operation,
                "ConflictException",
                f"service deployment {deployment.arn} is {deployment.status}",
            )
        return {"serviceDeploymentArn": deployment.arn}

    def _alarms_from_states(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self._alarm_states.get(n) == "ALARM"]

    # --- lookups ------------------------------------------------------------------------------

    def _revision_arn(self, cluster: str, service: str) -> str:
        return (
            f"arn:aws:ecs:{self._region}:{self._account}:service-revision/"
            f"{cluster}/{service}/{next(self._ids):019d}"
        )

    def _service(self, cluster: str, name: str, operation: str) -> Service:
        for key in ((cluster, name), (cluster.rsplit("/", 1)[-1], name.rsplit("/", 1)[-1])):
            if key in self._services:
                return self._services[key]
        raise error(operation, "ServiceNotFoundException", f"service {name} not found")

    def _deployment(self, arn: str, operation: str) -> Deployment:
        if arn not in self._deployments:
            raise error(operation, "ServiceDeploymentNotFoundException", f"{arn} does not exist")
        return self._deployments[arn]

    def _play(self) -> Player:
        # Made anew for each call, so an alarm source swapped by a test is the one read.
        return Player(self._clock, self._alarms, self._rollback_seconds)

    def _deployment_shape(self, d: Deployment) -> dict[str, Any]:
        """DescribeServiceDeployments' shape of `d` (sandbox.ecs_moto reads it to move weights)."""
        return deployment_shape(d)
