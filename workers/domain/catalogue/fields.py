"""The values a catalogue entry is written with: durations, latency limits, gates, steps.

Each is a pydantic type that parses what a person writes ("5m", "500ms", "25%") and is stored as
it is written, so a saved deployment reads back through the same validator; `check_steps` is
the one rule on a rollout's weights. The models using them are in workers.domain.catalogue.schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PlainSerializer

from workers.analysis.latency import parse_percentile
from workers.domain.durations import (
    DurationError,
    format_duration,
    format_milliseconds,
    parse_duration,
    parse_milliseconds,
)


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
