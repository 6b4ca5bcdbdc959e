"""How a deployment moves: compare-and-set transitions with their events and next job, and the
rollback request that clicks and breaches share.

It imports nothing of AWS (the web process uses it through workers.api); running a step against
AWS is workers.engine.runner's, and what each state does is workers.engine.steps'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from workers.analysis.judge import Verdict
from workers.domain.deployment import Deployment
from workers.domain.events import Cause, Event, RollbackStarted
from workers.domain.state import (
    ROLLBACKABLE,
    URGENT,
    State,
    Trigger,
    next_state,
)
from workers.engine.store import Conflict
from workers.runtime import logs, telemetry
from workers.runtime.context import Runtime
from workers.runtime.queues import SlotScheduler, slot_of

if TYPE_CHECKING:  # the interface only: the web process never loads the AWS drivers
    from workers.aws.base import Backend
    from workers.engine.read import Read

log = logging.getLogger(__name__)

Mutate = Callable[[Deployment], None]

#: The states whose job is a check (workers.engine.steps.STEPS): a scheduled one runs in the job
#: of its slot (workers.engine.slots) when the scheduler has slots.
CHECKED = frozenset({State.BAKING, State.HOLDING, State.AWAITING_APPROVAL, State.POST_PROMOTION})


class Engine:
    """Moves deployments of one Runtime; the interface steps and checks are given."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = rt.store
        #: Reads made for checks this job runs, by (deployment id, version): a slot job reads
        #: for all its members at once and hands each its own (workers.engine.batch.read).
        self.reads: dict[tuple[str, int], Read] = {}
        #: While not None, the checks put in slots are gathered here (id, version, slot) and
        #: added all at once by the caller (a slot job: one round trip for its members).
        self.slotted: list[tuple[str, int, float]] | None = None
        #: Records as the caller read them (raw, parsed) by (id, version): the Runner runs a
        #: step on one without reading it again, and its transition, while the stored bytes are
        #: still those, does not parse it again (Store.transition).
        self.known: dict[tuple[str, int], tuple[bytes, Deployment]] = {}
        #: Set when a move queues an urgent job (a rollback): the Runner gives the deployment's
        #: run lock back at once, not with the rest of its slot job's.
        self.queued_urgent = False

    # requests from outside a step (clicks, breaches) -------------------------------------------
    def request_rollback(
        self,
        dep_id: str,
        *,
        reason: str,
        actor: str | None,
        by: Cause,
        events: Iterable[Event] = (),
        verdict: Verdict | None = None,
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

    def move(
        self,
        dep: Deployment,
        trigger: Trigger | None,
        *,
        events: Iterable[Event] = (),
        mutate: Mutate | None = None,
        delay: float | None = 0,
        since: float | None = None,
    ) -> Deployment:
        """Compare-and-set `dep` to the state `trigger` leads to; schedule its next job.

        `trigger` None records a change without leaving the state. `delay` None schedules no
        job (terminal states); the watchdog relies on `next_due_at` to find a lost one. A
        `delay` counts from `since` (a check's next check: from when the check was due,
        workers.engine.checks.cadence_start), from now when None; never from later than now.
        """
        new_events = list(events)
        slots = self.rt.scheduler if isinstance(self.rt.scheduler, SlotScheduler) else None
        slot: float | None = None
        due = 0.0

        def change(d: Deployment) -> list[Event]:
            nonlocal slot, due
            if mutate:
                mutate(d)
            if trigger is not None:
                full = trigger == Trigger.SHIFTED and d.weight >= 100
                d.state = next_state(d.state, trigger, full_weight=full)
            # Due at once when no job is scheduled (the caller goes on inline): if this process
            # dies, the watchdog finds the deployment overdue and runs it again.
            now = self.now()
            due = (now if since is None or not delay else min(since, now)) + (delay or 0)
            # A check's next check waits for the end of its slot (one job for all its
            # checks); counted from the slot this check was due in, it lands on a slot's end,
            # not in the slot after (a check always ends after its slot's end: counted from
            # then, each would wait a slot more). The first check of a step (its canary's
            # existence is looked at then, one call each on App Mesh), a check due at once and
            # every other step are jobs of their own.
            again = dep.state in CHECKED and d.state in CHECKED
            slot = slot_of(due) if slots and delay and again else None
            d.next_due_at = (due if slot is None else slot) if d.active else None
            for e in new_events:
                e.state = d.state
                e.step = e.step if e.step is not None else (d.step_number or None)
            return new_events

        known = self.known.pop((dep.id, dep.version), None)
        updated = self.store.transition(dep.id, dep.version, change, known=known)
        telemetry.observe_transition(dep, updated, trigger, self.now())
        if updated.active and slots is not None and slot is not None:
            if self.slotted is not None:
                self.slotted.append((updated.id, updated.version, slot))
            else:
                slots.run_in_slots([(updated.id, updated.version, slot)])
        elif updated.active and delay is not None:
            urgent = updated.state in URGENT
            self.queued_urgent = self.queued_urgent or urgent
            wait = delay if since is None or not delay else max(0.0, due - self.now())
            self.rt.scheduler.run(updated.id, updated.version, delay=wait, urgent=urgent)
        if new_events:
            self.rt.scheduler.notify(updated.id)
        logs.note(state=updated.state.value)
        # A check that keeps its deployment where it was (most of them) is no news.
        log.log(
            logging.INFO if updated.state != dep.state else logging.DEBUG,
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
        by: Cause,
        events: Iterable[Event] = (),
        verdict: Verdict | None = None,
    ) -> Deployment:
        """Move `dep` to ROLLING_BACK after `events` (a failed check), saying why and who."""

        def mark(d: Deployment) -> None:
            d.reason, d.ended_by, d.stopped_by, d.attempts = reason, by, actor, 0
            d.rollback_requested_at = self.now()
            if verdict is not None:  # the failing check is the last verdict people see
                d.saw(verdict, self.now())

        started = RollbackStarted(
            at=self.now(), by=by, reason=reason, actor=actor, weight=dep.weight
        )
        return self.move(dep, Trigger.ROLL_BACK, events=[*events, started], mutate=mark)

    # what steps need -------------------------------------------------------------------------
    def backend(self, dep: Deployment) -> Backend:
        """The traffic backend of the deployment's service (built by the runtime)."""
        return self.rt.backend(dep.settings)

    @property
    def ready_poll(self) -> float:
        """Seconds between two looks at the canary's tasks while waiting for them."""
        return self.rt.ready_poll


def canary_name(dep: Deployment) -> str:
    """`<catalogue key>-<id>`: the name of the canary's virtual node, Cloud Map and ECS service."""
    return f"{dep.service}-{dep.id}"
