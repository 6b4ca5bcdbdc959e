"""The rollout engine's machinery: run a deployment's current step once, move it on by
compare-and-set, schedule the next job, roll back, retry errors.

What each state does is in workers.steps, judging a step in workers.checks. A step is a short
job: nothing here sleeps through a bake or a gate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from workers import lateness
from workers.aws.errors import AwsStepError
from workers.backends import Backend, backend_for
from workers.deployment import Deployment, Event
from workers.run_lock import RunLock
from workers.runtime import Runtime
from workers.state import (
    ROLLBACKABLE,
    URGENT,
    State,
    Trigger,
    next_state,
)
from workers.store import Conflict

log = logging.getLogger(__name__)

#: Attempts at a forward step (provisioning, shifting, checking) before rolling back.
FORWARD_ATTEMPTS = 3
#: Attempts at a rollback or tear-down step before giving up and asking a person.
CLEANUP_ATTEMPTS = 5
#: Seconds between two attempts: doubled each time, capped.
RETRY_BASE, RETRY_CAP = 2.0, 60.0

Mutate = Callable[[Deployment], None]


class Engine:
    """Runs deployment steps against one Runtime."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = rt.store

    # entry points ----------------------------------------------------------------------------
    def run(self, dep_id: str, version: int) -> str:
        """Do the deployment's current step if it is still at `version`; say what happened."""
        dep = self.store.get(dep_id)
        if dep is None or dep.version != version or not dep.active:
            return "stale"
        lock = RunLock(self.rt.redis, f"{self.store.prefix}:run:{dep_id}", self.rt.run_lock_seconds)
        # A rollback waits for a sibling's AWS call to finish (so it cannot be overwritten by a
        # shift still in flight); other steps leave it to a re-run.
        if not lock.acquire(wait=10.0 if dep.state in URGENT else 0.0):
            self.rt.scheduler.run(dep_id, version, delay=1, urgent=dep.state in URGENT)
            return "busy"
        try:
            dep = self.store.get(dep_id)
            if dep is None or dep.version != version or not dep.active:
                return "stale"
            if dep.next_due_at is not None:
                lateness.record(self.rt.redis, self.store.prefix, self.now() - dep.next_due_at)
            try:
                step_for(dep.state)(self, dep)
            except Conflict:
                return "conflict"
            except (AwsStepError, ClientError, BotoCoreError, ValueError) as exc:
                self._on_error(dep, exc)
            return dep.state.value
        finally:
            lock.release()

    def request_rollback(
        self,
        dep_id: str,
        *,
        reason: str,
        actor: str | None,
        by: str,
        events: Iterable[Event] = (),
        verdict: dict[str, Any] | None = None,
    ) -> bool:
        """Move a deployment to ROLLING_BACK (once); False if it cannot be rolled back now."""
        for _ in range(20):
            dep = self.store.get(dep_id)
            if dep is None or dep.state not in ROLLBACKABLE:
                return False
            try:
                self.roll_back(
                    dep, reason=reason, actor=actor, by=by, events=events, verdict=verdict
                )
                return True
            except Conflict:
                continue
        return False

    # moving on -------------------------------------------------------------------------------
    def now(self) -> float:
        return self.rt.clock()

    def event(self, kind: str, **fields: Any) -> Event:
        return Event(at=self.now(), kind=kind, state=State.PROVISIONING, version=0, **fields)

    def move(
        self,
        dep: Deployment,
        trigger: Trigger | None,
        *,
        events: Iterable[Event] = (),
        mutate: Mutate | None = None,
        delay: float | None = 0,
    ) -> Deployment:
        """Compare-and-set `dep` to the state `trigger` leads to; schedule its next job.

        `trigger` None records a change without leaving the state. `delay` None schedules no
        job (terminal states); the watchdog relies on `next_due_at` to find a lost one.
        """
        new_events = list(events)

        def change(d: Deployment) -> list[Event]:
            if mutate:
                mutate(d)
            if trigger is not None:
                full = trigger == Trigger.SHIFTED and d.weight >= 100
                d.state = next_state(d.state, trigger, full_weight=full)
            # Due at once when no job is scheduled (the caller goes on inline): if this process
            # dies, the watchdog finds the deployment overdue and runs it again.
            d.next_due_at = self.now() + (delay or 0) if d.active else None
            for e in new_events:
                e.state = d.state
                e.step = e.step if e.step is not None else (d.step_number or None)
            return new_events

        updated = self.store.transition(dep.id, dep.version, change)
        if updated.active and delay is not None:
            self.rt.scheduler.run(
                updated.id, updated.version, delay=delay, urgent=updated.state in URGENT
            )
        if new_events:
            self.rt.scheduler.notify(updated.id)
        log.info(
            "deployment %s: %s -> %s (v%d)",
            dep.id,
            dep.state.value,
            updated.state.value,
            updated.version,
        )
        return updated

    def roll_back(
        self,
        dep: Deployment,
        *,
        reason: str,
        actor: str | None,
        by: str,
        events: Iterable[Event] = (),
        verdict: dict[str, Any] | None = None,
    ) -> Deployment:
        def mark(d: Deployment) -> None:
            d.reason, d.ended_by, d.attempts = reason, by, 0
            d.rollback_requested_at = self.now()
            if verdict is not None:  # the failing check is the last verdict people see
                d.last_verdict, d.checks = verdict, d.checks + 1

        events = list(events)
        data: dict[str, Any] = {"by": by}
        for event in events:
            if event.kind == "step_failed":
                # Its message says the rollback has begun: Slack gets one reply, not two.
                event.data["rolling_back"] = True
                data["shown_with"] = "step_failed"
        started = self.event(
            "rollback_started", actor=actor, reason=reason, weight=dep.weight, data=data
        )
        return self.move(dep, Trigger.ROLL_BACK, events=[*events, started], mutate=mark)

    def _on_error(self, dep: Deployment, exc: Exception) -> None:
        message = describe_error(exc)
        log.warning("deployment %s: %s failed: %s", dep.id, dep.state.value, message)
        dep = self.store.get(dep.id) or dep
        attempts = dep.attempts + 1
        deterministic = isinstance(exc, AwsStepError | ValueError)
        if dep.state in ROLLBACKABLE:
            if deterministic or attempts >= FORWARD_ATTEMPTS:
                self.roll_back(dep, reason=message, actor=None, by="error")
                return
        elif attempts >= CLEANUP_ATTEMPTS:
            problems = [*dep.problems, message, *self._what_is_left(dep)]

            def give_up(d: Deployment) -> None:
                d.problems, d.finished_at = problems, self.now()

            failed = self.event("failed", reason=message, data={"problems": problems})
            self.move(dep, Trigger.GIVE_UP, events=[failed], mutate=give_up, delay=None)
            return

        def count(d: Deployment) -> None:
            d.attempts = attempts

        self.move(dep, None, mutate=count, delay=min(RETRY_CAP, RETRY_BASE**attempts))

    def _what_is_left(self, dep: Deployment) -> list[str]:
        """What a person must do by hand when a rollback or tear-down step keeps failing."""
        backend = self.backend(dep)
        stable, canary = dep.stable or {}, dep.canary or {}
        if dep.state == State.ROLLING_BACK and stable:
            return [
                f"{backend.traffic_name()} may still send traffic to the canary: set it to "
                f"100 % {backend.target(stable)}"
            ]
        if dep.state == State.CLEANING_UP and canary:
            names = ", ".join(f"{k} {v}" for k, v in backend.describe(canary).items() if v)
            return [f"traffic is back on the stable; remove the canary by hand: {names}"]
        if dep.state == State.TEARING_DOWN and stable:
            names = ", ".join(f"{k} {v}" for k, v in backend.describe(stable).items() if v)
            return [f"the canary is promoted; remove the old version by hand: {names}"]
        return []

    # AWS handles -----------------------------------------------------------------------------
    def backend(self, dep: Deployment) -> Backend:
        return backend_for(dep.settings, self.rt.clients)


def canary_name(dep: Deployment) -> str:
    """`<catalogue key>-<id>`: the name of the canary's virtual node, Cloud Map and ECS service."""
    return f"{dep.service}-{dep.id}"


def describe_error(exc: Exception) -> str:
    """One sentence about an AWS or engine error, without anything secret."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "AWS")
        return f"AWS refused {op}: {err.get('Code', 'error')}: {err.get('Message', '')}".strip()
    return str(exc) or type(exc).__name__


def step_for(state: State) -> Callable[[Engine, Deployment], None]:
    """What the engine does in `state` (workers.steps holds the table)."""
    from workers.steps import STEPS  # the steps use the Engine: import them when first run

    return STEPS[state]
