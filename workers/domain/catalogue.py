"""The service catalogue (CANARY_CONFIG): loading, validation and per-deployment overrides."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from workers import defaults
from workers.analysis.latency import LatencyLimits, parse_percentile
from workers.analysis.templates import AlbMetricTemplate, MetricTemplate
from workers.domain.durations import (
    DurationError,
    bounded,
    format_duration,
    format_milliseconds,
    parse_duration,
    parse_milliseconds,
)
from workers.domain.ecs_plan import EcsPlanError, plan_for_service
from workers.domain.pipelines import NAME as PIPELINE_NAME
from workers.domain.policy import (
    OVERRIDE_KEYS,
    PatternError,
    Plan,
    breaches,
    check_pattern,
    gate_follows,
    refusal,
    to_accept,
)


class ConfigError(ValueError):
    """A catalogue or an override that cannot be used; the message says where and why."""


def _seconds(value: Any) -> int:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


# Stored as it is written ("5m") so a saved deployment reads back through the same validator.
Seconds = Annotated[
    int, BeforeValidator(_seconds), PlainSerializer(format_duration, return_type=str)
]


def _milliseconds(value: Any) -> int:
    try:
        return parse_milliseconds(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _percentile(value: Any) -> str:
    parse_percentile(value)  # ValueError with the fix
    return str(value).strip().lower()


def _increase(value: Any) -> Any:
    # "50%" or 50: the canary may be at most 50 % slower than the stable.
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("off", "none"):
            return None
        if not text.endswith("%"):
            raise ValueError(f"max_latency_increase {value!r}: write a percentage, e.g. 25%")
        return text[:-1].strip()
    return value


#: Latency limits are written in ms or s ("500ms", "2s"); stored the same way.
Milliseconds = Annotated[
    int, BeforeValidator(_milliseconds), PlainSerializer(format_milliseconds, return_type=str)
]
Percentile = Annotated[str, BeforeValidator(_percentile)]
IncreasePct = Annotated[float, BeforeValidator(_increase)]
GateMode = Literal["manual", "auto", "final"]
RouterKind = Literal["appmesh", "alb", "ecs"]
#: The keys each traffic backend needs in a service entry: every group is required, and a group
#: of several keys means exactly one of them.
ROUTER_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "appmesh": (("mesh",), ("virtual_router",), ("route",)),
    "alb": (("listener_rule", "listener"),),
    "ecs": (("service",),),
}
STEPS_EXAMPLE = "steps=10,25,50,100"


def check_steps(steps: list[int]) -> list[int]:
    """Refuse weights outside 1..100, not strictly increasing, or not ending at 100."""
    if not steps:
        raise ValueError(f"steps must not be empty, e.g. {STEPS_EXAMPLE}")
    if any(isinstance(s, bool) or not isinstance(s, int) for s in steps):
        raise ValueError(f"steps must be whole numbers, e.g. {STEPS_EXAMPLE}")
    if any(s < 1 or s > 100 for s in steps):
        raise ValueError(f"steps must be between 1 and 100, e.g. {STEPS_EXAMPLE}")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ValueError(f"steps must increase and end at 100, e.g. {STEPS_EXAMPLE}")
    if steps[-1] != 100:
        raise ValueError(f"steps must end at 100, e.g. {STEPS_EXAMPLE}")
    if len(steps) > 20:
        raise ValueError("at most 20 steps")
    return steps


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


OverrideKey = Literal["steps", "bake", "gates"]
#: The keys that hold a duration.
DURATION_KEYS = (
    "bake",
    "analysis_interval",
    "gate_timeout",
    "post_promotion_bake",
    "ready_timeout",
    "metric_period",
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


def _explain(error: ValidationError, where: str) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{where}.{loc}: {message}" if loc else f"{where}: {message}")
    return "; ".join(lines)


def parse_catalogue(data: Any) -> Catalogue:
    """Validate a parsed YAML document; a ConfigError names the service, the key and the fix."""
    if not isinstance(data, dict):
        raise ConfigError("the catalogue must be a mapping with `defaults:` and `services:`")
    unknown = set(data) - {"defaults", "services", "pipelines"}
    if unknown:
        raise ConfigError(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    raw_defaults = data.get("defaults") or {}
    raw_services = data.get("services") or {}
    if not isinstance(raw_defaults, dict) or not isinstance(raw_services, dict):
        raise ConfigError("`defaults:` and `services:` must be mappings")
    try:
        base = RolloutSettings(**raw_defaults)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, "defaults")) from None
    except TypeError as exc:
        raise ConfigError(f"defaults: {exc}") from None
    services: dict[str, ServiceConfig] = {}
    problems: list[str] = []
    for key, raw in raw_services.items():
        if not isinstance(raw, dict):
            problems.append(f"services.{key}: must be a mapping")
            continue
        try:
            services[str(key)] = ServiceConfig(**{**raw_defaults, **raw, "key": str(key)})
        except ValidationError as exc:
            problems.append(_explain(exc, f"services.{key}"))
            continue
        problems += [f"services.{key}.{p}" for p in limit_problems(services[str(key)])]
    pipelines = _pipelines(data.get("pipelines"), services, problems)
    if problems:
        raise ConfigError("; ".join(problems))
    return Catalogue(defaults=base, services=services, pipelines=pipelines)


def _pipelines(
    raw: Any, services: dict[str, ServiceConfig], problems: list[str]
) -> dict[str, PipelineConfig]:
    """`pipelines:` validated against the services (each named one exists and has a channel for
    its card); what is wrong is added to `problems`."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append("`pipelines:` must be a mapping of pipeline names to entries")
        return {}
    pipelines: dict[str, PipelineConfig] = {}
    token_envs: dict[str, str] = {}
    for name, entry in raw.items():
        where = f"pipelines.{name}"
        if not isinstance(name, str) or not PIPELINE_NAME.fullmatch(name):
            problems.append(f"{where}: a pipeline's name is lower-case letters, digits, - and _")
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping with token_env and services")
            continue
        try:
            pipeline = PipelineConfig.model_validate(entry)
        except ValidationError as exc:
            problems.append(_explain(exc, where))
            continue
        for key in pipeline.services:
            if key not in services:
                problems.append(f"{where}.services: {unknown_service_message(key, list(services))}")
            elif not services[key].channel:
                # Slack tells which channel a command came from; a pipeline has none to offer.
                problems.append(
                    f"{where}.services: {key} has no channel: a service a pipeline deploys must "
                    "name the channel its card is posted in"
                )
        other = token_envs.setdefault(pipeline.token_env, name)
        if other != name:
            problems.append(
                f"{where}.token_env: {pipeline.token_env} is already the token of pipeline "
                f"{other}; each pipeline needs a token of its own"
            )
        pipelines[name] = pipeline
    return pipelines


def load_catalogue(path: str | os.PathLike[str]) -> Catalogue:
    """Read the catalogue from `path` (the runtime passes CANARY_CONFIG's)."""
    where = Path(path)
    try:
        text = where.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the catalogue {where}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    try:
        return parse_catalogue(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


#: The keys a deployment may override from the command line.
OVERRIDABLE = OVERRIDE_KEYS


class _Overrides(BaseModel):
    """The keys a command may set, validated as in the catalogue."""

    model_config = ConfigDict(extra="forbid")

    steps: list[int] | None = None
    bake: Seconds | None = None
    gates: GateMode | None = None

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int] | None) -> list[int] | None:
        return None if steps is None else check_steps(steps)

    @field_validator("bake")
    @classmethod
    def _bake(cls, bake: int | None) -> int | None:
        try:
            return None if bake is None else bounded(bake)
        except DurationError as exc:
            raise ValueError(str(exc)) from None


def apply_overrides(service: ServiceConfig, overrides: dict[str, str]) -> ServiceConfig:
    """The service's settings with `key=value` overrides from a command, validated the same way.

    Overrides may only add caution (workers/domain/policy.py): one that loosens the catalogue's
    plan is refused with the rule, unless the service's `allow_overrides` lists it.
    """
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in OVERRIDABLE:
            raise ConfigError(f'"{key}={text}": only {", ".join(OVERRIDABLE)} can be overridden')
        if key == "steps":
            try:
                values[key] = [int(part) for part in text.split(",")]
            except ValueError:
                raise ConfigError(
                    f'"steps={text}": steps must be whole numbers, e.g. {STEPS_EXAMPLE}'
                ) from None
        else:
            values[key] = text
    try:
        checked = _Overrides(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "literal_error" and key == "gates":
            message = "gates must be manual, auto or final"
        raise ConfigError(f'"{key}={overrides.get(key, "")}": {message}') from None
    given = checked.model_dump(exclude_none=True)
    if checked.bake is not None and checked.bake > service.gate_timeout:
        raise ConfigError(
            f'"bake={overrides["bake"]}": bake must be at most the gate_timeout of {service.key} '
            f"({format_duration(service.gate_timeout)})"
        )
    try:
        planned = ServiceConfig.model_validate({**service.model_dump(), **given})
    except ValidationError as exc:  # what the router cannot take (router ecs: its steps)
        shown = " ".join(f"{k}={overrides[k]}" for k in overrides)
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f'"{shown}": {message}') from None
    refused = refusal(
        breaches(service.key, service.plan, planned.plan, overrides), service.allow_overrides
    )
    if refused:
        raise ConfigError(refused)
    return planned


def overrides_to_accept(
    service: ServiceConfig, planned: ServiceConfig, overrides: dict[str, str]
) -> list[str]:
    """The overrides (allowed by `allow_overrides`) that loosen the catalogue's plan: an approver
    must accept the plan before its first shift. Empty when the overrides only add caution."""
    return to_accept(breaches(service.key, service.plan, planned.plan, overrides))
