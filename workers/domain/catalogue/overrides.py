"""A command's `key=value` overrides (steps, bake, gates) applied to a service's entry: validated
as in the catalogue, and refused when they loosen its plan unless `allow_overrides` lists them
(the rules are workers/domain/policy.py's).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from workers.domain.catalogue.fields import STEPS_EXAMPLE, GateMode, Seconds, check_steps
from workers.domain.catalogue.schema import ConfigError, ServiceConfig
from workers.domain.durations import DurationError, bounded, format_duration
from workers.domain.policy import OVERRIDE_KEYS, breaches, refusal, to_accept

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
