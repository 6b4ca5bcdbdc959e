"""What a deploymentConfiguration means: refused when ECS documents it as invalid
(`check_configuration`), else the phases its deployment plays, in order (`plan_phases`), with
the production percentages of its shifts (`shift_percents`). Pure: no clock, no state.
"""

from __future__ import annotations

import math
from typing import Any

from botocore.exceptions import ClientError

from sandbox.ecs_deployments.records import (
    DEFAULT_CANARY_BAKE,
    DEFAULT_CANARY_PERCENT,
    DEFAULT_HOOK_ACTION,
    DEFAULT_HOOK_TIMEOUT,
    DEFAULT_STEP_BAKE,
    DEFAULT_STEP_PERCENT,
    NO_PAUSE_STAGES,
    POST_SHIFT,
    PRE_SHIFT,
    Phase,
    error,
)


def shift_percents(strategy: str, percent: float) -> list[float]:
    """ECS's production percentages for the new revision, counted in tenths of a percent."""
    step = round(percent * 10)
    if strategy == "CANARY" or step >= 1000:
        return sorted({min(step, 1000) / 10, 100.0})
    return [k * step / 10 for k in range(1, math.ceil(1000 / step))] + [100.0]


def check_configuration(config: dict[str, Any]) -> None:
    """Refuse what ECS documents as invalid (botocore checks shapes and minimums only)."""

    def bad(message: str) -> ClientError:
        return error("UpdateService", "InvalidParameterException", message)

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
            raise error(
                "UpdateService",
                "UnsupportedFeatureException",
                "the emulator runs no Lambda hooks: use targetType PAUSE",
            )
        if set(stages) & set(NO_PAUSE_STAGES):
            raise bad(
                "PAUSE hooks cannot be configured at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT"
            )
        timeout = (hook.get("timeoutConfiguration") or {}).get("timeoutInMinutes", 1440)
        if not 1 <= timeout <= 20160:
            raise bad("timeoutInMinutes must be 1 to 20160")


def plan_phases(
    config: dict[str, Any], *, scale_up_seconds: float, bake_minute: float
) -> list[Phase]:
    """The phases of a deployment with `config`, in order (hooks where PAUSE hooks sit)."""
    pauses: dict[str, tuple[int, str]] = {}
    for hook in config.get("lifecycleHooks") or []:
        timeout = hook.get("timeoutConfiguration") or {}
        for stage in hook["lifecycleStages"]:
            pauses[stage] = (
                timeout.get("timeoutInMinutes", DEFAULT_HOOK_TIMEOUT),
                timeout.get("action", DEFAULT_HOOK_ACTION),
            )

    def pause(stage: str) -> list[Phase]:
        if stage not in pauses:
            return []
        minutes, action = pauses[stage]
        return [Phase(stage, "hook", timeout_minutes=minutes, timeout_action=action)]

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
        Phase("SCALE_UP", "scale_up", seconds=scale_up_seconds),
        *pause("POST_SCALE_UP"),
        Phase("TEST_TRAFFIC_SHIFT", "instant"),
        *pause("POST_TEST_TRAFFIC_SHIFT"),
    ]
    shifts = shift_percents(config["strategy"], percent)
    for i, share in enumerate(shifts):
        phases += pause(PRE_SHIFT)
        phases.append(Phase("PRODUCTION_TRAFFIC_SHIFT", "shift", percent=share))
        if i < len(shifts) - 1:  # "not applied after reaching 100 percent traffic"
            phases.append(
                Phase("PRODUCTION_TRAFFIC_SHIFT", "wait", seconds=step_bake * bake_minute)
            )
    phases += [
        *pause(POST_SHIFT),
        Phase(POST_SHIFT, "instant"),
        Phase(
            "BAKE_TIME",
            "wait",
            seconds=config.get("bakeTimeInMinutes", 0) * bake_minute,
        ),
        Phase("CLEAN_UP", "clean_up"),
    ]
    return phases
