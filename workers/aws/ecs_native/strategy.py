"""The ECS deployment plan, for the backend: workers.domain.ecs_plan (pure) under its first name.

The plan moved to the domain so the catalogue can refuse steps ECS cannot take without loading
workers.aws; this module keeps the backend's imports (and older ones) working.
"""

from __future__ import annotations

from workers.domain.ecs_plan import (
    MAX_BAKE_MINUTES,
    MAX_CATALOGUE_STEPS,
    MAX_HOOK_TIMEOUT_MINUTES,
    MAX_STEP_BAKE_MINUTES,
    MIN_CANARY_PERCENT,
    MIN_HOOK_TIMEOUT_MINUTES,
    MIN_LINEAR_STEP_PERCENT,
    PAUSE_STAGE,
    EcsPlanError,
    EcsRollout,
    Pause,
    StepsNotExpressible,
    Strategy,
    choose_strategy,
    ecs_shifts,
    expressible_alternatives,
    gate_after,
    plan_for_service,
    plan_rollout,
)

__all__ = [
    "MAX_BAKE_MINUTES",
    "MAX_CATALOGUE_STEPS",
    "MAX_HOOK_TIMEOUT_MINUTES",
    "MAX_STEP_BAKE_MINUTES",
    "MIN_CANARY_PERCENT",
    "MIN_HOOK_TIMEOUT_MINUTES",
    "MIN_LINEAR_STEP_PERCENT",
    "PAUSE_STAGE",
    "EcsPlanError",
    "EcsRollout",
    "Pause",
    "StepsNotExpressible",
    "Strategy",
    "choose_strategy",
    "ecs_shifts",
    "expressible_alternatives",
    "gate_after",
    "plan_for_service",
    "plan_rollout",
]
