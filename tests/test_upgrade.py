"""Upgrading over what the last release before typed records left in Redis (commit a3dc177).

The fixtures (tests/fixtures/upgrade/<router>-<state>.json) are every Redis key of that release's
in-process world, written by its own code (tests/fixtures/upgrade/make_fixtures.py): a deployment
promoted through approved gates, one rolled back by its checks, and one in flight (provisioning,
baking, awaiting approval, rolling back), with their event logs, Slack notes, history, lock and
the pickled RQ jobs waiting for them; appmesh-holding adds a gate timed out after a reminder and
a deployment holding on thin traffic. This release reads them all, carries the in-flight one to
its end, and refuses a shape newer than it knows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
from moto import mock_aws
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry

from tests.bot_harness import notifier
from tests.fakes import RecordingScheduler, fake_runtime
from tests.slack_mock import MockSlack
from tests.test_engine import make_world, serving
from tests.test_job_serializer import Planted
from workers import api
from workers.analysis.templates import MetricTemplate
from workers.aws.backends import backend_for
from workers.domain.deployment import RECORD_SCHEMA
from workers.domain.events import (
    EVENT_SCHEMA,
    Approved,
    GateOpened,
    GateReminder,
    Holding,
    Refused,
    RollbackStarted,
    RolledBack,
)
from workers.domain.state import State
from workers.engine.migrations import NewerSchema, drop_unreadable_jobs
from workers.engine.outbox import deliver_pending
from workers.engine.store import Store
from workers.engine.watchdog import sweep
from workers.runtime.queues import RqScheduler, queue_names, rq_queue
from workers.slack import answers
from workers.slack.card import render_card
from workers.slack.thread import render_event

FIXTURES = Path(__file__).parent / "fixtures" / "upgrade"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
#: A promoted deployment, a rolled back one and one in flight (the rest: appmesh-holding).
ROLLOUTS = [n for n in NAMES if n != "appmesh-holding"]
#: The Store prefix the old release's tests used (and this one's tests/fakes.py uses).
OLD_PREFIX = "test"


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def restore(
    client: redis.Redis,
    keys: dict[str, Any],
    *,
    rename: Callable[[str], str] = lambda s: s,
    replace: dict[str, str] | None = None,
) -> None:
    """Write the dumped keys into `client`: names (and RQ's members) through `rename`, text values
    with `replace` applied (the AWS ids of another moto world; shapes untouched)."""

    def value(v: Any) -> bytes | str:
        if isinstance(v, dict):
            return base64.b64decode(v["b64"])
        for old, new in sorted((replace or {}).items(), key=lambda kv: -len(kv[0])):
            v = v.replace(old, new)
        return v

    for key, item in keys.items():
        name, kind, v = rename(key), item["type"], item["value"]
        rq = key.startswith("rq:")
        if kind == "string":
            client.set(name, value(v))
        elif kind == "list":
            client.rpush(name, *[rename(x) if rq else value(x) for x in v])
        elif kind == "hash":
            client.hset(
                name,
                mapping={k: rename(x) if rq and k == "origin" else value(x) for k, x in v.items()},
            )
        elif kind == "set":
            client.sadd(name, *[rename(x) for x in v])
        elif kind == "zset":
            client.zadd(name, {rename(m): s for m, s in v})
        if item["ttl"]:
            client.expire(name, item["ttl"])


def loaded(name: str) -> tuple[Store, dict[str, Any]]:
    doc = fixture(name)
    client = fakeredis.FakeRedis()
    restore(client, doc["keys"])
    return Store(client, OLD_PREFIX), doc


# reading ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ROLLOUTS)
def test_every_deployment_and_event_reads_back(name: str) -> None:
    store, doc = loaded(name)
    ids = store.history_ids("payments")
    assert len(ids) == 3 and ids[0] == doc["in_flight"]
    deps = store.get_many(ids)
    assert [d.id for d in deps] == ids
    in_flight, rolled_back, promoted = deps
    assert in_flight.state.value == name.split("-", 1)[1]
    assert (rolled_back.state, promoted.state) == (State.ROLLED_BACK, State.PROMOTED)
    assert [a.actor for a in promoted.approvals] == ["USAM"] * 3
    for dep in (promoted, rolled_back):
        # the versions' records are typed by the router the record's settings name
        assert dep.stable is not None and dep.stable.router == doc["router"]
        assert dep.canary is not None and dep.canary.router == doc["router"]
        assert dep.schema_version == RECORD_SCHEMA
    assert rolled_back.last_verdict is not None and rolled_back.last_verdict.outcome == "fail"
    assert rolled_back.ended_by == "canary check"
    assert store.lock_holder("payments") == in_flight.id and store.active_ids() == [in_flight.id]
    for dep in deps:
        log = store.events(dep.id)
        assert [e.seq for e in log] == list(range(len(log))) and log[0].kind == "requested"
        assert all(e.schema_version == EVENT_SCHEMA for e in log)
    kinds = [e.kind for e in store.events(promoted.id)]
    assert kinds.count("approved") == 3 and kinds[-1] == "promoted"
    assert store.delivered_upto(promoted.id) == len(kinds) - 1  # its Slack notes are kept


def test_old_event_shapes_become_typed_events() -> None:
    store, doc = loaded("alb-awaiting_approval")
    log = store.events(doc["in_flight"])
    gate = next(e for e in log if isinstance(e, GateOpened))
    assert (gate.step, gate.next_step, gate.next_weight) == (1, 2, 25)
    refused = next(e for e in log if isinstance(e, Refused))
    # a sentence where codes are now: kept as the words it was
    assert refused.reason is None and refused.detail == "you are not an approver"
    assert refused.action == "approve" and refused.actor == "UEVE"
    promoted = store.get_many(store.history_ids("payments"))[2]
    approved = [e for e in store.events(promoted.id) if isinstance(e, Approved)]
    assert [(e.step, e.weight, e.actor) for e in approved] == [
        (2, 25, "USAM"),
        (3, 50, "USAM"),
        (4, 100, "USAM"),
    ]
    assert not any(isinstance(e, RollbackStarted) for e in log)  # the abort is the next fixture
    store, doc = loaded("alb-rolling_back")
    started = [e for e in store.events(doc["in_flight"]) if isinstance(e, RollbackStarted)]
    assert len(started) == 1 and started[0].by == "abort" and started[0].actor == "USAM"


@pytest.mark.parametrize("name", ROLLOUTS)
def test_threads_cards_status_and_history_render(name: str) -> None:
    store, doc = loaded(name)
    deps = store.get_many(store.history_ids("payments"))
    for dep in deps:
        log = store.events(dep.id)
        shown = [m for m in (render_event(dep, e, log) for e in log) if m is not None]
        assert shown or dep.state == State.PROVISIONING, dep.id  # requested: told by the card
        assert render_card(dep, now=dep.updated_at)
    now = deps[0].updated_at

    def link(dep_id: str) -> str | None:
        return store.notes(dep_id).get("thread_url")

    shown = answers.history("payments", deps, link, now)
    assert shown.startswith("*payments*: last 3 deployments")
    assert all(f"#{d.id}" in shown for d in deps) and "approved <@USAM>" in shown
    status = answers.status([deps[0]], link, now)
    assert f"#{deps[0].id}" in status and "https://example.slack.com/archives/C1/" in status


def test_a_hold_and_a_gate_timeout_read_back_and_render() -> None:
    store, doc = loaded("appmesh-holding")
    held, timed_out = store.get_many(store.history_ids("payments"))
    assert held.id == doc["in_flight"] and held.state == State.HOLDING
    assert held.last_verdict is not None and held.last_verdict.outcome == "not_enough_data"
    holding = next(e for e in store.events(held.id) if isinstance(e, Holding))
    assert holding.verdict.canary.requests == 0 and holding.weight == 10
    assert holding.deadline > holding.at and holding.interval == 60
    assert timed_out.state == State.ROLLED_BACK and timed_out.ended_by == "gate_timeout"
    log = store.events(timed_out.id)
    reminder = next(e for e in log if isinstance(e, GateReminder))
    assert reminder.next_weight == 25 and reminder.timeout_at > reminder.at
    ended = log[-1]
    assert isinstance(ended, RolledBack) and ended.by == "gate_timeout" and ended.canary_existed
    for dep in (held, timed_out):
        log = store.events(dep.id)
        assert [m for m in (render_event(dep, e, log) for e in log) if m is not None]
        assert render_card(dep, now=dep.updated_at)
    shown = answers.history("payments", [held, timed_out], lambda _: None, held.updated_at)
    assert "nobody approved step 2 within 30m" in shown


def test_history_and_status_over_the_bot(slack: Any, rt: Any) -> None:
    """/canary history and status through the real Bolt app, over the old release's keys."""
    doc = fixture("appmesh-baking")
    restore(rt.redis, doc["keys"])
    shown = slack.answer("history payments")
    assert shown.startswith("*payments*: last 3 deployments"), shown
    assert "approved <@USAM>" in shown
    status = slack.answer("status payments")
    assert f"#{doc['in_flight']}" in status and "no worse than stable" in status


# refusing what is newer ---------------------------------------------------------------------
def test_a_record_of_a_newer_shape_is_refused_not_mangled() -> None:
    store, doc = loaded("appmesh-baking")
    key = f"{OLD_PREFIX}:dep:{doc['in_flight']}"
    raw = json.loads(doc["keys"][key]["value"])
    newer = {**raw, "schema_version": RECORD_SCHEMA + 1, "stable": {"shape": "unknown"}}
    store.redis.set(key, json.dumps(newer))
    with pytest.raises(NewerSchema, match="newer than this release reads") as refused:
        store.get(doc["in_flight"])
    assert refused.value.found == RECORD_SCHEMA + 1
    with pytest.raises(NewerSchema):
        store.transition(doc["in_flight"], raw["version"], lambda d: [])
    assert json.loads(store.redis.get(key)) == newer  # nothing was written over it
    log = f"{key}:events"
    store.redis.rpush(log, json.dumps({"kind": "future", "at": 1.0, "schema_version": 99}))
    with pytest.raises(NewerSchema, match="event"):
        store.events(doc["in_flight"])


def test_the_watchdog_leaves_an_unreadable_record_and_sweeps_the_others() -> None:
    store, doc = loaded("appmesh-baking")
    key = f"{OLD_PREFIX}:dep:{doc['in_flight']}"
    raw = json.loads(doc["keys"][key]["value"])
    store.redis.set(key, json.dumps({**raw, "schema_version": RECORD_SCHEMA + 1}))
    # a second service's in-flight deployment, readable
    other = {**raw, "id": "other001", "service": "search"}
    store.redis.set(f"{OLD_PREFIX}:dep:other001", json.dumps(other))
    store.redis.sadd(f"{OLD_PREFIX}:active", "other001")
    rt = fake_runtime()
    rt.store, rt.redis = store, store.redis
    rt.clock = lambda: raw["next_due_at"] + rt.watchdog_grace + 60
    assert sweep(rt) == ["other001"]


def test_written_back_in_todays_shape_on_the_next_transition() -> None:
    store, doc = loaded("alb-baking")
    dep = store.get(doc["in_flight"])
    assert dep is not None
    store.transition(dep.id, dep.version, lambda d: [])
    raw = json.loads(store.redis.get(f"{OLD_PREFIX}:dep:{dep.id}"))
    assert raw["schema_version"] == RECORD_SCHEMA
    assert raw["stable"]["router"] == raw["canary"]["router"] == "alb"
    assert "HTTPCode_ELB_5XX_Count" not in raw["settings"]["alb_metrics"]["error_metrics"]


def test_the_old_default_metric_template_is_replaced_and_a_written_one_kept() -> None:
    store, doc = loaded("appmesh-baking")
    key = f"{OLD_PREFIX}:dep:{doc['in_flight']}"
    raw = json.loads(doc["keys"][key]["value"])
    dep = store.get(doc["in_flight"])
    assert dep is not None  # that default read nothing anywhere: today's default instead
    assert dep.settings.metrics == MetricTemplate()
    written = {**raw["settings"]["metrics"], "namespace": "Team/Envoy"}
    raw["settings"]["metrics"] = written
    store.redis.set(key, json.dumps(raw))
    dep = store.get(doc["in_flight"])
    assert dep is not None and dep.settings.metrics.namespace == "Team/Envoy"
    assert dict(dep.settings.metrics.dimensions) == written["dimensions"]


# the old release's jobs -----------------------------------------------------------------------
def test_pickled_jobs_are_dropped_unread_and_the_watchdog_reschedules(
    real_redis: tuple[redis.Redis, str], tmp_path: Path
) -> None:
    client, prefix = real_redis
    doc = fixture("appmesh-awaiting_approval")

    def rename(name: str) -> str:
        for old in (f"{OLD_PREFIX}:", f"{OLD_PREFIX}-"):
            name = name.replace(old, f"{prefix}{old[-1]}", 1) if old in name else name
        return name

    restore(client, doc["keys"], rename=rename)
    names = queue_names(prefix)
    old_jobs = [
        *rq_queue(names[2], client).get_job_ids(),
        *[j for j in client.zrange(f"rq:scheduled:{names[1]}", 0, -1)],
    ]
    assert len(old_jobs) == 2
    # a pickled job that would open a file if it were ever unpickled
    planted = Queue(names[1], connection=client).enqueue(print, Planted(tmp_path / "ran")).id
    # ...and pickled jobs an old worker left started (RQ's "<id>:<execution>" entry) and failed
    high = Queue(names[0], connection=client)
    started, failed = high.enqueue(print, 1).id, high.enqueue(print, 2).id
    high.remove(started)
    high.remove(failed)
    client.zadd(StartedJobRegistry(queue=high).key, {f"{started}:e1": 1e12})
    client.zadd(FailedJobRegistry(queue=high).key, {failed: 1e12})
    RqScheduler(client, prefix).notify("someone")  # one of this release's, JSON
    dropped = drop_unreadable_jobs(client, names)
    old_ids = [j.decode() if isinstance(j, bytes) else j for j in old_jobs]
    assert sorted(dropped) == sorted([*old_ids, planted, started, failed])
    assert not client.exists(StartedJobRegistry(queue=high).key, FailedJobRegistry(queue=high).key)
    assert not (tmp_path / "ran").exists()
    assert all(not client.exists(Job.key_for(j)) for j in dropped)
    left = rq_queue(names[2], client).get_job_ids()
    assert len(left) == 1 and Job.fetch(
        left[0], connection=client, serializer=rq_queue(names[2], client).serializer
    ).args == ["someone"]
    # the deployment whose job was dropped is picked up once overdue
    store = Store(client, prefix)
    dep = store.get(doc["in_flight"])
    assert dep is not None and dep.next_due_at is not None
    rt = fake_runtime()
    rt.store, rt.redis = store, client
    scheduler = RecordingScheduler()
    rt.scheduler = scheduler
    rt.clock = lambda: dep.next_due_at + rt.watchdog_grace + 1  # type: ignore[operator]
    assert sweep(rt) == [dep.id]
    assert [(j.dep_id, j.version) for j in scheduler.runs] == [(dep.id, dep.version)]
    client.delete(Job.key_for(left[0]))  # its id names no prefix (real_redis leaves it)


# carried to the end by this release's engine ------------------------------------------------
def recreate(world: Any, doc: dict[str, Any]) -> dict[str, str]:
    """Make the fixture's in-flight versions exist in this moto world (its stable, the first
    deployment's promoted canary, and its canary at its weight); return the old world's AWS
    identifiers -> this world's (moto makes new random ids; the records' shapes are the old)."""
    raw = json.loads(doc["keys"][f"{OLD_PREFIX}:dep:{doc['in_flight']}"]["value"])
    settings = world.rt.catalogue().service("payments")
    ids: dict[str, str] = {}
    if raw["settings"].get("listener_rule"):
        ids[raw["settings"]["listener_rule"]] = settings.listener_rule
    old_stable, old_canary = raw["stable"], raw["canary"]
    if old_stable is None:
        return ids
    backend = backend_for(settings, world.clients)
    stable = backend.discover()
    name = old_stable["ecs_service_name"]
    if stable.ecs_service_name != name:  # the canary of a deployment promoted before
        made = backend.provision(
            stable, name=name, image=old_stable["image"], deployment_id=name.rsplit("-", 1)[1]
        )
        backend.router().set_weights({backend.target(made): 100})
        stable = backend.discover()
    pairs = [(old_stable, stable.model_dump())]
    if old_canary is not None:
        canary = backend.provision(
            stable, name=old_canary["name"], image=raw["image"], deployment_id=raw["id"]
        )
        weight = raw["settings"]["steps"][raw["step_index"]] if raw["step_index"] >= 0 else 0
        if weight:
            backend.router().set_weights(
                {backend.target(stable): 100 - weight, backend.target(canary): weight}
            )
        pairs.append((old_canary, canary.model_dump()))
    for old, new in pairs:
        for field, value in old.items():
            if isinstance(value, str) and isinstance(new.get(field), str) and value != new[field]:
                ids[value] = new[field]
    return ids


IN_FLIGHT = [n for n in NAMES if not n.endswith("provisioning")] + [
    n for n in NAMES if n.endswith("provisioning")
]


@pytest.mark.parametrize("name", IN_FLIGHT)
def test_an_in_flight_deployment_is_carried_to_its_end(
    name: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = fixture(name)
    with mock_aws():
        world = make_world(monkeypatch, doc["router"])
        world.clock.now = doc["now"]
        serving(world.sim, world.clock)  # the stable served before the upgrade
        ids = recreate(world, doc)
        restore(world.rt.redis, doc["keys"], replace=ids)
        dep_id = doc["in_flight"]
        dep = world.dep(dep_id)
        # its job was the old release's (dropped): the watchdog picks it up when overdue
        world.clock.now = max(world.clock.now, dep.next_due_at or dep.updated_at)
        world.clock.advance(world.rt.watchdog_grace + 1)
        assert sweep(world.rt) == [dep_id]
        while True:
            dep = world.drive(dep_id, lambda d: d.state == State.AWAITING_APPROVAL or not d.active)
            if not dep.active:
                break
            step = dep.step_number + 1
            assert api.decide_gate(dep_id, step, approve=True, actor="USAM", rt=world.rt).ok
        wanted = State.ROLLED_BACK if name.endswith("rolling_back") else State.PROMOTED
        assert dep.state == wanted, dep.reason
        # all traffic on the canary promoted, or back on the stable the record names
        version = dep.canary if wanted == State.PROMOTED else dep.stable
        assert version is not None
        assert world.weights() == {
            getattr(version, "virtual_node", None) or version.target_group_name: 100
        }  # type: ignore[union-attr]
        assert world.rt.store.lock_holder("payments") is None
        log = world.rt.store.events(dep_id)
        assert log[-1].kind == wanted.value and [e.seq for e in log] == list(range(len(log)))
        # old events and new ones read as one thread
        shown = [m for m in (render_event(dep, e, log) for e in log) if m is not None]
        assert len(shown) > 3
        raw = json.loads(world.rt.redis.get(f"{OLD_PREFIX}:dep:{dep_id}"))
        assert raw["schema_version"] == RECORD_SCHEMA
        # the outbox goes on from the old release's notes: only the events after them are told
        # (this Slack world never saw the old card, so the notifier posts it anew)
        with MockSlack(channels=["C1"]) as slack:
            deliver_pending(world.rt, notifier(slack), dep_id)
            said = "\n".join(m.shown() for m in slack.messages.values())
        assert world.rt.store.delivered_upto(dep_id) == len(log) - 1
        assert ("Promoted" if wanted == State.PROMOTED else "Rolled back") in said, said
        told = doc["keys"].get(f"{OLD_PREFIX}:dep:{dep_id}:notes", {}).get("value", {})
        if int(told.get("delivered", -1)) >= 2:  # told by the old release: never again
            assert "Canary ready" not in said, said


def test_a_record_of_todays_shape_reads_the_same_by_either_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records this release writes (model_dump_json: `schema_version` first) are validated from
    their JSON at once; the same record written otherwise (another key order, spaces: another
    writer) goes through migrate, and both give the same Deployment. An old shape still
    migrates (the tests above), and a newer one is refused whatever its bytes."""
    import workers.engine.migrations as migrations

    store, doc = loaded("appmesh-baking")
    dep = store.get(doc["in_flight"])
    assert dep is not None
    todays = dep.model_dump_json().encode()
    assert todays.startswith(b'{"schema_version":%d,' % RECORD_SCHEMA)
    other = json.dumps(dict(reversed(list(json.loads(todays).items()))), indent=1).encode()
    migrated: list[int] = []
    real = migrations.migrate

    def counting(raw: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        migrated.append(raw["schema_version"])
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(migrations, "migrate", counting)
    assert migrations.read_deployment(todays) == dep and migrated == []
    assert migrations.read_deployment(todays.decode()) == dep and migrated == []
    assert migrations.read_deployment(other) == dep and migrated == [RECORD_SCHEMA]
