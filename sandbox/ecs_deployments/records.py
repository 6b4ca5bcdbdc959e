"""The emulator's vocabulary: ECS's stages, statuses and documented defaults, the records of a
service, its revisions and deployments (with their phases and pause hooks), and how a refused
request is raised (botocore's own ClientError, after botocore's own parameter validation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import botocore.session
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

MODEL = botocore.session.get_session().get_service_model("ecs")


def error(operation: str, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def validate_request(operation: str, params: dict[str, Any]) -> None:
    """Refuse what botocore itself would refuse before sending (shape, types, minimums)."""
    report = ParamValidator().validate(params, MODEL.operation_model(operation).input_shape)
    if report.has_errors():
        raise error(operation, "InvalidParameterException", report.generate_report())


@dataclass
class Phase:
    """One step of a deployment's lifecycle, played in order."""

    stage: str
    kind: Literal["instant", "wait", "hook", "shift", "scale_up", "clean_up"]
    seconds: float = 0.0
    percent: float = 0.0
    timeout_minutes: int = DEFAULT_HOOK_TIMEOUT
    timeout_action: str = DEFAULT_HOOK_ACTION


@dataclass
class Hook:
    hook_id: str
    stage: str
    expires_at: datetime
    timeout_action: str
    status: str = "AWAITING_ACTION"


@dataclass
class Revision:
    arn: str
    task_definition: str
    requested: int = 0
    production_weight: float = 0.0
    test_weight: float = 0.0


@dataclass
class Service:
    cluster: str
    name: str
    arn: str
    cluster_arn: str
    task_definition: str
    desired_count: int
    deployment_configuration: dict[str, Any]
    revision: Revision
    current_deployment: str | None = None


@dataclass
class Deployment:
    arn: str
    service: Service
    source: Revision
    target: Revision
    config: dict[str, Any]
    phases: list[Phase]
    created_at: datetime
    status: str = "IN_PROGRESS"
    status_reason: str | None = None
    cursor: int = 0
    phase_started_at: datetime | None = None
    stage: str = "PRE_SCALE_UP"
    hook: Hook | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    stopped_at: datetime | None = None
    rollback: dict[str, Any] | None = None
    rollback_done_at: datetime | None = None
    triggered_alarms: list[str] = field(default_factory=list)
