"""The watchdog reschedules deployments whose next job went missing, and only those."""

from __future__ import annotations

import threading
import time

from tests.fakes import fake_runtime
from workers import api
from workers.domain.deployment import Deployment
from workers.domain.state import State
from workers.engine.machine import Engine
from workers.engine.runner import Runner
from workers.engine.watchdog import sweep
from workers.runtime.run_lock import run_lock_key

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v2"


def test_overdue_deployment_is_rescheduled_at_its_version() -> None:
    rt = fake_runtime()
    rt.watchdog_grace = 30
    dep = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment
    assert dep is not None
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]  # the job is "lost"
    assert sweep(rt) == []  # not overdue yet
    rt.clock.advance(31)  # type: ignore[attr-defined]
    assert sweep(rt) == [dep.id]
    runs = [j for j in rt.scheduler.jobs if j.kind == "run"]  # type: ignore[attr-defined]
    assert [(j.dep_id, j.version) for j in runs] == [(dep.id, dep.version)]


def test_finished_deployments_are_left_alone() -> None:
    rt = fake_runtime()
    dep = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment
    assert dep is not None
    assert api.abort(dep.id, actor="U2", rt=rt).ok
    rt.store.transition(
        dep.id,
        rt.store.get(dep.id).version,  # type: ignore[union-attr]
        lambda d: [setattr(d, "state", State.ROLLED_BACK)][:0],
    )
    rt.clock.advance(3600)  # type: ignore[attr-defined]
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
    assert sweep(rt) == []


def test_undelivered_outbox_is_nudged_once_per_grace() -> None:
    rt = fake_runtime()
    rt.watchdog_grace = 30
    dep = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment
    assert dep is not None
    rt.clock.advance(5)  # type: ignore[attr-defined]
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
    sweep(rt)
    sweep(rt)
    notifies = [j for j in rt.scheduler.jobs if j.kind == "notify"]  # type: ignore[attr-defined]
    assert len(notifies) == 1


def test_an_outbox_whose_log_expired_is_dropped_not_nudged_forever() -> None:
    rt = fake_runtime()
    rt.watchdog_grace = 30
    dep = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment
    assert dep is not None
    rt.store.transition(
        dep.id, dep.version, lambda d: [setattr(d, "state", State.FAILED)][:0]
    )  # over, with its events never delivered (Slack gone for good)
    rt.redis.delete(f"{rt.store.prefix}:dep:{dep.id}:events")  # CANARY_EVENTS_TTL went by
    rt.clock.advance(60)  # type: ignore[attr-defined]
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
    sweep(rt)
    assert rt.store.undelivered_ids() == []
    assert [j for j in rt.scheduler.jobs if j.kind == "notify"] == []  # type: ignore[attr-defined]
    assert "watchdog_notify_at" not in rt.store.notes(dep.id)


def test_a_step_still_running_past_its_run_locks_life_is_not_run_again() -> None:
    """A provisioning step slower than the run lock's time to live (AWS slow under load) keeps
    its lock while it runs: the watchdog sees its job alive and does not start a second run
    beside it (which would create the canary's resources a second time). Once it is over with
    nothing scheduled, the deployment is rescheduled as any lost one."""
    rt = fake_runtime()
    rt.watchdog_grace, rt.run_lock_seconds = 30, 0.6
    dep = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment
    assert dep is not None
    running, finish = threading.Event(), threading.Event()

    def slow_provisioning(engine: Engine, d: Deployment) -> None:
        running.set()
        assert finish.wait(30)

    runner = Runner(rt, {State.PROVISIONING: slow_provisioning})
    job = threading.Thread(target=runner.run, args=(dep.id, dep.version))
    job.start()
    try:
        assert running.wait(10)
        rt.clock.advance(31)  # type: ignore[attr-defined]
        rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
        key = run_lock_key(rt.store.prefix, dep.id)
        until = time.monotonic() + 4 * rt.run_lock_seconds  # several times its time to live
        while time.monotonic() < until:
            assert rt.redis.exists(key)
            assert sweep(rt) == []
            time.sleep(0.05)
        assert [j for j in rt.scheduler.jobs if j.kind == "run"] == []  # type: ignore[attr-defined]
    finally:
        finish.set()
        job.join(10)
    assert not rt.redis.exists(key)
    assert sweep(rt) == [dep.id]
