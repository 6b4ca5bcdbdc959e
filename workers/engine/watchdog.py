"""The watchdog: finds deployments whose next job went missing and schedules it again."""

from __future__ import annotations

import logging

from workers.domain.state import URGENT
from workers.runtime import logs
from workers.runtime.context import Runtime
from workers.runtime.run_lock import RunLock, run_lock_key
from workers.runtime.telemetry import WATCHDOG_RESCHEDULED

log = logging.getLogger(__name__)


def sweep(rt: Runtime) -> list[str]:
    """Reschedule overdue deployments and undelivered outboxes; return the ids rescheduled."""
    now = rt.clock()
    rescheduled = []
    for dep_id in rt.store.active_ids():
        try:
            dep = rt.store.get(dep_id)
        except ValueError as exc:  # unreadable here (a newer release's): the others still swept
            log.error("deployment %s: cannot be read, left alone: %s", dep_id, exc)
            continue
        if dep is None or not dep.active:
            continue
        due = dep.next_due_at if dep.next_due_at is not None else dep.updated_at
        if now > due + rt.watchdog_grace:
            if RunLock(rt.redis, run_lock_key(rt.store.prefix, dep_id)).locked():
                # Its step is running (the job keeps its run lock while it does, and a dead
                # job's lock expires): a second run now would act on AWS beside it.
                continue
            with logs.deployment_context(dep_id, service=dep.service, state=dep.state.value):
                log.warning(
                    "deployment %s: %s job overdue by %.0fs, rescheduling",
                    dep_id,
                    dep.state.value,
                    now - due,
                )
            rt.scheduler.run(dep_id, dep.version, urgent=dep.state in URGENT)
            rescheduled.append(dep_id)
            WATCHDOG_RESCHEDULED.inc()
    for dep_id in rt.store.undelivered_ids():
        if not rt.store.has_events(dep_id):
            # Its log expired or was deleted (retention): nudging it would go on forever.
            rt.store.leave_outbox(dep_id)
            continue
        last_try = float(rt.store.notes(dep_id).get("watchdog_notify_at", "0"))
        if now - last_try > rt.watchdog_grace:
            rt.store.set_notes(dep_id, {"watchdog_notify_at": str(now)})
            rt.scheduler.notify(dep_id)
    return rescheduled
