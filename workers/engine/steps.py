"""What each state of a deployment does: provision, wait, shift, tear down, roll back, clean up.

Each step is a short job: it looks at AWS through the service's backend, acts if needed and moves
the deployment on with `Engine.move` (compare-and-set). Judging a step lives in
workers.engine.checks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from botocore.exceptions import BotoCoreError, ClientError

from workers import defaults
from workers.analysis.window import metric_window
from workers.aws.cloudwatch import QueryFailed
from workers.aws.errors import AwsStepError, RolledBackByAws
from workers.aws.removal import Removal
from workers.doctor import SERIES_WINDOW, missing_series
from workers.domain.deployment import Baseline, Deployment
from workers.domain.durations import format_duration
from workers.domain.events import (
    Cause,
    Failed,
    GateOpened,
    Promoted,
    Provisioned,
    Ready,
    Resources,
    RolledBack,
    RouteRestored,
    Shifted,
)
from workers.domain.policy import allowed_images, image_refusal
from workers.domain.state import State, Trigger
from workers.domain.traffic import canary_weights
from workers.domain.versions import StableRecord
from workers.engine.checks import check, check_delay
from workers.engine.machine import Engine, canary_name

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from workers.aws.base import Backend, ManagedBackend

#: How far before the deployment the stable's counts are read at provisioning (its baseline):
#: an hour of the stable serving everything is about 7 times what it serves in the first two
#: 5-minute bakes (at 90 % and 75 %), and close enough in time that the time of day has moved
#: little (docs/ANALYSIS.md, "A baseline").
BASELINE_WINDOW = timedelta(hours=1)


def provision(engine: Engine, dep: Deployment) -> None:
    backend = engine.backend(dep)
    if dep.stable is None:
        stable = backend.discover()

        def remember(d: Deployment) -> None:
            d.stable, d.old_image = stable, stable.image

        # Recorded before anything is created, so a re-run never re-discovers a half-shifted
        # route and a rollback knows what to restore.
        dep = engine.move(dep, None, mutate=remember, delay=None)
    stable = dep.recorded_stable()
    # Without `images` in the catalogue only the worker knows where the service's images come
    # from: the stable's repository. A foreign image ends here, before anything is created.
    patterns = allowed_images(dep.settings.images, stable.image)
    refused = image_refusal(dep.service, dep.image, patterns)
    if refused:
        engine.roll_back(dep, by=Cause.IMAGE_POLICY, actor=None, reason=refused)
        return
    # No data is never a pass: a stable whose series CloudWatch does not have would hold every
    # step until its timeout, so the deployment ends here, before anything is created.
    missing = missing_stable_series(engine, backend, stable)
    if missing:
        engine.roll_back(dep, by=Cause.NO_METRICS, actor=None, reason=missing)
        return
    # Read before the canary exists: the stable alone, over the hour before.
    baseline = read_baseline(engine, dep, backend, stable)
    canary = backend.provision(stable, name=canary_name(dep), image=dep.image, deployment_id=dep.id)

    def provisioned(d: Deployment) -> None:
        d.canary, d.attempts, d.baseline = canary, 0, baseline

    told = Provisioned(
        at=engine.now(),
        canary=Resources.model_validate(backend.describe(canary)),
        desired=stable.desired_count,
        old_image=stable.image,
    )
    engine.move(dep, Trigger.PROVISIONED, mutate=provisioned, events=[told])


def missing_stable_series(engine: Engine, backend: Backend, stable: StableRecord) -> str | None:
    """Why the stable cannot be measured (the exact query that found nothing in the last
    SERIES_WINDOW), or None when its series has data or it is judged by alarms alone."""
    series = backend.stable_series(stable)
    if not series:
        return None
    end = datetime.fromtimestamp(engine.now(), UTC)
    if backend.series_present(series, start=end - SERIES_WINDOW, end=end):
        return None
    minutes = int(SERIES_WINDOW.total_seconds() // 60)
    why = missing_series(series, minutes)
    return f"the stable publishes no metric series the checks could read: {why}"


def read_baseline(
    engine: Engine, dep: Deployment, backend: Backend, stable: StableRecord
) -> Baseline | None:
    """The stable's counts over the whole published periods of the last BASELINE_WINDOW (one
    GetMetricData through the backend's own count query); None when it is judged by alarms
    only or the read failed: the deployment is then judged on its own minutes, as before."""
    s, now = dep.settings, engine.now()
    window = metric_window(now - BASELINE_WINDOW.total_seconds(), now, s.metric_period, s.lag)
    if window.empty:
        return None
    start, end = (datetime.fromtimestamp(t, UTC) for t in (window.start, window.end))
    try:
        counts = backend.stable_counts(stable, start=start, end=end)
    except (BotoCoreError, ClientError, QueryFailed) as exc:
        log.warning(
            "deployment %s: no baseline, reading the stable's counts failed: %s", dep.id, exc
        )
        return None
    return None if counts is None else Baseline(start=window.start, end=window.end, stable=counts)


def wait_ready(engine: Engine, dep: Deployment) -> None:
    ready = engine.backend(dep).readiness(dep.recorded_canary())
    if ready.failed:
        # ECS gave up (its circuit breaker): no amount of waiting makes the canary steady.
        engine.roll_back(
            dep,
            by=Cause.ERROR,
            actor=None,
            reason=(
                "the canary's ECS deployment failed: "
                f"{ready.reason or 'ECS gave no reason'} ({ready.running}/{ready.desired} running)"
            ),
        )
        return
    if ready.ready and dep.accept_plan and not dep.approvals:
        accept_plan_gate(engine, dep, ready.running, ready.desired)
        return
    if ready.ready:

        def first_step(d: Deployment) -> None:
            d.step_index, d.attempts = 0, 0

        engine.move(
            dep,
            Trigger.READY,
            mutate=first_step,
            events=[Ready(at=engine.now(), running=ready.running, desired=ready.desired)],
        )
        return
    waited = engine.now() - dep.state_since
    if waited >= dep.settings.ready_timeout:
        engine.roll_back(
            dep,
            by=Cause.READY_TIMEOUT,
            actor=None,
            reason=(
                f"canary tasks not steady after {format_duration(dep.settings.ready_timeout)} "
                f"({ready.running}/{ready.desired} running, rollout "
                f"{(ready.rollout_state or 'unknown').lower()})"
            ),
        )
        return
    engine.move(dep, Trigger.CHECKED, delay=engine.ready_poll)


def accept_plan_gate(engine: Engine, dep: Deployment, running: int, desired: int) -> None:
    """Overrides beyond the catalogue's caution (allowed by `allow_overrides`): before any
    traffic moves, a gate asks an approver to accept the plan in force; approving it shifts to
    the first step as any gate does."""
    now, s = engine.now(), dep.settings

    def open_gate(d: Deployment) -> None:
        d.gate_opened_at, d.attempts = now, 0

    gate = GateOpened(
        at=now,
        next_step=1,
        next_weight=dep.next_weight,
        timeout_at=now + s.gate_timeout,
        plan=s.plan.describe(),
        accept=dep.accept_plan,
    )
    ready = Ready(at=now, running=running, desired=desired)
    engine.move(
        dep,
        Trigger.GATE_OPENED,
        mutate=open_gate,
        events=[ready, gate],
        delay=s.analysis_interval,
    )


def shift(engine: Engine, dep: Deployment) -> None:
    backend = engine.backend(dep)
    weights = canary_weights(
        backend.target(dep.recorded_stable()), backend.target(dep.recorded_canary()), dep.weight
    )
    if backend.shifts_traffic_itself:
        follow_shift(engine, dep, cast("ManagedBackend", backend), weights)
        return
    backend.router().set_weights(weights)
    record_shift(engine, dep, backend.traffic_name(), weights)


def follow_shift(
    engine: Engine, dep: Deployment, backend: ManagedBackend, weights: dict[str, int]
) -> None:
    """Router ecs: let AWS take the step to `dep.weight` from the pause before it, then record
    the shift once AWS has made it; until then look again on a scheduled job (never a sleep).

    Crash safety: the pause continued is recorded (`continued_hook`) before
    ContinueServiceDeployment is called, and every run first reads where ECS stands. A worker
    killed after the call but before the record finds the traffic already at the step's weight
    and records the shift without a second CONTINUE; one killed before the call finds the same
    pause still awaiting and continues it then. The next pause (at this step's weight, after
    ECS's step bake) is never continued here: only a pause while the traffic is still at the
    previous step's weight is this step's, so no step is let through unjudged.
    """
    canary = dep.recorded_canary()
    progress = backend.progress(canary)
    if progress.rolled_back:
        raise RolledBackByAws(progress.rolled_back)
    if progress.weight >= dep.weight or progress.done:
        record_shift(engine, dep, backend.traffic_name(), weights)
        return
    previous = dep.settings.steps[dep.step_index - 1] if dep.step_index > 0 else 0
    hook = progress.awaiting_hook
    if hook is None or round(progress.weight) != previous:
        # ECS is still baking the previous step (or scaling up): its pause is not there yet.
        engine.move(dep, None, delay=engine.ready_poll)
        return
    if canary.continued_hook != hook:

        def remember(d: Deployment) -> None:
            d.canary = d.recorded_canary().model_copy(update={"continued_hook": hook})

        dep = engine.move(dep, None, mutate=remember, delay=None)
    # The same pause still awaiting after a recorded CONTINUE means the call never reached ECS
    # (ECS refuses to continue a pause twice): continuing it now is the first time.
    backend.continue_rollout(dep.recorded_canary(), hook)
    if backend.progress(dep.recorded_canary()).weight >= dep.weight:
        record_shift(engine, dep, backend.traffic_name(), weights)
    else:  # ECS shifts gradually: look again soon
        engine.move(dep, None, delay=engine.ready_poll)


def record_shift(engine: Engine, dep: Deployment, route: str, weights: dict[str, int]) -> None:
    """The step's weights are applied: bake and judge from now."""

    def applied(d: Deployment) -> None:
        d.step_started_at, d.gate_opened_at, d.hold_since = engine.now(), None, None
        d.attempts, d.last_verdict, d.reminded = 0, None, False

    shifted = Shifted(
        at=engine.now(),
        weight=dep.weight,
        route=route,
        weights=weights,
        post_promotion_bake=dep.settings.post_promotion_bake if dep.weight >= 100 else None,
    )
    engine.move(
        dep,
        Trigger.SHIFTED,
        mutate=applied,
        delay=check_delay(engine, dep, fresh=True),
        events=[shifted],
    )


def tear_down(engine: Engine, dep: Deployment) -> None:
    backend = engine.backend(dep)
    stable, canary = dep.recorded_stable(), dep.recorded_canary()
    backend.router().set_weights({backend.target(canary): 100})
    removal = backend.retire_stable(stable, canary)
    if not removal.finished:
        _wait_for_drain(engine, dep, removal, "the old version")
        return
    problems = removal.problems
    now = engine.now()

    def done(d: Deployment) -> None:
        d.problems, d.finished_at, d.attempts = problems, now, 0

    promoted = Promoted(
        at=now,
        problems=problems,
        took=now - dep.created_at,
        approvers=[a.actor for a in dep.approvals],
        checks=dep.checks,
        old=(
            None
            if backend.shifts_traffic_itself
            else Resources.model_validate(backend.describe(stable))
        ),
    )
    engine.move(dep, Trigger.TORN_DOWN, mutate=done, events=[promoted], delay=None)


def _wait_for_drain(engine: Engine, dep: Deployment, removal: Removal, what: str) -> None:
    """Run this step again in a little while, to look at what AWS is still draining: a short
    scheduled job, never a sleep, and no retry attempt used up. Past the bound the deployment
    ends failed, naming what a person must clean up."""
    now = engine.now()
    started = dep.drain_started_at if dep.drain_started_at is not None else now
    if now - started < defaults.DRAIN_TIMEOUT_SECONDS:
        log.info("deployment %s: waiting for AWS to drain: %s", dep.id, "; ".join(removal.draining))

        def waiting(d: Deployment) -> None:
            d.drain_started_at = started

        engine.move(dep, None, mutate=waiting, delay=engine.ready_poll)
        return
    problems = [*removal.problems, *removal.draining]
    reason = (
        f"removing {what} did not finish within "
        f"{format_duration(defaults.DRAIN_TIMEOUT_SECONDS)}: {removal.draining[0]}"
    )

    def give_up(d: Deployment) -> None:
        d.problems, d.finished_at = problems, now

    failed = Failed(at=now, reason=reason, problems=problems)
    engine.move(dep, Trigger.GIVE_UP, events=[failed], mutate=give_up, delay=None)


def restore_route(engine: Engine, dep: Deployment) -> None:
    stable, target = dep.stable, None
    if stable is not None:
        # Whether or not the canary was ever recorded, the route goes back to the stable
        # alone: one update, before anything else is undone.
        backend = engine.backend(dep)
        target = backend.target(stable)
        backend.router().set_weights({target: 100})
    now = engine.now()
    took = now - (dep.rollback_requested_at or now)

    def restored(d: Deployment) -> None:
        d.route_restored_at, d.attempts = now, 0

    engine.move(
        dep,
        Trigger.ROUTE_RESTORED,
        mutate=restored,
        events=[RouteRestored(at=now, seconds=round(took, 3), stable=target)],
    )


def clean_up(engine: Engine, dep: Deployment) -> None:
    s = dep.settings
    removal = Removal()
    found = None
    if dep.stable is not None:
        backend = engine.backend(dep)
        found = dep.canary or backend.find_canary(dep.stable, name=canary_name(dep))
        if found is not None:
            removal = backend.remove_canary(dep.stable, found, keep=s.keep_failed_canary)
    if removal.problems:
        raise AwsStepError("; ".join(removal.problems))
    if not removal.finished:
        _wait_for_drain(engine, dep, removal, "the canary")
        return
    now = engine.now()

    def done(d: Deployment) -> None:
        d.finished_at, d.attempts = now, 0

    engine.move(
        dep,
        Trigger.CLEANED_UP,
        mutate=done,
        delay=None,
        events=[
            RolledBack(
                at=now,
                by=dep.ended_by,
                reason=dep.reason,
                actor=dep.stopped_by,
                kept=s.keep_failed_canary,
                took=now - dep.created_at,
                canary_existed=found is not None,
            )
        ],
    )


STEPS: dict[State, Callable[[Engine, Deployment], None]] = {
    State.PROVISIONING: provision,
    State.WAITING_READY: wait_ready,
    State.SHIFTING: shift,
    State.BAKING: check,
    State.HOLDING: check,
    State.AWAITING_APPROVAL: check,
    State.POST_PROMOTION: check,
    State.TEARING_DOWN: tear_down,
    State.ROLLING_BACK: restore_route,
    State.CLEANING_UP: clean_up,
}
