"""The events of a deployment's log: one typed record per kind of thing that happened.

The engine writes them (each transition's events in the same MULTI as the state) and the outbox
delivers them; they say what happened, never how it reads: merging and wording are
workers.slack's. Actors are Slack user ids, never mentions. `EVENTS` parses one back from the
JSON the store keeps, choosing the class by its `kind`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, model_validator

from workers.analysis.judge import Verdict
from workers.domain.refusals import Forbidden, Refusal
from workers.domain.state import State

#: The stored shape of an event: bumped with a migration in workers/engine/migrations.py whenever
#: a change would make an event an earlier release wrote unreadable (docs/UPGRADING.md).
EVENT_SCHEMA = 1

_REFUSAL_CODES = frozenset(r.value for r in [*Refusal, *Forbidden])


class Cause(StrEnum):
    """Why a deployment was rolled back (`Deployment.ended_by`)."""

    ABORT = "abort"  # a person: the Abort or Roll back button, or /canary abort
    CANARY_CHECK = "canary check"
    GATE_TIMEOUT = "gate_timeout"
    READY_TIMEOUT = "ready_timeout"
    HOLD_TIMEOUT = "hold_timeout"
    IMAGE_POLICY = "image policy"  # the image is not from where the service's images come from
    #: the stable publishes no metric series the checks would read: nothing could judge a step
    NO_METRICS = "no metrics"
    #: router ecs: ECS rolled its deployment back by itself (an alarm, a pause's timeout...)
    ECS_ROLLBACK = "ecs rollback"
    ERROR = "error"


class Resources(BaseModel):
    """The names of one version's resources, as its backend describes them."""

    ecs_service: str | None = None
    task_definition: str | None = None
    #: The traffic target: an App Mesh virtual node, or an ALB target group.
    virtual_node: str | None = None
    target_group: str | None = None


class _Event(BaseModel):
    """What every event has: its place in the log and the state it left the deployment in."""

    #: The shape this event was stored in (EVENT_SCHEMA when written by this release).
    schema_version: int = EVENT_SCHEMA
    #: Position in the log (set by the store when written).
    seq: int = -1
    at: float
    #: The deployment's state and version after the transition that wrote it (set on writing).
    state: State = State.PROVISIONING
    version: int = 0
    #: 1-based step the event is about (None before the first shift).
    step: int | None = None


class Requested(_Event):
    kind: Literal["requested"] = "requested"
    #: A Slack user id, or `pipeline:<name>` (workers.domain.pipelines).
    actor: str
    image: str
    overrides: dict[str, str] = Field(default_factory=dict)
    #: The CI pipeline that asked (docs/CI.md), and the commit and link it gave; None from Slack.
    pipeline: str | None = None
    commit: str | None = None
    url: str | None = None


class Provisioned(_Event):
    kind: Literal["provisioned"] = "provisioned"
    canary: Resources
    #: Tasks the canary runs (the stable's count); None when the stable's was unknown.
    desired: int | None = None
    old_image: str | None = None


class Ready(_Event):
    kind: Literal["ready"] = "ready"
    running: int
    desired: int


class Shifted(_Event):
    kind: Literal["shifted"] = "shifted"
    weight: int
    #: What a person calls the thing whose weights moved ("route payments-route").
    route: str
    weights: dict[str, int] = Field(default_factory=dict)
    #: Seconds the old version keeps running, on the shift to 100 %.
    post_promotion_bake: float | None = None


class Holding(_Event):
    kind: Literal["holding"] = "holding"
    weight: int
    verdict: Verdict
    #: When the deployment rolls back if the step still cannot be judged.
    deadline: float
    interval: float


class StepPassed(_Event):
    kind: Literal["step_passed"] = "step_passed"
    weight: int
    verdict: Verdict


class StepFailed(_Event):
    kind: Literal["step_failed"] = "step_failed"
    weight: int
    verdict: Verdict


class GateOpened(_Event):
    kind: Literal["gate_opened"] = "gate_opened"
    next_step: int
    next_weight: int | None
    timeout_at: float
    #: The plan in force, when overrides loosened it and an approver must accept it first.
    plan: str | None = None
    #: The catalogue keys whose overrides loosened the plan.
    accept: list[str] = Field(default_factory=list)


class GateReminder(_Event):
    kind: Literal["gate_reminder"] = "gate_reminder"
    next_weight: int | None
    timeout_at: float


class Approved(_Event):
    kind: Literal["approved"] = "approved"
    actor: str
    #: The weight the approval lets the deployment shift to.
    weight: int | None


class Refused(_Event):
    """A click or command that was not carried out (told to the one person only)."""

    kind: Literal["refused"] = "refused"
    actor: str
    action: str
    #: Why, as a code (the engine's, or the rule of who may do what); None for an event
    #: recorded before refusals had codes (see `detail`).
    reason: Refusal | Forbidden | None
    #: The Slack ids the refusal names (refusals.Denial says which, per code).
    ids: list[str] = Field(default_factory=list)
    #: The words of an event recorded before refusals had codes (a sentence, mentions and all).
    detail: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _words_before_codes(cls, data: Any) -> Any:
        # Stored shape before codes: {"reason": "<a sentence for the person>"}; the engine's
        # refusals already stored their code there, and still read as that code.
        if isinstance(data, dict):
            reason = data.get("reason")
            if isinstance(reason, str) and reason not in _REFUSAL_CODES:
                return {**data, "reason": None, "detail": data.get("detail") or reason}
        return data


class RollbackStarted(_Event):
    kind: Literal["rollback_started"] = "rollback_started"
    by: Cause
    reason: str
    #: The person who aborted, when one did.
    actor: str | None = None
    #: The canary's weight when the rollback began (0: no traffic had moved).
    weight: int


class RouteRestored(_Event):
    kind: Literal["route_restored"] = "route_restored"
    seconds: float
    #: The stable's target, None when nothing had been discovered (nothing was routed).
    stable: str | None


class RolledBack(_Event):
    kind: Literal["rolled_back"] = "rolled_back"
    by: Cause | None
    reason: str | None
    actor: str | None = None
    #: The failed canary was kept at 0 tasks for diagnosis instead of removed.
    kept: bool
    took: float
    #: False when the deployment stopped before creating anything in AWS.
    canary_existed: bool


class Promoted(_Event):
    kind: Literal["promoted"] = "promoted"
    problems: list[str] = Field(default_factory=list)
    took: float
    approvers: list[str] = Field(default_factory=list)
    checks: int
    #: The old version's resources, removed; None when the backend removed none of them (ECS's
    #: own deployments keep the service and its target groups and retire the old tasks).
    old: Resources | None


class Failed(_Event):
    """A rollback or tear-down gave up: a person must finish it."""

    kind: Literal["failed"] = "failed"
    reason: str
    problems: list[str] = Field(default_factory=list)


Event = Annotated[
    Requested
    | Provisioned
    | Ready
    | Shifted
    | Holding
    | StepPassed
    | StepFailed
    | GateOpened
    | GateReminder
    | Approved
    | Refused
    | RollbackStarted
    | RouteRestored
    | RolledBack
    | Promoted
    | Failed,
    Field(discriminator="kind"),
]

#: Parses an event (JSON or a dict) into the class of its `kind`.
EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
