"""One job for the checks that fall due in the same slot.

When the engine schedules a check (a move into a checked state with a delay), it puts the check
in the slot its due time falls in (workers.runtime.queues.SlotSet: a sorted set by due time;
slots end on multiples of SLOT_SECONDS, a check waits for the end of its own) and the first
check of a slot schedules that slot's job (RQ `enqueue_at`, one job id per slot). The job takes
up to SLOT_CHUNK due checks out of the set (one ZREM each: no other job gets them), reads
for them in shared calls (workers.engine.batch.read_many) and runs each through the Runner's
usual path (its run lock, its version, the same step) with its own read handed in. A slot with
more checks than one job takes enqueues one more job for the same slot first, so other worker
threads and processes share it. A check whose deployment moved on meanwhile is stale and
skipped. A job killed midway leaves its checks overdue: the watchdog runs each again as its
own job.
"""

from __future__ import annotations

import logging

from workers import defaults
from workers.engine import batch
from workers.engine.machine import CHECKED
from workers.engine.runner import Runner
from workers.runtime import lateness
from workers.runtime.budget import BudgetExhausted
from workers.runtime.queues import SlotScheduler, slot_of
from workers.runtime.run_lock import acquire_all, release_all

log = logging.getLogger(__name__)


def run_slot(runner: Runner, scheduler: SlotScheduler, slot: float) -> str:
    """Run (a chunk of) the checks due by `slot`; say how many ran and how many were stale."""
    rt, engine = runner.rt, runner.engine
    taken, left = scheduler.slots.pop(slot, defaults.SLOT_CHUNK)
    if left:
        scheduler.slot_job(slot)  # the rest, for another worker to take meanwhile
    if not taken:
        return "0 checked"
    read = rt.store.get_many_raw(list(dict.fromkeys(i for i, _ in taken)))
    found = {d.id: d for _, d in read}
    due = [
        dep
        for dep_id, version in taken
        if (dep := found.get(dep_id)) is not None
        and dep.version == version
        and dep.active
        and dep.state in CHECKED
    ]
    stale = len(taken) - len(due)
    try:
        reads, over = batch.read_many(engine, due)
    except BudgetExhausted as exc:
        # The installation's AWS call budget binds: the whole chunk goes to a later slot,
        # neither dropped nor counted as a failed attempt (their cards say they ran late).
        later = slot_of(engine.now() + exc.retry_after)
        scheduler.run_in_slots([(dep.id, dep.version, later) for dep in due])
        return f"{len(due)} spread"
    except Exception as exc:  # each check then reads alone, with its own error handling
        log.warning("a slot's shared read failed, each check reads alone: %s", exc)
        reads, over = {}, []
    if over:
        # Past what one GetMetricData carries: back in the set, for another job of the slot.
        scheduler.slots.put_back({(d.id, d.version): slot for d in over})
        scheduler.slot_job(slot)
    engine.reads.update(reads)
    skipped = {(d.id, d.version) for d in over}
    todo = [dep for dep in due if (dep.id, dep.version) not in skipped]
    # Their records as read: not read again by their runs, nor parsed again by their
    # transitions while unchanged meanwhile.
    engine.known.update({(dep.id, dep.version): (raw, dep) for raw, dep in read})
    checked = busy = 0
    # Their run locks are taken and given back, their next checks and how late each started
    # written, once for the whole chunk. A lock held elsewhere: that check's usual path (busy).
    locks = [runner.lock_of(dep.id) for dep in todo]
    engine.slotted, runner.lateness = [], []
    try:
        taken_locks = acquire_all(rt.redis, locks)
        for dep, lock, mine in zip(todo, locks, taken_locks, strict=True):
            try:
                said = runner.run(dep.id, dep.version, lock=lock if mine else None)
            except Exception:
                # Logged by the Runner in the deployment's context; it is left overdue, for the
                # watchdog to run again alone. The slot's other checks go on.
                continue
            if said in ("stale", "conflict"):  # moved on since the records were read
                stale += 1
            elif said == "busy":  # its lock held by another of its jobs: run again, alone
                busy += 1
            else:
                checked += 1
    finally:
        release_all(rt.redis, locks)
        engine.known.clear()
        slotted, late = engine.slotted, runner.lateness
        engine.slotted, runner.lateness = None, None
        scheduler.run_in_slots(slotted)
        lateness.record(rt.redis, engine.store.prefix, *late)
    return f"{checked} checked, {stale} stale" + (f", {busy} busy" if busy else "")
