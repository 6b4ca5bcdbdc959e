"""The service catalogue (CANARY_CONFIG): loading, validation and per-deployment overrides."""

from __future__ import annotations

import difflib
import os
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
from workers.analysis.templates import AlbMetricTemplate, MetricTemplate
from workers.domain.durations import DurationError, format_duration, parse_duration


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
GateMode = Literal["manual", "auto", "final"]
RouterKind = Literal["appmesh", "alb"]
#: The keys each traffic backend needs in a service entry: every group is required, and a group
#: of several keys means exactly one of them.
ROUTER_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "appmesh": (("mesh",), ("virtual_router",), ("route",)),
    "alb": (("listener_rule", "listener"),),
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


class ServiceConfig(RolloutSettings):
    """One entry of `services:` with the defaults merged in."""

    key: str
    #: Which traffic backend shifts the weights: appmesh (mesh, virtual_router, route) or alb
    #: (listener_rule, or listener for its default action).
    router: RouterKind = "appmesh"
    cluster: str
    mesh: str | None = None
    virtual_router: str | None = None
    route: str | None = None
    #: ALB: the ARN of the listener rule whose forward action is weighted...
    listener_rule: str | None = None
    #: ...or the ARN of a listener whose default action is.
    listener: str | None = None
    channel: str | None = None
    deployers: list[str] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)
    alarms: list[str] = Field(default_factory=list)
    #: The metric judged with router appmesh (Envoy counters by default).
    metrics: MetricTemplate = Field(default_factory=MetricTemplate)
    #: The metric judged with router alb (the target groups' ALB counters by default).
    alb_metrics: AlbMetricTemplate = Field(default_factory=AlbMetricTemplate)

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
        return self

    def gate_after(self, step_index: int) -> bool:
        """True when a manual gate follows the step at `step_index` (0-based)."""
        if self.steps[step_index] >= 100:
            return False
        if self.gates == "manual":
            return True
        if self.gates == "final":
            return step_index == len(self.steps) - 2
        return False


class Catalogue(BaseModel):
    """The whole catalogue: defaults and services by key."""

    model_config = ConfigDict(frozen=True)

    defaults: RolloutSettings
    services: dict[str, ServiceConfig]

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
    unknown = set(data) - {"defaults", "services"}
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
    if problems:
        raise ConfigError("; ".join(problems))
    return Catalogue(defaults=base, services=services)


def load_catalogue(path: str | os.PathLike[str] | None = None) -> Catalogue:
    """Read the catalogue from `path`, else CANARY_CONFIG, else canary.yaml."""
    where = Path(path or os.environ.get("CANARY_CONFIG") or defaults.CONFIG_PATH)
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
OVERRIDABLE = ("steps", "bake", "gates")


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


def apply_overrides(service: ServiceConfig, overrides: dict[str, str]) -> ServiceConfig:
    """The service's settings with `key=value` overrides from a command, validated the same way."""
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
    return ServiceConfig.model_validate(
        {**service.model_dump(), **checked.model_dump(exclude_none=True)}
    )
