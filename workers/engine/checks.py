"""Judging a step: the periodic check while baking, holding, gated or after promotion.

A check fetches the step's cumulative counts (workers.analysis.judge decides) and moves the
deployment: keep baking, hold for data, open a gate, go on, or roll back at once on a failure.
"""

from __future__ import annotations

from datetime import UTC, datetime

from workers.analysis.judge import Counts, Outcome, Verdict
from workers.analysis.judge import judge as judge_counts
from workers.analysis.window import covered_at, metric_window
from workers.domain.deployment import Deployment
from workers.domain.durations import format_duration
from workers.domain.events import (
    Cause,
    Event,
    GateOpened,
    GateReminder,
    Holding,
    StepFailed,
    StepPassed,
)
from workers.domain.state import State, Trigger
from workers.engine.machine import Engine, Mutate


def check(engine: Engine, dep: Deployment) -> None:
    """One periodic check of a monitored deployment, and the move it leads to."""
    # The canary must still be there: its ECS service or virtual node (target group) deleted by
    # someone else mid-rollout raises AwsStepError here, and the deployment rolls back saying so.
    engine.backend(dep).check_canary(dep.recorded_canary())
    verdict = judge(engine, dep)
    now = engine.now()

    def seen(d: Deployment) -> None:
        d.checks, d.last_verdict, d.attempts = d.checks + 1, verdict, 0

    step = dep.step_number or None
    if verdict.outcome == Outcome.FAIL:
        failed = StepFailed(at=now, step=step, weight=dep.weight, verdict=verdict)
        # Not a compare-and-set on the version this check read: a breach must win even if a
        # click moved the deployment on meanwhile (it is still rolled back, from there).
        engine.request_rollback(
            dep.id,
            reason=verdict.reason,
            actor=None,
            by=Cause.CANARY_CHECK,
            events=[failed],
            verdict=verdict,
        )
        return
    s = dep.settings
    if dep.state == State.AWAITING_APPROVAL:
        at_gate(engine, dep, seen, now)
        return
    if verdict.outcome == Outcome.BAKING:
        engine.move(dep, Trigger.CHECKED, mutate=seen, delay=check_delay(engine, dep))
        return
    if verdict.outcome == Outcome.NOT_ENOUGH_DATA:
        hold_since = dep.hold_since or now
        if now - hold_since >= s.gate_timeout:
            engine.roll_back(
                dep,
                by=Cause.HOLD_TIMEOUT,
                actor=None,
                reason=(
                    f"not enough traffic to judge step {dep.step_number} "
                    f"within {format_duration(s.gate_timeout)}: {verdict.reason}"
                ),
            )
            return

        def hold(d: Deployment) -> None:
            seen(d)
            d.hold_since = hold_since

        if dep.state == State.BAKING:
            holding = Holding(
                at=now,
                step=step,
                weight=dep.weight,
                verdict=verdict,
                deadline=hold_since + s.gate_timeout,
                interval=s.analysis_interval,
            )
            engine.move(
                dep,
                Trigger.NOT_ENOUGH_DATA,
                mutate=hold,
                events=[holding],
                delay=s.analysis_interval,
            )
        else:
            engine.move(dep, Trigger.CHECKED, mutate=hold, delay=s.analysis_interval)
        return
    # PASS
    full = dep.state == State.POST_PROMOTION
    gated = not full and s.gate_after(dep.step_index)
    passed = StepPassed(at=now, step=step, weight=dep.weight, verdict=verdict)
    if full:
        engine.move(dep, Trigger.BAKE_DONE, mutate=seen, events=[passed])
    elif gated:

        def open_gate(d: Deployment) -> None:
            seen(d)
            d.gate_opened_at = now

        gate = GateOpened(
            at=now,
            step=step,
            next_step=dep.step_number + 1,
            next_weight=dep.next_weight,
            timeout_at=now + s.gate_timeout,
        )
        engine.move(
            dep,
            Trigger.GATE_OPENED,
            mutate=open_gate,
            events=[passed, gate],
            delay=s.analysis_interval,
        )
    else:

        def next_step(d: Deployment) -> None:
            seen(d)
            d.leave_step()
            d.step_index += 1

        engine.move(dep, Trigger.PASSED, mutate=next_step, events=[passed])


def at_gate(engine: Engine, dep: Deployment, seen: Mutate, now: float) -> None:
    s = dep.settings
    opened = dep.gate_opened_at or now
    if now - opened >= s.gate_timeout:
        engine.roll_back(
            dep,
            by=Cause.GATE_TIMEOUT,
            actor=None,
            reason=(
                f"nobody approved step {dep.step_number + 1} within "
                f"{format_duration(s.gate_timeout)}"
            ),
        )
        return
    events: list[Event] = []
    if not dep.reminded and now - opened >= s.gate_timeout / 2:
        events.append(
            GateReminder(at=now, next_weight=dep.next_weight, timeout_at=opened + s.gate_timeout)
        )

    def remind(d: Deployment) -> None:
        seen(d)
        d.reminded = d.reminded or bool(events)

    delay = min(s.analysis_interval, max(0.0, opened + s.gate_timeout - now))
    engine.move(dep, Trigger.CHECKED, mutate=remind, events=events, delay=delay)


def judge(engine: Engine, dep: Deployment) -> Verdict:
    """Fetch the step's cumulative counts and alarms and judge them.

    Only whole, published periods are read (workers.analysis.window): from the first period
    after the weight was applied, so the previous step's traffic never counts, to the last one
    CloudWatch has had `metric_lag` to publish; the bake is complete when those cover it.
    """
    s, stable, canary = dep.settings, dep.recorded_stable(), dep.recorded_canary()
    start = dep.step_started_at or dep.state_since
    window = metric_window(start, engine.now(), s.metric_period, s.lag)
    backend = engine.backend(dep)
    # Counts and, where the backend publishes it, latency per period: one GetMetricData call.
    measured = backend.measure(
        stable,
        canary,
        start=datetime.fromtimestamp(window.start, UTC),
        end=datetime.fromtimestamp(window.end, UTC),
    )
    full = dep.weight >= 100
    alarms = backend.alarms_firing(s.alarms)
    bake = s.post_promotion_bake if dep.state == State.POST_PROMOTION else s.bake
    bake_over = window.covered >= bake
    latency = measured.latency
    if latency is not None and full:
        latency = latency.without_stable()  # at 100 % the stable serves nothing to compare
    return judge_counts(
        measured.canary,
        Counts(0, 0) if full else measured.stable,
        max_error_rate_pct=s.max_error_rate,
        min_requests=s.min_requests,
        bake_complete=bake_over,
        alarms_firing=alarms,
        # The whole deployment's evidence, so the error budget holds over all its looks; the
        # look that decides the step (the first with the bake over) spends the step's share,
        # every other look (holding, at a gate) only the small always-valid one.
        earlier=dep.evidence,
        end_of_bake=bake_over and dep.state in (State.BAKING, State.POST_PROMOTION),
        # Router ecs without an ALB: no metric tells the revisions apart (docs/ECS.md).
        alarms_only=backend.judged_by_alarms_only(stable) and bool(s.alarms),
        latency=latency,
        latency_limits=s.latency_limits,
    )


def check_delay(engine: Engine, dep: Deployment, *, fresh: bool = False) -> float:
    """Seconds to the next check: an analysis interval, or sooner the moment published data
    first covers the whole bake (its last period plus `metric_lag`)."""
    s = dep.settings
    bake = s.post_promotion_bake if dep.weight >= 100 else s.bake
    start = engine.now() if fresh else (dep.step_started_at or engine.now())
    remaining = covered_at(start, bake, s.metric_period, s.lag) - engine.now()
    return max(0.0, min(float(s.analysis_interval), remaining))
