"""From the catalogue's rollout settings to ECS's own CANARY / LINEAR deployment configuration.

Pure: no AWS call, which is why it lives in the domain: the catalogue refuses steps ECS cannot
take when it is read and when a command overrides them, in the web process too (which never
loads workers.aws). workers.aws.ecs_native.strategy re-exports it for the backend.

The result is the `deploymentConfiguration` (with its PAUSE lifecycle hook) for `UpdateService`,
plus the pauses the engine will meet and what it must do at each one. Steps ECS
cannot take are refused with a message naming steps it can take. Every rule here is documented
in docs/ECS.md, with its source:

- CANARY shifts `canaryPercent` (0.1..100, multiples of 0.1), bakes `canaryBakeTimeInMinutes`
  (0..1440), then shifts the rest (API_CanaryConfiguration).
- LINEAR shifts `stepPercent` (3..100, multiples of 0.1) at a time with `stepBakeTimeInMinutes`
  (0..1440) between shifts and none after 100 % (API_LinearConfiguration); when the step does not
  divide 100 the last shift takes what is left (AWS::ECS::Service LinearConfiguration, the number
  of steps is floor(100 / StepPercent)).
- A PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT "is invoked before every traffic shift step" of a
  linear or canary deployment; its `timeoutConfiguration` is 1..20160 minutes with action
  ROLLBACK or CONTINUE (API_DeploymentLifecycleHook,
  API_DeploymentLifecycleHookTimeoutConfiguration).
- `bakeTimeInMinutes` is the time both revisions keep running after all production traffic has
  shifted (API_DeploymentConfiguration): our post-promotion bake.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

#: The catalogue's `gates` (workers.domain.catalogue.GateMode, which imports this module).
GateMode = Literal["manual", "auto", "final"]


class RolloutKeys(Protocol):
    """The catalogue keys a plan is made of (a ServiceConfig has them)."""

    @property
    def steps(self) -> list[int]: ...
    @property
    def bake(self) -> int: ...
    @property
    def gates(self) -> GateMode: ...
    @property
    def gate_timeout(self) -> int: ...
    @property
    def post_promotion_bake(self) -> int: ...
    @property
    def alarms(self) -> list[str]: ...


Strategy = Literal["CANARY", "LINEAR"]

#: ECS's bounds (API reference; see docs/ECS.md).
MIN_CANARY_PERCENT = 0.1
MIN_LINEAR_STEP_PERCENT = 3.0
MAX_STEP_BAKE_MINUTES = 1440
#: Documented for bakeTimeInMinutes only by third parties (0-1440): a doubt in docs/ECS.md.
MAX_BAKE_MINUTES = 1440
MIN_HOOK_TIMEOUT_MINUTES = 1
MAX_HOOK_TIMEOUT_MINUTES = 20160
#: The catalogue's own limit (workers/domain/catalogue.check_steps): suggestions stay within it.
MAX_CATALOGUE_STEPS = 20

PAUSE_STAGE = "PRE_PRODUCTION_TRAFFIC_SHIFT"


class EcsPlanError(ValueError):
    """The settings cannot be run as an ECS deployment; the message says why and what can."""


class StepsNotExpressible(EcsPlanError):
    """The catalogue's steps are not a traffic sequence ECS's CANARY or LINEAR can take."""


@dataclass(frozen=True)
class Pause:
    """One stop of the PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT, just before a traffic shift."""

    #: 0-based: the n-th time the hook pauses in this deployment.
    index: int
    #: The new revision's share of production traffic while paused (0 before the first shift).
    at_percent: float
    #: Its share once the deployment is continued.
    next_percent: float
    #: True when the step at `at_percent` has served traffic and must be judged before going on.
    judge: bool
    #: True when a person approves in Slack; otherwise the engine continues on a passing verdict.
    gate: bool


@dataclass(frozen=True)
class EcsRollout:
    """The ECS deployment that carries out a catalogue entry's rollout."""

    strategy: Strategy
    #: canaryPercent (CANARY) or stepPercent (LINEAR).
    percent: float
    #: canaryBakeTimeInMinutes or stepBakeTimeInMinutes: the catalogue's `bake`.
    step_bake_minutes: int
    #: bakeTimeInMinutes: the catalogue's `post_promotion_bake`.
    bake_minutes: int
    #: The PAUSE hook's timeout (the catalogue's `gate_timeout`); ECS then rolls back.
    hook_timeout_minutes: int
    alarms: tuple[str, ...]
    #: The new revision's production traffic after each shift, as ECS will set it.
    shifts: tuple[float, ...]
    pauses: tuple[Pause, ...]
    #: Plain sentences about roundings made (ECS counts whole minutes).
    notes: tuple[str, ...] = ()

    def deployment_configuration(self) -> dict[str, Any]:
        """The `deploymentConfiguration` of UpdateService (botocore's DeploymentConfiguration)."""
        config: dict[str, Any] = {
            "strategy": self.strategy,
            "bakeTimeInMinutes": self.bake_minutes,
            "lifecycleHooks": [
                {
                    "targetType": "PAUSE",
                    "lifecycleStages": [PAUSE_STAGE],
                    "timeoutConfiguration": {
                        "timeoutInMinutes": self.hook_timeout_minutes,
                        # The gate's timeout rolls back, as gate_timeout does with other routers.
                        "action": "ROLLBACK",
                    },
                }
            ],
            # Explicit either way so an UpdateService never keeps alarms configured earlier.
            "alarms": {
                "alarmNames": list(self.alarms),
                "enable": bool(self.alarms),
                "rollback": bool(self.alarms),
            },
        }
        if self.strategy == "CANARY":
            config["canaryConfiguration"] = {
                "canaryPercent": self.percent,
                "canaryBakeTimeInMinutes": self.step_bake_minutes,
            }
        else:
            config["linearConfiguration"] = {
                "stepPercent": self.percent,
                "stepBakeTimeInMinutes": self.step_bake_minutes,
            }
        return config

    def update_service_request(
        self, *, cluster: str, service: str, task_definition: str
    ) -> dict[str, Any]:
        """The keyword arguments of `ecs.update_service` that start this deployment."""
        return {
            "cluster": cluster,
            "service": service,
            "taskDefinition": task_definition,
            "deploymentConfiguration": self.deployment_configuration(),
        }


def _tenths(value: float) -> int:
    return round(value * 10)


def ecs_shifts(strategy: Strategy, percent: float) -> tuple[float, ...]:
    """The production percentages ECS sets one after the other, ending at 100.

    CANARY: (percent, 100). LINEAR: percent, 2 x percent, ... while below 100, then 100.
    Counted in tenths of a percent, as ECS's values are multiples of 0.1.
    """
    step = _tenths(percent)
    if step <= 0:
        raise EcsPlanError(f"a traffic step must be above 0 %, not {percent}")
    if strategy == "CANARY" or step >= 1000:
        return tuple(sorted({min(step, 1000) / 10, 100.0}))
    shifts = [k * step / 10 for k in range(1, math.ceil(1000 / step))]
    return (*shifts, 100.0)


def choose_strategy(steps: Sequence[int]) -> tuple[Strategy, float]:
    """CANARY for one step then 100, LINEAR for equal steps; otherwise StepsNotExpressible."""
    steps = list(steps)
    if len(steps) == 2 and steps[1] == 100 and steps[0] >= MIN_CANARY_PERCENT:
        return "CANARY", float(steps[0])
    first = float(steps[0]) if steps else 0.0
    if (
        steps
        and first >= MIN_LINEAR_STEP_PERCENT
        and list(ecs_shifts("LINEAR", first)) == [float(s) for s in steps]
    ):
        return "LINEAR", first
    raise StepsNotExpressible(_steps_refusal(steps))


def _format(steps: Sequence[float]) -> str:
    return ",".join(f"{s:g}" for s in steps)


def _linear_option(percent: float) -> tuple[str, tuple[float, ...]] | None:
    if percent < MIN_LINEAR_STEP_PERCENT or percent > 100:
        return None
    shifts = ecs_shifts("LINEAR", percent)
    if len(shifts) < 3 or len(shifts) > MAX_CATALOGUE_STEPS:
        return None
    return f"steps={_format(shifts)} (LINEAR {percent:g} %)", shifts


def expressible_alternatives(steps: Sequence[int]) -> list[str]:
    """Steps ECS can take that stay close to `steps`, best first, each with its strategy."""
    options: list[str] = []
    seen: set[tuple[float, ...]] = set()
    candidates: list[float] = []
    if steps:
        # As many steps as asked for, in equal increments...
        candidates.append(float(math.ceil(100 / len(steps))))
        # ...or the cautious first step kept, repeated.
        candidates.append(float(steps[0]))
    for percent in candidates:
        option = _linear_option(percent)
        if option and option[1] not in seen:
            seen.add(option[1])
            options.append(option[0])
    if steps and MIN_CANARY_PERCENT <= steps[0] < 100:
        options.append(f"steps={steps[0]},100 (CANARY {steps[0]} %)")
    return options


def _steps_refusal(steps: Sequence[int]) -> str:
    shown = _format([float(s) for s in steps])
    if steps and len(steps) > 2 and steps[0] < MIN_LINEAR_STEP_PERCENT:
        reason = (
            f"steps={shown} shift {steps[0]} % at a time; ECS's LINEAR shifts at least "
            f"{MIN_LINEAR_STEP_PERCENT:g} % per step"
        )
    else:
        reason = (
            f"steps={shown} are not equal increments (ECS's LINEAR shifts the same percentage "
            "each time, the last shift taking what is left; CANARY is one step then 100)"
        )
    options = expressible_alternatives(steps)
    if not options:
        return f"{reason}."
    listed = options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]
    return f"{reason}; ECS can do {listed}."


def gate_after(steps: Sequence[int], gates: GateMode, step_index: int) -> bool:
    """The catalogue's gate rule (ServiceConfig.gate_after) for plain arguments."""
    if steps[step_index] >= 100:
        return False
    if gates == "manual":
        return True
    if gates == "final":
        return step_index == len(steps) - 2
    return False


def _minutes(seconds: int, what: str, notes: list[str]) -> int:
    minutes = math.ceil(seconds / 60)
    if minutes * 60 != seconds:
        notes.append(f"{what} of {seconds}s runs as {minutes} min on ECS (whole minutes only)")
    return minutes


def plan_rollout(
    *,
    steps: Sequence[int],
    bake: int,
    gates: GateMode,
    gate_timeout: int,
    post_promotion_bake: int,
    alarms: Sequence[str] = (),
) -> EcsRollout:
    """The ECS deployment for these settings (durations in seconds, as the catalogue keeps them).

    Every pause but the first follows a step that has served traffic: the engine judges it, then
    opens a gate or continues by itself. Durations round up to whole minutes (more caution, never
    less); ones beyond ECS's limits are refused with the limit named.
    """
    strategy, percent = choose_strategy(steps)
    notes: list[str] = []
    step_bake = _minutes(bake, "bake", notes)
    if step_bake > MAX_STEP_BAKE_MINUTES:
        raise EcsPlanError(
            f"bake of {bake}s is longer than ECS's longest step bake, "
            f"{MAX_STEP_BAKE_MINUTES} min (24h)"
        )
    final_bake = _minutes(post_promotion_bake, "post_promotion_bake", notes)
    if final_bake > MAX_BAKE_MINUTES:
        raise EcsPlanError(
            f"post_promotion_bake of {post_promotion_bake}s is longer than ECS's bake time "
            f"limit, {MAX_BAKE_MINUTES} min (24h)"
        )
    timeout = max(MIN_HOOK_TIMEOUT_MINUTES, _minutes(gate_timeout, "gate_timeout", notes))
    if timeout > MAX_HOOK_TIMEOUT_MINUTES:
        raise EcsPlanError(
            f"gate_timeout of {gate_timeout}s is longer than ECS holds a paused deployment, "
            f"{MAX_HOOK_TIMEOUT_MINUTES} min (14d)"
        )
    shifts = ecs_shifts(strategy, percent)
    pauses = tuple(
        Pause(
            index=i,
            at_percent=shifts[i - 1] if i else 0.0,
            next_percent=shifts[i],
            judge=i > 0,
            gate=i > 0 and gate_after(steps, gates, i - 1),
        )
        for i in range(len(shifts))
    )
    return EcsRollout(
        strategy=strategy,
        percent=percent,
        step_bake_minutes=step_bake,
        bake_minutes=final_bake,
        hook_timeout_minutes=timeout,
        alarms=tuple(alarms),
        shifts=shifts,
        pauses=pauses,
        notes=tuple(notes),
    )


def plan_for_service(service: RolloutKeys) -> EcsRollout:
    """plan_rollout with a catalogue entry's settings (overrides already applied)."""
    return plan_rollout(
        steps=service.steps,
        bake=service.bake,
        gates=service.gates,
        gate_timeout=service.gate_timeout,
        post_promotion_bake=service.post_promotion_bake,
        alarms=service.alarms,
    )
