"""Runs a deployment's current step once: under its run lock, at the version it was scheduled
for, with errors retried, then rolled back or handed to a person.

The step table (workers.engine.steps.STEPS) is given to the Runner, not imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from workers.aws.errors import AwsStepError, RolledBackByAws, describe_failure
from workers.domain.deployment import Deployment
from workers.domain.events import Cause, Failed
from workers.domain.state import ROLLBACKABLE, URGENT, State, Trigger
from workers.engine.machine import Engine
from workers.engine.store import Conflict
from workers.runtime import lateness, logs, telemetry
from workers.runtime.budget import BudgetExhausted, urgent_calls
from workers.runtime.context import Runtime
from workers.runtime.run_lock import RunLock, kept, run_lock_key

log = logging.getLogger(__name__)

#: Attempts at a forward step (provisioning, shifting, checking) before rolling back.
FORWARD_ATTEMPTS = 3
#: Attempts at a rollback or tear-down step before giving up and asking a person.
CLEANUP_ATTEMPTS = 5
#: Seconds between two attempts: doubled each time, capped.
RETRY_BASE, RETRY_CAP = 2.0, 60.0

#: What the engine does in one state.
Step = Callable[[Engine, Deployment], None]


class Runner:
    """Runs steps of one Runtime's deployments, each state's step taken from `steps`."""

    def __init__(self, rt: Runtime, steps: Mapping[State, Step]) -> None:
        self.rt, self.store, self.steps = rt, rt.store, steps
        self.engine = Engine(rt)
        #: While not None, how late each step started is gathered here (seconds) and recorded
        #: all at once by the caller (a slot job), not one round trip a step.
        self.lateness: list[float] | None = None

    def run(
        self,
        dep_id: str,
        version: int,
        *,
        lock: RunLock | None = None,
    ) -> str:
        """Do the deployment's current step if it is still at `version`; say what happened.

        Its record as the caller just read it (`Engine.known`: a slot job reads its members'
        records at once) is not read again; its transition still compares the version (a click
        meanwhile makes it a "conflict"). `lock`: its run lock, already held by the caller (a
        slot job takes its members' at once), who gives it back; given back here at once if the
        step queued an urgent job (a rollback), which waits for it.
        """
        with logs.deployment_context(dep_id):  # every line logged meanwhile names it
            return self._run(dep_id, version, lock)

    def lock_of(self, dep_id: str) -> RunLock:
        """The run lock of a deployment: one step of it acts on AWS at a time."""
        return RunLock(
            self.rt.redis, run_lock_key(self.store.prefix, dep_id), self.rt.run_lock_seconds
        )

    def _run(self, dep_id: str, version: int, held: RunLock | None) -> str:
        handed = self.engine.known.get((dep_id, version))
        dep = handed[1] if handed is not None else self.store.get(dep_id)
        if dep is None or dep.version != version or not dep.active:
            return "stale"
        logs.note(service=dep.service, state=dep.state.value)
        lock = held or self.lock_of(dep_id)
        # A rollback waits for a sibling's AWS call to finish (so it cannot be overwritten by a
        # shift still in flight); other steps leave it to a re-run.
        if held is None and not lock.acquire(blocking_timeout=10.0 if dep.state in URGENT else 0.0):
            self.rt.scheduler.run(dep_id, version, delay=1, urgent=dep.state in URGENT)
            return "busy"
        self.engine.queued_urgent = False
        try:
            if handed is None:
                dep = self.store.get(dep_id)
            if dep is None or dep.version != version or not dep.active:
                return "stale"
            if dep.next_due_at is not None:
                late = self.engine.now() - dep.next_due_at
                if self.lateness is not None:
                    self.lateness.append(late)
                else:
                    lateness.record(self.rt.redis, self.store.prefix, late)
                telemetry.JOB_LATENESS_SECONDS.observe(max(0.0, late))
            # Kept while the step runs, however long AWS takes: its lifetime is what a crashed
            # job leaves behind, not a bound on a step (a re-run overlapping a slow step would
            # create its resources a second time).
            with (
                kept(lock),
                telemetry.JOBS_RUNNING.track_inprogress(),
                telemetry.JOB_SECONDS.labels(dep.state.value).time(),
            ):
                try:
                    with urgent_calls(dep.state in URGENT):
                        self.steps[dep.state](self.engine, dep)
                except Conflict:
                    return "conflict"
                except BudgetExhausted as exc:
                    # The installation's AWS call budget binds: the step runs again a little
                    # later, neither dropped nor counted as a failed attempt.
                    self.rt.scheduler.run(dep_id, version, delay=exc.retry_after)
                    return "spread"
                except (AwsStepError, ClientError, BotoCoreError, ValueError) as exc:
                    self._on_error(dep, exc)
                except Exception:
                    # RQ records the failed job too, but outside the deployment's context.
                    log.exception("deployment %s: the %s step crashed", dep.id, dep.state.value)
                    raise
            return dep.state.value
        finally:
            if held is None or self.engine.queued_urgent:
                lock.release()

    def _on_error(self, dep: Deployment, exc: Exception) -> None:
        message = describe_failure(exc, operation=True)
        log.warning("deployment %s: %s failed: %s", dep.id, dep.state.value, message)
        dep = self.store.get(dep.id) or dep
        attempts = dep.attempts + 1
        deterministic = isinstance(exc, AwsStepError | ValueError)
        if dep.state in ROLLBACKABLE:
            if deterministic or attempts >= FORWARD_ATTEMPTS:
                # ECS rolled back by itself (router ecs): the deployment ends with its reason.
                by = Cause.ECS_ROLLBACK if isinstance(exc, RolledBackByAws) else Cause.ERROR
                self.engine.roll_back(dep, reason=message, actor=None, by=by)
                return
        elif attempts >= CLEANUP_ATTEMPTS:
            problems = [*dep.problems, message, *self._what_is_left(dep)]

            def give_up(d: Deployment) -> None:
                d.problems, d.finished_at = problems, self.engine.now()

            failed = Failed(at=self.engine.now(), reason=message, problems=problems)
            self.engine.move(dep, Trigger.GIVE_UP, events=[failed], mutate=give_up, delay=None)
            return

        def count(d: Deployment) -> None:
            d.attempts = attempts

        self.engine.move(dep, None, mutate=count, delay=min(RETRY_CAP, RETRY_BASE**attempts))

    def _what_is_left(self, dep: Deployment) -> list[str]:
        """What a person must do by hand when a rollback or tear-down step keeps failing."""
        backend = self.engine.backend(dep)
        stable, canary = dep.stable, dep.canary
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
