"""A stand-in for ECS's own CANARY / LINEAR service deployments (moto models none of it).

For the sandbox and the tests only. Given a service's current and new task definition and the
`deploymentConfiguration` of UpdateService, it plays the documented lifecycle on an injectable
clock and answers in botocore's shapes, raising botocore `ClientError`s with ECS's error codes.
Methods are named after the API calls and take their keyword arguments (`update_service`,
`describe_service_deployments`, `list_service_deployments`, `describe_service_revisions`,
`continue_service_deployment`, `stop_service_deployment`), so the class can later sit behind
moto's ECS backend unchanged.

What it follows (Amazon ECS Developer Guide and API Reference; details and doubts in docs/ECS.md):

- Lifecycle stages, in order: PRE_SCALE_UP, SCALE_UP, POST_SCALE_UP, TEST_TRAFFIC_SHIFT,
  POST_TEST_TRAFFIC_SHIFT, then for every traffic shift PRE_PRODUCTION_TRAFFIC_SHIFT and
  PRODUCTION_TRAFFIC_SHIFT, then POST_PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, CLEAN_UP
  (API_ServiceDeployment `lifecycleStage`; API_DeploymentLifecycleHook `lifecycleStages`:
  "For linear and canary deployments, this stage is invoked before every traffic shift step").
- CANARY shifts canaryPercent, bakes canaryBakeTimeInMinutes, shifts the rest; LINEAR shifts
  stepPercent at a time with stepBakeTimeInMinutes between shifts and none after 100 %
  (API_CanaryConfiguration, API_LinearConfiguration; the last shift takes what is left, as in
  AWS::ECS::Service LinearConfiguration). bakeTimeInMinutes keeps both revisions running after
  the last shift (API_DeploymentConfiguration).
- PAUSE hooks ("Pause hooks for Amazon ECS service deployments"): a unique hookId per pause,
  `lifecycleHookDetails` with status AWAITING_ACTION, expiresAt and timeoutAction; the deployment
  waits for ContinueServiceDeployment(CONTINUE|ROLLBACK) or the timeout (default 1440 minutes,
  action ROLLBACK: API_DeploymentLifecycleHookTimeoutConfiguration). PAUSE is refused at
  TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT. ContinueServiceDeployment needs the hook in
  AWAITING_ACTION and the deployment IN_PROGRESS ("Continuing service deployments").
- StopServiceDeployment(ROLLBACK) works from PENDING and IN_PROGRESS (-> ROLLBACK_REQUESTED, then
  the rollback) and goes on quietly in STOP_REQUESTED / ROLLBACK_* ("Stopping Amazon ECS service
  deployments").
- Alarms: any configured alarm in ALARM fails the deployment, rolled back when `rollback` is true,
  and they are watched through the bake time ("How CloudWatch alarms detect Amazon ECS deployment
  failures").

Choices where the documentation is silent (each is a doubt in docs/ECS.md): a step's bake comes
before the next PRE_PRODUCTION_TRAFFIC_SHIFT pause; `lifecycleStage` reads
PRE_PRODUCTION_TRAFFIC_SHIFT while paused there (the docs list it, botocore's enum lacks it) and
PRODUCTION_TRAFFIC_SHIFT during a step's bake; a hook answered ROLLBACK (or stopped) reads FAILED,
CONTINUE reads SUCCEEDED; `lifecycleHookDetails` shows the latest hook only; a rollback puts 100 %
back on the source at once and finishes after `rollback_seconds`; alarms are sampled when the
emulator is called (never between calls), before any time-driven step; a second UpdateService with
a new task definition while a deployment runs is refused (the same one is a no-op).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

Clock = Callable[[], datetime]
#: Given alarm names, the ones in ALARM now.
AlarmSource = Callable[[Sequence[str]], Iterable[str]]

#: Stages with a hook invoked once per deployment, and where a PAUSE hook may sit.
PAUSABLE_ONCE = ("PRE_SCALE_UP", "POST_SCALE_UP", "POST_TEST_TRAFFIC_SHIFT")
PRE_SHIFT = "PRE_PRODUCTION_TRAFFIC_SHIFT"
POST_SHIFT = "POST_PRODUCTION_TRAFFIC_SHIFT"
NO_PAUSE_STAGES = ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
ACTIVE = ("PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
ROLLING_BACK = ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED")

# Documented defaults (API reference).
DEFAULT_CANARY_PERCENT = 5.0
DEFAULT_CANARY_BAKE = 10
DEFAULT_STEP_PERCENT = 10.0
DEFAULT_STEP_BAKE = 6
DEFAULT_HOOK_TIMEOUT = 1440
DEFAULT_HOOK_ACTION = "ROLLBACK"

_MODEL = botocore.session.get_session().get_service_model("ecs")


def _error(operation: str, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _validate_request(operation: str, params: dict[str, Any]) -> None:
    """Refuse what botocore itself would refuse before sending (shape, types, minimums)."""
    report = ParamValidator().validate(params, _MODEL.operation_model(operation).input_shape)
    if report.has_errors():
        raise _error(operation, "InvalidParameterException", report.generate_report())


@dataclass
class _Phase:
    """One step of a deployment's lifecycle, played in order."""

    stage: str
    kind: Literal["instant", "wait", "hook", "shift", "scale_up", "clean_up"]
    seconds: float = 0.0
    percent: float = 0.0
    timeout_minutes: int = DEFAULT_HOOK_TIMEOUT
    timeout_action: str = DEFAULT_HOOK_ACTION


@dataclass
class _Hook:
    hook_id: str
    stage: str
    expires_at: datetime
    timeout_action: str
    status: str = "AWAITING_ACTION"


@dataclass
class _Revision:
    arn: str
    task_definition: str
    requested: int = 0
    production_weight: float = 0.0
    test_weight: float = 0.0


@dataclass
class _Service:
    cluster: str
    name: str
    arn: str
    cluster_arn: str
    task_definition: str
    desired_count: int
    deployment_configuration: dict[str, Any]
    revision: _Revision
    current_deployment: str | None = None


@dataclass
class _Deployment:
    arn: str
    service: _Service
    source: _Revision
    target: _Revision
    config: dict[str, Any]
    phases: list[_Phase]
    created_at: datetime
    status: str = "IN_PROGRESS"
    status_reason: str | None = None
    cursor: int = 0
    phase_started_at: datetime | None = None
    stage: str = "PRE_SCALE_UP"
    hook: _Hook | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    stopped_at: datetime | None = None
    rollback: dict[str, Any] | None = None
    rollback_done_at: datetime | None = None
    triggered_alarms: list[str] = field(default_factory=list)


def _shifts(strategy: str, percent: float) -> list[float]:
    """ECS's production percentages for the new revision, counted in tenths of a percent."""
    step = round(percent * 10)
    if strategy == "CANARY" or step >= 1000:
        return sorted({min(step, 1000) / 10, 100.0})
    return [k * step / 10 for k in range(1, math.ceil(1000 / step))] + [100.0]


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
        self._services: dict[tuple[str, str], _Service] = {}
        self._deployments: dict[str, _Deployment] = {}
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
            raise _error(
                "CreateService",
                "InvalidParameterException",
                "linear and canary deployments need deploymentController ECS",
            )
        cluster_arn = f"arn:aws:ecs:{self._region}:{self._account}:cluster/{cluster}"
        service_arn = f"arn:aws:ecs:{self._region}:{self._account}:service/{cluster}/{serviceName}"
        service = _Service(
            cluster=cluster,
            name=serviceName,
            arn=service_arn,
            cluster_arn=cluster_arn,
            task_definition=taskDefinition,
            desired_count=desiredCount,
            deployment_configuration=copy.deepcopy(deploymentConfiguration or {}),
            revision=_Revision(
                arn=self._revision_arn(cluster, serviceName),
                task_definition=taskDefinition,
                requested=desiredCount,
                production_weight=100.0,
            ),
        )
        self._services[(cluster, serviceName)] = service
        return {"service": self._service_shape(service)}

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
        return self._service_shape(self._service(cluster, service, "DescribeServices"))

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
            self._advance(deployment, now)

    # --- the API ------------------------------------------------------------------------------

    def update_service(self, **request: Any) -> dict[str, Any]:
        """UpdateService: a new task definition starts a CANARY or LINEAR service deployment."""
        _validate_request("UpdateService", request)
        self.advance()
        cluster = request.get("cluster", "default")
        svc = self._service(cluster, request["service"], "UpdateService")
        config = request.get("deploymentConfiguration")
        if config is not None:
            self._check_configuration(config)
        new_td = request.get("taskDefinition", svc.task_definition)
        running = self._deployments.get(svc.current_deployment or "")
        if running is not None and running.status in ACTIVE:
            if new_td == running.target.task_definition and config in (None, running.config):
                return {"service": self._service_shape(svc)}
            raise _error(
                "UpdateService",
                "InvalidParameterException",
                f"service deployment {running.arn} is still {running.status}",
            )
        effective = copy.deepcopy(config) if config is not None else svc.deployment_configuration
        starts = new_td != svc.task_definition or bool(request.get("forceNewDeployment"))
        if starts and effective.get("strategy") not in ("CANARY", "LINEAR"):
            # Refused before anything is stored: a refused request changes nothing.
            raise _error(
                "UpdateService",
                "UnsupportedFeatureException",
                "the emulator plays CANARY and LINEAR deployments only",
            )
        svc.deployment_configuration = effective
        if not starts:
            return {"service": self._service_shape(svc)}
        now = self._clock()
        deployment = _Deployment(
            arn=(
                f"arn:aws:ecs:{self._region}:{self._account}:service-deployment/"
                f"{svc.cluster}/{svc.name}/{uuid.uuid4().hex[:22]}"
            ),
            service=svc,
            source=svc.revision,
            target=_Revision(arn=self._revision_arn(svc.cluster, svc.name), task_definition=new_td),
            config=copy.deepcopy(effective),
            phases=self._phases(effective),
            created_at=now,
            phase_started_at=now,
            updated_at=now,
        )
        self._deployments[deployment.arn] = deployment
        svc.current_deployment = deployment.arn
        self._advance(deployment, now)
        return {"service": self._service_shape(svc)}

    def describe_service_deployments(self, **request: Any) -> dict[str, Any]:
        """DescribeServiceDeployments: up to 20 ARNs; unknown ones come back as failures."""
        _validate_request("DescribeServiceDeployments", request)
        arns = request["serviceDeploymentArns"]
        if len(arns) > 20:
            raise _error(
                "DescribeServiceDeployments",
                "InvalidParameterException",
                "at most 20 service deployment ARNs",
            )
        self.advance()
        found = [
            self._deployment_shape(self._deployments[a]) for a in arns if a in self._deployments
        ]
        failures = [{"arn": a, "reason": "MISSING"} for a in arns if a not in self._deployments]
        return {"serviceDeployments": found, "failures": failures}

    def list_service_deployments(self, **request: Any) -> dict[str, Any]:
        """ListServiceDeployments of one service, newest first, optionally by status."""
        _validate_request("ListServiceDeployments", request)
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
        return {"serviceDeployments": [self._brief_shape(d) for d in mine]}

    def describe_service_revisions(self, **request: Any) -> dict[str, Any]:
        """DescribeServiceRevisions: a revision's task definition (unknown ARNs are failures)."""
        _validate_request("DescribeServiceRevisions", request)
        self.advance()
        known: dict[str, tuple[_Service, _Revision]] = {}
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
        _validate_request(operation, request)
        self.advance()
        deployment = self._deployment(request["serviceDeploymentArn"], operation)
        hook = deployment.hook
        if hook is None or hook.hook_id != request["hookId"]:
            raise _error(operation, "InvalidParameterException", "no such hookId")
        if hook.status != "AWAITING_ACTION" or deployment.status != "IN_PROGRESS":
            raise _error(
                operation,
                "ClientException",
                f"hook {hook.hook_id} is {hook.status} and the deployment {deployment.status}",
            )
        now = self._clock()
        if request.get("action", "CONTINUE") == "ROLLBACK":
            hook.status = "FAILED"
            self._roll_back(deployment, now, f"rolled back at hook {hook.hook_id} ({hook.stage})")
        else:
            hook.status = "SUCCEEDED"
            self._complete_phase(deployment, now)
            self._advance(deployment, now)
        return {"serviceDeploymentArn": deployment.arn}

    def stop_service_deployment(self, **request: Any) -> dict[str, Any]:
        """StopServiceDeployment(stopType=ROLLBACK), the only stop type the docs allow."""
        operation = "StopServiceDeployment"
        _validate_request(operation, request)
        if request.get("stopType", "ROLLBACK") != "ROLLBACK":
            raise _error(operation, "InvalidParameterException", "the valid stopType is ROLLBACK")
        self.advance()
        deployment = self._deployment(request["serviceDeploymentArn"], operation)
        if deployment.status in ("PENDING", "IN_PROGRESS"):
            if deployment.hook is not None and deployment.hook.status == "AWAITING_ACTION":
                deployment.hook.status = "FAILED"
            self._roll_back(deployment, self._clock(), "stopped with StopServiceDeployment")
        elif deployment.status not in ROLLING_BACK:
            raise _error(
                operation,
                "ConflictException",
                f"service deployment {deployment.arn} is {deployment.status}",
            )
        return {"serviceDeploymentArn": deployment.arn}

    # --- the lifecycle ------------------------------------------------------------------------

    def _check_configuration(self, config: dict[str, Any]) -> None:
        """Refuse what ECS documents as invalid (botocore checks shapes and minimums only)."""

        def bad(message: str) -> ClientError:
            return _error("UpdateService", "InvalidParameterException", message)

        strategy = config.get("strategy")
        if "canaryConfiguration" in config and strategy != "CANARY":
            raise bad("canaryConfiguration is only valid with strategy CANARY")
        if "linearConfiguration" in config and strategy != "LINEAR":
            raise bad("linearConfiguration is only valid with strategy LINEAR")
        canary = config.get("canaryConfiguration") or {}
        linear = config.get("linearConfiguration") or {}
        checks = [
            ("canaryPercent", canary.get("canaryPercent", DEFAULT_CANARY_PERCENT), 0.1, 100.0),
            ("stepPercent", linear.get("stepPercent", DEFAULT_STEP_PERCENT), 3.0, 100.0),
        ]
        for name, value, low, high in checks:
            if not low <= value <= high or abs(value * 10 - round(value * 10)) > 1e-9:
                raise bad(f"{name} must be a multiple of 0.1 from {low:g} to {high:g}")
        bakes = [
            ("canaryBakeTimeInMinutes", canary.get("canaryBakeTimeInMinutes", 0)),
            ("stepBakeTimeInMinutes", linear.get("stepBakeTimeInMinutes", 0)),
            ("bakeTimeInMinutes", config.get("bakeTimeInMinutes", 0)),
        ]
        for name, minutes in bakes:
            if not 0 <= minutes <= 1440:
                raise bad(f"{name} must be 0 to 1440")
        for hook in config.get("lifecycleHooks") or []:
            stages = hook.get("lifecycleStages") or []
            if not stages:
                raise bad("a lifecycle hook needs lifecycleStages")
            if hook.get("targetType", "AWS_LAMBDA") != "PAUSE":
                raise _error(
                    "UpdateService",
                    "UnsupportedFeatureException",
                    "the emulator runs no Lambda hooks: use targetType PAUSE",
                )
            if set(stages) & set(NO_PAUSE_STAGES):
                raise bad(
                    "PAUSE hooks cannot be configured at TEST_TRAFFIC_SHIFT or "
                    "PRODUCTION_TRAFFIC_SHIFT"
                )
            timeout = (hook.get("timeoutConfiguration") or {}).get("timeoutInMinutes", 1440)
            if not 1 <= timeout <= 20160:
                raise bad("timeoutInMinutes must be 1 to 20160")

    def _phases(self, config: dict[str, Any]) -> list[_Phase]:
        pauses: dict[str, tuple[int, str]] = {}
        for hook in config.get("lifecycleHooks") or []:
            timeout = hook.get("timeoutConfiguration") or {}
            for stage in hook["lifecycleStages"]:
                pauses[stage] = (
                    timeout.get("timeoutInMinutes", DEFAULT_HOOK_TIMEOUT),
                    timeout.get("action", DEFAULT_HOOK_ACTION),
                )

        def pause(stage: str) -> list[_Phase]:
            if stage not in pauses:
                return []
            minutes, action = pauses[stage]
            return [_Phase(stage, "hook", timeout_minutes=minutes, timeout_action=action)]

        if config["strategy"] == "CANARY":
            canary = config.get("canaryConfiguration") or {}
            percent = canary.get("canaryPercent", DEFAULT_CANARY_PERCENT)
            step_bake = canary.get("canaryBakeTimeInMinutes", DEFAULT_CANARY_BAKE)
        else:
            linear = config.get("linearConfiguration") or {}
            percent = linear.get("stepPercent", DEFAULT_STEP_PERCENT)
            step_bake = linear.get("stepBakeTimeInMinutes", DEFAULT_STEP_BAKE)
        phases = [
            *pause("PRE_SCALE_UP"),
            _Phase("SCALE_UP", "scale_up", seconds=self._scale_up_seconds),
            *pause("POST_SCALE_UP"),
            _Phase("TEST_TRAFFIC_SHIFT", "instant"),
            *pause("POST_TEST_TRAFFIC_SHIFT"),
        ]
        shifts = _shifts(config["strategy"], percent)
        for i, share in enumerate(shifts):
            phases += pause(PRE_SHIFT)
            phases.append(_Phase("PRODUCTION_TRAFFIC_SHIFT", "shift", percent=share))
            if i < len(shifts) - 1:  # "not applied after reaching 100 percent traffic"
                phases.append(
                    _Phase(
                        "PRODUCTION_TRAFFIC_SHIFT", "wait", seconds=step_bake * self._bake_minute
                    )
                )
        phases += [
            *pause(POST_SHIFT),
            _Phase(POST_SHIFT, "instant"),
            _Phase(
                "BAKE_TIME",
                "wait",
                seconds=config.get("bakeTimeInMinutes", 0) * self._bake_minute,
            ),
            _Phase("CLEAN_UP", "clean_up"),
        ]
        return phases

    def _advance(self, deployment: _Deployment, now: datetime) -> None:
        if deployment.status == "IN_PROGRESS" and self._alarm_fired(deployment, now):
            return
        while deployment.status == "IN_PROGRESS":
            phase = deployment.phases[deployment.cursor]
            started = deployment.phase_started_at or now
            deployment.stage = phase.stage
            if phase.kind in ("wait", "scale_up"):
                end = started + timedelta(seconds=phase.seconds)
                if end > now:
                    return
                if phase.kind == "scale_up":
                    deployment.target.requested = deployment.service.desired_count
                self._complete_phase(deployment, end)
            elif phase.kind == "hook":
                hook = deployment.hook
                if hook is None or hook.status != "AWAITING_ACTION" or hook.stage != phase.stage:
                    hook = deployment.hook = _Hook(
                        hook_id=f"ecs-pause-{uuid.uuid4().hex}",
                        stage=phase.stage,
                        expires_at=started + timedelta(minutes=phase.timeout_minutes),
                        timeout_action=phase.timeout_action,
                    )
                if hook.expires_at > now:
                    return
                hook.status = "TIMED_OUT"
                if hook.timeout_action == "ROLLBACK":
                    self._roll_back(
                        deployment,
                        hook.expires_at,
                        f"hook {hook.hook_id} timed out ({phase.stage})",
                    )
                    return
                self._complete_phase(deployment, hook.expires_at)
            elif phase.kind == "shift":
                deployment.target.production_weight = phase.percent
                deployment.source.production_weight = 100.0 - phase.percent
                self._complete_phase(deployment, started)
            elif phase.kind == "clean_up":
                self._succeed(deployment, started)
            else:
                if phase.stage == "TEST_TRAFFIC_SHIFT":
                    deployment.target.test_weight = 100.0
                self._complete_phase(deployment, started)
        self._finish_rollback(deployment, now)

    def _complete_phase(self, deployment: _Deployment, at: datetime) -> None:
        deployment.cursor += 1
        deployment.phase_started_at = at
        deployment.updated_at = at

    def _alarm_fired(self, deployment: _Deployment, now: datetime) -> bool:
        alarms = deployment.config.get("alarms") or {}
        if not alarms.get("enable") or not alarms.get("alarmNames"):
            return False
        fired = sorted(set(self._alarms(alarms["alarmNames"])) & set(alarms["alarmNames"]))
        if not fired:
            return False
        deployment.triggered_alarms = fired
        reason = f"CloudWatch alarm(s) in ALARM: {', '.join(fired)}"
        if alarms.get("rollback"):
            self._roll_back(deployment, now, reason)
        else:
            deployment.status, deployment.status_reason = "STOPPED", reason
            deployment.stopped_at = deployment.updated_at = now
        return True

    def _alarms_from_states(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self._alarm_states.get(n) == "ALARM"]

    def _roll_back(self, deployment: _Deployment, at: datetime, reason: str) -> None:
        # Both revisions still run until CLEAN_UP, so traffic goes back at once.
        deployment.status = "ROLLBACK_IN_PROGRESS"
        deployment.status_reason = reason
        deployment.source.production_weight = 100.0
        deployment.target.production_weight = 0.0
        deployment.target.test_weight = 0.0
        deployment.rollback = {
            "reason": reason,
            "startedAt": at,
            "serviceRevisionArn": deployment.source.arn,
        }
        deployment.rollback_done_at = at + timedelta(seconds=self._rollback_seconds)
        deployment.updated_at = at
        self._finish_rollback(deployment, self._clock())

    def _finish_rollback(self, deployment: _Deployment, now: datetime) -> None:
        done = deployment.rollback_done_at
        if deployment.status != "ROLLBACK_IN_PROGRESS" or done is None or done > now:
            return
        deployment.status = "ROLLBACK_SUCCESSFUL"
        deployment.target.requested = 0
        deployment.finished_at = deployment.updated_at = done
        svc = deployment.service
        svc.task_definition, svc.revision = deployment.source.task_definition, deployment.source

    def _succeed(self, deployment: _Deployment, at: datetime) -> None:
        deployment.stage = "CLEAN_UP"
        deployment.status = "SUCCESSFUL"
        deployment.source.requested = 0
        deployment.source.production_weight = 0.0
        deployment.target.production_weight = 100.0
        deployment.finished_at = deployment.updated_at = at
        svc = deployment.service
        svc.task_definition, svc.revision = deployment.target.task_definition, deployment.target

    # --- lookups and shapes -------------------------------------------------------------------

    def _revision_arn(self, cluster: str, service: str) -> str:
        return (
            f"arn:aws:ecs:{self._region}:{self._account}:service-revision/"
            f"{cluster}/{service}/{next(self._ids):019d}"
        )

    def _service(self, cluster: str, name: str, operation: str) -> _Service:
        for key in ((cluster, name), (cluster.rsplit("/", 1)[-1], name.rsplit("/", 1)[-1])):
            if key in self._services:
                return self._services[key]
        raise _error(operation, "ServiceNotFoundException", f"service {name} not found")

    def _deployment(self, arn: str, operation: str) -> _Deployment:
        if arn not in self._deployments:
            raise _error(operation, "ServiceDeploymentNotFoundException", f"{arn} does not exist")
        return self._deployments[arn]

    def _service_shape(self, svc: _Service) -> dict[str, Any]:
        return {
            "serviceArn": svc.arn,
            "serviceName": svc.name,
            "clusterArn": svc.cluster_arn,
            "status": "ACTIVE",
            "desiredCount": svc.desired_count,
            "taskDefinition": svc.task_definition,
            "deploymentConfiguration": copy.deepcopy(svc.deployment_configuration),
            "deploymentController": {"type": "ECS"},
            **(
                {"currentServiceDeployment": svc.current_deployment}
                if svc.current_deployment
                else {}
            ),
        }

    @staticmethod
    def _revision_shape(revision: _Revision) -> dict[str, Any]:
        return {
            "arn": revision.arn,
            "requestedTaskCount": revision.requested,
            "runningTaskCount": revision.requested,
            "pendingTaskCount": 0,
            "requestedTestTrafficWeight": revision.test_weight,
            "requestedProductionTrafficWeight": revision.production_weight,
        }

    def _deployment_shape(self, d: _Deployment) -> dict[str, Any]:
        alarms = d.config.get("alarms") or {}
        if not alarms.get("enable"):
            alarm_status = "DISABLED"
        elif d.triggered_alarms:
            alarm_status = "TRIGGERED"
        elif d.status == "SUCCESSFUL":
            alarm_status = "MONITORING_COMPLETE"
        else:
            alarm_status = "MONITORING"
        shape: dict[str, Any] = {
            "serviceDeploymentArn": d.arn,
            "serviceArn": d.service.arn,
            "clusterArn": d.service.cluster_arn,
            "createdAt": d.created_at,
            "startedAt": d.created_at,
            "updatedAt": d.updated_at or d.created_at,
            "sourceServiceRevisions": [self._revision_shape(d.source)],
            "targetServiceRevision": self._revision_shape(d.target),
            "status": d.status,
            "lifecycleStage": d.stage,
            "deploymentConfiguration": copy.deepcopy(d.config),
            "deploymentCircuitBreaker": {"status": "DISABLED"},
            "alarms": {
                "status": alarm_status,
                "alarmNames": list(alarms.get("alarmNames") or []),
                "triggeredAlarmNames": list(d.triggered_alarms),
            },
            "lifecycleHookDetails": [],
        }
        if d.hook is not None:
            shape["lifecycleHookDetails"] = [
                {
                    "hookId": d.hook.hook_id,
                    "targetType": "PAUSE",
                    "status": d.hook.status,
                    "expiresAt": d.hook.expires_at,
                    "timeoutAction": d.hook.timeout_action,
                }
            ]
        if d.status_reason:
            shape["statusReason"] = d.status_reason
        if d.finished_at:
            shape["finishedAt"] = d.finished_at
        if d.stopped_at:
            shape["stoppedAt"] = d.stopped_at
        if d.rollback:
            shape["rollback"] = dict(d.rollback)
        return shape

    def _brief_shape(self, d: _Deployment) -> dict[str, Any]:
        brief = {
            "serviceDeploymentArn": d.arn,
            "serviceArn": d.service.arn,
            "clusterArn": d.service.cluster_arn,
            "startedAt": d.created_at,
            "createdAt": d.created_at,
            "targetServiceRevisionArn": d.target.arn,
            "status": d.status,
        }
        if d.finished_at:
            brief["finishedAt"] = d.finished_at
        if d.status_reason:
            brief["statusReason"] = d.status_reason
        return brief


#: The API calls the emulator answers, by operation name.
ROUTED_OPERATIONS = {
    "UpdateService": "update_service",
    "DescribeServiceDeployments": "describe_service_deployments",
    "ListServiceDeployments": "list_service_deployments",
    "DescribeServiceRevisions": "describe_service_revisions",
    "ContinueServiceDeployment": "continue_service_deployment",
    "StopServiceDeployment": "stop_service_deployment",
}


def route_client(client: Any, deployments: EcsDeployments) -> None:
    """Let a boto3 ECS client's service-deployment calls be answered by `deployments`.

    botocore's `before-call` event lets a handler answer instead of sending the request, after
    the client has validated and serialized it; everything else (and UpdateService of services
    the emulator does not know) goes on to moto or AWS. Errors come back as the client's own
    exception classes (`client.exceptions.ServiceDeploymentNotFoundException`...).
    """

    def answer(model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict] | None:
        request = json.loads(params.get("body") or b"{}")
        if model.name == "UpdateService" and not deployments.knows(
            cluster=request.get("cluster", "default"), service=request["service"]
        ):
            return None
        try:
            parsed, status = getattr(deployments, ROUTED_OPERATIONS[model.name])(**request), 200
        except ClientError as exc:
            parsed, status = dict(exc.response), 400
        parsed["ResponseMetadata"] = {"HTTPStatusCode": status, "RetryAttempts": 0}
        return AWSResponse("https://ecs.emulator.invalid/", status, {}, None), parsed

    for operation in ROUTED_OPERATIONS:
        client.meta.events.register(f"before-call.ecs.{operation}", answer)
