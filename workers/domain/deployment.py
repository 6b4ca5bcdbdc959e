"""The record the engine keeps of one deployment (its events are in workers.domain.events)."""

from __future__ import annotations

from pydantic import BaseModel, Field, PrivateAttr

from workers.analysis.judge import Counts, StepCounts, Verdict
from workers.domain.catalogue import ServiceConfig
from workers.domain.events import Cause
from workers.domain.pipelines import Origin
from workers.domain.samples import CheckSample, sample_of
from workers.domain.state import State, is_active
from workers.domain.versions import CanaryRecord, StableRecord

#: The stored shape of a Deployment record: bumped with a migration in workers/engine/migrations.py
#: whenever a change would make a record an earlier release wrote unreadable (docs/UPGRADING.md).
RECORD_SCHEMA = 1


class Approval(BaseModel):
    """A person's decision at a gate."""

    step: int
    actor: str
    at: float


class LastRead(BaseModel):
    """What the last check read of the canary: whether newly published periods brought it
    requests tells a canary still serving from one that may be gone (workers.engine.batch)."""

    step_started_at: float | None
    window_end: int
    canary_requests: int


class Baseline(BaseModel):
    """The stable's requests and 5xx over whole periods [start, end) before the deployment,
    read at provisioning: a sharper estimate of its rate for judging the canary against it
    (workers/analysis/judge.py, docs/ANALYSIS.md "A baseline")."""

    start: int
    end: int
    stable: Counts


class Deployment(BaseModel):
    """One canary deployment of one service; every change bumps `version` (compare-and-set)."""

    #: The shape this record was stored in (RECORD_SCHEMA when written by this release).
    schema_version: int = RECORD_SCHEMA
    id: str
    service: str
    image: str
    #: A Slack user id, or `pipeline:<name>` when a CI pipeline asked (workers.domain.pipelines).
    requester: str
    channel: str | None = None
    settings: ServiceConfig
    #: The pipeline that asked and the commit it named; None when a person asked in Slack.
    origin: Origin | None = None
    #: Overrides beyond the catalogue's caution (allowed by its `allow_overrides`): an approver
    #: accepts the plan at a gate before the first shift. Empty for an ordinary deployment.
    accept_plan: list[str] = Field(default_factory=list)
    state: State = State.PROVISIONING
    version: int = 0
    created_at: float
    updated_at: float
    state_since: float
    #: Index into settings.steps of the current (or last applied) step; -1 before the first shift.
    step_index: int = -1
    #: When the current step's weight was applied: the metric query's StartTime.
    step_started_at: float | None = None
    gate_opened_at: float | None = None
    hold_since: float | None = None
    #: What the backend found of the version serving traffic (recorded before anything is made).
    stable: StableRecord | None = None
    #: What the backend made of the canary (recorded once provisioned).
    canary: CanaryRecord | None = None
    old_image: str | None = None
    #: Why it was rolled back or failed, in plain words (no Slack markup).
    reason: str | None = None
    ended_by: Cause | None = None
    #: The Slack user id of the person who aborted or rolled it back, when one did.
    stopped_by: str | None = None
    approvals: list[Approval] = Field(default_factory=list)
    checks: int = 0
    #: Failed attempts at the current step (reset when the state moves on).
    attempts: int = 0
    #: The reminder at half the gate timeout has been sent.
    reminded: bool = False
    last_verdict: Verdict | None = None
    #: The final counts of each step already left, in order: the canary runs the same image at
    #: every step, so the judging of later steps weighs them too (workers/analysis/sequential.py).
    evidence: list[StepCounts] = Field(default_factory=list)
    #: The stable's counts before the deployment; None when not read (judged by alarms only, a
    #: failed read, or a record written before baselines were).
    baseline: Baseline | None = None
    #: When the next job is due; the watchdog reschedules deployments far past it.
    next_due_at: float | None = None
    problems: list[str] = Field(default_factory=list)
    rollback_requested_at: float | None = None
    route_restored_at: float | None = None
    #: When a tear-down or clean-up first found AWS still draining what it removes.
    drain_started_at: float | None = None
    finished_at: float | None = None
    #: When the canary's resources were last seen to exist (a check looks at most every
    #: PRESENCE_INTERVAL_SECONDS, and sooner when its traffic stops).
    canary_checked_at: float | None = None
    last_read: LastRead | None = None
    #: Seconds the last check started after it was due, when that was late enough to tell.
    late_by: float | None = None
    #: Samples of the checks seen by the change being applied, not part of the record: the
    #: store appends them to the deployment's samples in the same MULTI (`take_samples`).
    _new_samples: list[CheckSample] = PrivateAttr(default_factory=list)

    @property
    def active(self) -> bool:
        return is_active(self.state)

    def saw(self, verdict: Verdict, at: float) -> None:
        """Record one check: its verdict is the last, and its sample joins the chart's data."""
        self.checks, self.last_verdict = self.checks + 1, verdict
        self._new_samples.append(
            sample_of(verdict, at=at, step=self.step_number, weight=self.weight)
        )

    def take_samples(self) -> list[CheckSample]:
        """The samples recorded by `saw` since the last call (the store writes them)."""
        taken, self._new_samples = self._new_samples, []
        return taken

    def leave_step(self) -> None:
        """Keep the current step's last counts as evidence before moving on to the next step."""
        if self.last_verdict is not None and self.step_index >= 0:
            self.evidence.append(StepCounts(self.last_verdict.canary, self.last_verdict.stable))

    def recorded_stable(self) -> StableRecord:
        """The stable version, which every step after discovery has (ValueError if not: the
        runner treats it as a failed step)."""
        if self.stable is None:
            raise ValueError(f"deployment {self.id} has no stable version recorded")
        return self.stable

    def recorded_canary(self) -> CanaryRecord:
        """The canary, which every step after provisioning has (ValueError if not)."""
        if self.canary is None:
            raise ValueError(f"deployment {self.id} has no canary recorded")
        return self.canary

    @property
    def step_number(self) -> int:
        """1-based number of the current step (0 before the first shift)."""
        return self.step_index + 1

    @property
    def weight(self) -> int:
        """Canary weight of the current step in percent (0 before the first shift)."""
        return self.settings.steps[self.step_index] if self.step_index >= 0 else 0

    @property
    def next_weight(self) -> int | None:
        """Canary weight of the next step, None after the last."""
        nxt = self.step_index + 1
        return self.settings.steps[nxt] if nxt < len(self.settings.steps) else None
