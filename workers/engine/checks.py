"""Judging a step: the periodic check while baking, holding, gated or after promotion.

A check fetches the step's cumulative counts (workers.analysis.judge decides) and moves the
deployment: keep baking, hold for data, open a gate, go on, or roll back at once on a failure.
"""

from __future__ import annotations

from workers import defaults
from workers.analysis.judge import Counts, Outcome, Verdict
from workers.analysis.judge import judge as judge_counts
from workers.analysis.window import covered_at
from workers.aws.cloudwatch import firing_of
from workers.aws.errors import AwsStepError
from workers.domain.deployment import Deployment, LastRead
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
from workers.engine import batch
from workers.engine.batch import presence_due, window_of
from workers.engine.machine import Engine, Mutate
from workers.engine.read import Read
from workers.runtime.telemetry import observe_verdict


def check(engine: Engine, dep: Deployment) -> None:
    """One periodic check of a monitored deployment, and the move it leads to."""
    now = engine.now()
    got = batch.read(engine, dep, window_of(dep, now))
    window = got.window
    looked = presence_due(dep, got.canary.requests, window, now)
    if looked:
        # The canary must still be there: its ECS service or virtual node (target group)
        # deleted by someone else mid-rollout raises AwsStepError here, and the deployment
        # rolls back saying so. Looked at every PRESENCE_INTERVAL_SECONDS and as soon as its
        # traffic stops (workers.engine.batch.presence_due), in batched calls where AWS allows.
        backend, canary = engine.backend(dep), dep.recorded_canary()
        if not got.presence_looked:
            backend.check_canary(canary)
        elif got.gone:
            raise AwsStepError(got.gone)
        else:
            backend.check_rest(canary)
    verdict = judge(engine, dep, got)
    observe_verdict(verdict)
    late = now - dep.next_due_at if dep.next_due_at is not None else 0.0
    since = cadence_start(dep.next_due_at, now)
    read = LastRead(
        step_started_at=dep.step_started_at,
        window_end=window.end,
        canary_requests=got.canary.requests,
    )

    def seen(d: Deployment) -> None:
        d.saw(verdict, now)
        d.attempts = 0
        d.last_read = read
        d.canary_checked_at = now if looked else d.canary_checked_at
        # Told on the card: a check that ran late (the AWS call budget spreads them).
        d.late_by = late if late >= defaults.LATE_CHECK_SECONDS else None

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
        at_gate(engine, dep, seen, now, since)
        return
    if verdict.outcome == Outcome.BAKING:
        delay = check_delay(engine, dep, since=since)
        engine.move(dep, Trigger.CHECKED, mutate=seen, delay=delay, since=since)
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
                since=since,
            )
        else:
            engine.move(dep, Trigger.CHECKED, mutate=hold, delay=s.analysis_interval, since=since)
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
            since=since,
        )
    else:

        def next_step(d: Deployment) -> None:
            seen(d)
            d.leave_step()
            d.step_index += 1

        engine.move(dep, Trigger.PASSED, mutate=next_step, events=[passed])


def at_gate(engine: Engine, dep: Deployment, seen: Mutate, now: float, since: float) -> None:
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

    delay = min(s.analysis_interval, max(0.0, opened + s.gate_timeout - since))
    engine.move(dep, Trigger.CHECKED, mutate=remind, events=events, delay=delay, since=since)


def judge(engine: Engine, dep: Deployment, got: Read | None = None) -> Verdict:
    """Judge the step's cumulative counts and alarms (`got`, else read now).

    Only whole, published periods are read (workers.analysis.window): from the first period
    after the weight was applied, so the previous step's traffic never counts, to the last one
    CloudWatch has had `metric_lag` to publish; the bake is complete when those cover it.
    """
    s, stable = dep.settings, dep.recorded_stable()
    if got is None:
        got = batch.read(engine, dep, window_of(dep, engine.now()))
    window, canary_counts, stable_counts = got.window, got.canary, got.stable
    backend = engine.backend(dep)
    alarms = firing_of(s.alarms, got.alarm_states) if s.alarms else ()
    full = dep.weight >= 100
    bake = s.post_promotion_bake if dep.state == State.POST_PROMOTION else s.bake
    bake_over = window.covered >= bake
    # Latency per period, where the backend publishes it: read with the counts (same call).
    latency = got.latency
    if latency is not None and full:
        latency = latency.without_stable()  # at 100 % the stable serves nothing to compare
    return judge_counts(
        canary_counts,
        Counts(0, 0) if full else stable_counts,
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
        # The stable's counts before the deployment (read at provisioning; None on old records).
        baseline=dep.baseline.stable if dep.baseline is not None else None,
    )


def check_delay(
    engine: Engine, dep: Deployment, *, fresh: bool = False, since: float | None = None
) -> float:
    """Seconds from `since` (default now) to the next check: an analysis interval, or sooner
    the moment published data first covers the whole bake (its last period plus
    `metric_lag`)."""
    s = dep.settings
    bake = s.post_promotion_bake if dep.weight >= 100 else s.bake
    now = engine.now()
    start = now if fresh else (dep.step_started_at or now)
    remaining = covered_at(start, bake, s.metric_period, s.lag) - (now if since is None else since)
    return max(0.0, min(float(s.analysis_interval), remaining))


def cadence_start(due: float | None, now: float, slot: float = defaults.SLOT_SECONDS) -> float:
    """When a check that was `due` and runs at `now` counts its next check's delay from: when it
    was due, so checks keep their interval on slot ends instead of each waiting a slot more
    than its interval (a check always runs a little after its slot's end, the time the
    scheduler and its slot's shared read take); from at most a slot before now, so a check that
    ran late (the AWS call budget spreads them) is not followed by another at once."""
    if due is None:
        return now
    return min(now, max(due, now - slot))
