"""The catalogue's models: `defaults:` (RolloutSettings), a service (ServiceConfig), a CI
pipeline (PipelineConfig) and the whole (Catalogue), each validating itself; ConfigError, how
every problem of a catalogue or an override is reported.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from workers import defaults
from workers.analysis.latency import LatencyLimits, parse_percentile
from workers.analysis.templates import AlbMetricTemplate, MetricTemplate
from workers.domain.catalogue.fields import (
    DURATION_KEYS,
    GateMode,
    IncreasePct,
    Milliseconds,
    OverrideKey,
    Percentile,
    RouterKind,
    Seconds,
    check_steps,
)
from workers.domain.durations import DurationError, bounded, format_duration, parse_duration
from workers.domain.ecs_plan import EcsPlanError, plan_for_service
from workers.domain.policy import PatternError, Plan, check_pattern, gate_follows


class ConfigError(ValueError):
    """A catalogue or an override that cannot be used; the message says where and why."""


#: The keys each traffic backend needs in a service entry: every group is required, and a group
#: of several keys means exactly one of them.
ROUTER_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "appmesh": (("mesh",), ("virtual_router",), ("route",)),
    "alb": (("listener_rule", "listener"),),
    "ecs": (("service",),),
}


class RolloutSettings(BaseModel):
    """The keys of `defaults:`; every one may be overridden per service."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: list[int] = Field(default_factory=lambda: list(defaults.STEPS))
    bake: Seconds = parse_duration(defaults.BAKE)
    analysis_interval: Seconds = parse_duration(defaults.ANALYSIS_INTERVAL)
    max_error_rate: float = Field(default=defaults.MAX_ERROR_RATE, gt=0, le=100)
    #: Latency (docs/ANALYSIS.md): the percentile judged, an absolute ceiling at it (off when
    #: unset) and how much slower than the stable the canary may be, in percent (off: null).
    latency_percentile: Percentile = defaults.LATENCY_PERCENTILE
    max_latency: Milliseconds | None = None
    max_latency_increase: IncreasePct | None = Field(
        default=defaults.MAX_LATENCY_INCREASE, gt=0, le=1000
    )
    min_requests: int = Field(default=defaults.MIN_REQUESTS, ge=1)
    gates: GateMode = defaults.GATES
    gate_timeout: Seconds = parse_duration(defaults.GATE_TIMEOUT)
    post_promotion_bake: Seconds = parse_duration(defaults.POST_PROMOTION_BAKE)
    ready_timeout: Seconds = parse_duration(defaults.READY_TIMEOUT)
    keep_failed_canary: bool = defaults.KEEP_FAILED_CANARY
    four_eyes: bool = defaults.FOUR_EYES
    metric_period: Seconds = parse_duration(defaults.METRIC_PERIOD)
    #: Seconds after a period ends before its data is read; unset: the router's default.
    metric_lag: Seconds | None = None

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        return check_steps(steps)

    @property
    def plan(self) -> Plan:
        """The steps, bake and gates a rollout with these settings follows."""
        return Plan(tuple(self.steps), self.bake, self.gates)

    @property
    def latency_limits(self) -> LatencyLimits:
        """The latency keys as the judge reads them."""
        return LatencyLimits(
            percentile=parse_percentile(self.latency_percentile),
            max_ms=None if self.max_latency is None else float(self.max_latency),
            max_increase_pct=self.max_latency_increase,
        )


def limit_problems(settings: RolloutSettings) -> list[str]:
    """What breaks the limits on what a person writes: each duration at most 30 days, the bake
    at most the gate timeout. Checked when the catalogue is read, not when a stored deployment
    is (so a record from before a limit still loads)."""
    problems = []
    for key in DURATION_KEYS:
        try:
            bounded(getattr(settings, key))
        except DurationError as exc:
            problems.append(f"{key}: {exc}")
    if settings.bake > settings.gate_timeout:
        problems.append(
            f"bake ({format_duration(settings.bake)}) must be at most gate_timeout "
            f"({format_duration(settings.gate_timeout)})"
        )
    return problems


class ServiceConfig(RolloutSettings):
    """One entry of `services:` with the defaults merged in."""

    key: str
    #: Which traffic backend shifts the weights: appmesh (mesh, virtual_router, route), alb
    #: (listener_rule, or listener for its default action) or ecs (service: ECS shifts itself).
    router: RouterKind = "appmesh"
    cluster: str
    mesh: str | None = None
    virtual_router: str | None = None
    route: str | None = None
    #: ALB: the ARN of the listener rule whose forward action is weighted...
    listener_rule: str | None = None
    #: ...or the ARN of a listener whose default action is.
    listener: str | None = None
    #: ECS: the name of the ECS service whose own CANARY / LINEAR deployments the bot gates.
    service: str | None = None
    channel: str | None = None
    deployers: list[str] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)
    alarms: list[str] = Field(default_factory=list)
    #: The metric judged with router appmesh (Envoy counters by default).
    metrics: MetricTemplate = Field(default_factory=MetricTemplate)
    #: The metric judged with router alb (the target groups' ALB counters by default).
    alb_metrics: AlbMetricTemplate = Field(default_factory=AlbMetricTemplate)

    # Policy (workers/domain/policy.py): what a command may loosen, where images come from.
    #: Overrides a command may make even when they loosen the catalogue's plan; the deployment
    #: then waits for an approver to accept its plan before any traffic moves.
    allow_overrides: list[OverrideKey] = Field(default_factory=list)
    #: Repository patterns the service's images come from (`*`: any characters within one path
    #: component); empty: the repository of its stable image only.
    images: list[str] = Field(default_factory=list)

    @field_validator("images")
    @classmethod
    def _images(cls, patterns: list[str]) -> list[str]:
        try:
            return [check_pattern(p) for p in patterns]
        except PatternError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="before")
    @classmethod
    def _router_metric_lag(cls, data: Any) -> Any:
        # CloudWatch's publication lag depends on where the metrics come from (defaults.py).
        if isinstance(data, dict) and data.get("metric_lag") is None:
            router = data.get("router") or "appmesh"
            # A malformed router (a list...) is left for the field's own validation to refuse.
            if isinstance(router, str) and router in defaults.METRIC_LAG:
                data = {**data, "metric_lag": defaults.METRIC_LAG[router]}
        return data

    @property
    def lag(self) -> int:
        """metric_lag in seconds (always set on a service: the router's default if unset)."""
        return int(self.metric_lag or 0)

    @model_validator(mode="after")
    def _router_keys(self) -> ServiceConfig:
        groups = ROUTER_KEYS[self.router]
        alternatives = [g for g in groups if len(g) > 1]
        for group in alternatives:
            given = [k for k in group if getattr(self, k)]
            if len(given) != 1:
                verb = "needs" if not given else "takes only one of"
                raise ValueError(f"router {self.router} {verb} {' or '.join(group)}")
        needed = [g[0] for g in groups if len(g) == 1]
        missing = [k for k in needed if not getattr(self, k)]
        if missing:
            raise ValueError(
                f"router {self.router} needs {', '.join(needed)}; missing: {', '.join(missing)}"
            )
        if self.router == "ecs":
            # ECS takes only equal steps (or one step then 100 %) and whole minutes within its
            # limits: refused here, when the catalogue is read or a command overrides the steps,
            # with the steps ECS can take (workers/domain/ecs_plan.py).
            try:
                plan_for_service(self)
            except EcsPlanError as exc:
                raise ValueError(f"router ecs: {exc}") from None
        return self

    def gate_after(self, step_index: int) -> bool:
        """True when a manual gate follows the step at `step_index` (0-based)."""
        return gate_follows(self.steps, self.gates, step_index)


#: The environment variable holding a pipeline's token: under its own prefix, so that the
#: catalogue cannot turn another secret of the process (SLACK_BOT_TOKEN...) into a CI token.
TOKEN_ENV_PREFIX = "CANARY_PIPELINE_"
_TOKEN_ENV = re.compile(rf"{TOKEN_ENV_PREFIX}[A-Z0-9_]+")


class PipelineConfig(BaseModel):
    """One entry of `pipelines:`: a CI pipeline allowed to deploy some services (docs/CI.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The environment variable of the web process holding the pipeline's bearer token (the
    #: token itself never is in the catalogue).
    token_env: str
    #: The services the pipeline may deploy, look at and abort.
    services: list[str] = Field(min_length=1)

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, name: str) -> str:
        if not _TOKEN_ENV.fullmatch(name):
            raise ValueError(
                f"must name an environment variable starting with {TOKEN_ENV_PREFIX} "
                f"(upper-case letters, digits and _), e.g. {TOKEN_ENV_PREFIX}TOKEN_GITHUB"
            )
        return name


class Catalogue(BaseModel):
    """The whole catalogue: defaults, services by key, and the CI pipelines by name."""

    model_config = ConfigDict(frozen=True)

    defaults: RolloutSettings
    services: dict[str, ServiceConfig]
    pipelines: dict[str, PipelineConfig] = Field(default_factory=dict)

    def service(self, key: str) -> ServiceConfig:
        """The service called `key`, or a ConfigError that suggests the closest name."""
        if key in self.services:
            return self.services[key]
        raise ConfigError(unknown_service_message(key, list(self.services)))


def unknown_service_message(key: str, known: list[str]) -> str:
    """'No service called "paymnts". Did you mean payments? Known: ...'."""
    guess = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {guess[0]}?" if guess else ""
    listed = ", ".join(sorted(known)) or "none"
    return f'No service called "{key}".{hint} Known: {listed}.'
