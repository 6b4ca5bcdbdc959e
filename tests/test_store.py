"""The Redis store: compare-and-set transitions, the per-service lock, history, the outbox."""

from __future__ import annotations

import json
import threading

import fakeredis
import pytest
from pydantic import ValidationError

from tests.fakes import catalogue, sample_event
from workers.domain.deployment import Deployment
from workers.domain.events import Approved, Event, Refused, Requested
from workers.domain.outcomes import Refusal
from workers.domain.refusals import Forbidden
from workers.domain.state import State
from workers.domain.versions import (
    AlbCanary,
    AlbStable,
    AppMeshCanary,
    AppMeshStable,
    CanaryRecord,
    EcsCanary,
    EcsStable,
    StableRecord,
)
from workers.engine.store import Conflict, Store


def make(dep_id: str = "abcd1234", service: str = "payments", at: float = 1000.0) -> Deployment:
    return Deployment(
        id=dep_id,
        service=service,
        image="x/payments:v2",
        requester="U1",
        settings=catalogue().service("payments"),
        created_at=at,
        updated_at=at,
        state_since=at,
    )


_COMMON = {
    "cluster": "prod",
    "ecs_service_name": "payments",
    "ecs_service_arn": "arn:aws:ecs:us-east-1:123456789012:service/prod/payments",
    "task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/payments:7",
    "family": "payments",
    "image": "x/payments:v1",
    "desired_count": 2,
}
_CANARY = {
    "name": "payments-abcd1234",
    "ecs_service_name": "payments-abcd1234",
    "task_definition_arn": "arn:aws:ecs:us-east-1:123456789012:task-definition/payments:8",
}
#: One stable and canary of each backend, as its discovery and provisioning record them.
VERSIONS: list[tuple[StableRecord, CanaryRecord]] = [
    (
        AppMeshStable(
            **_COMMON,
            mesh="prod-mesh",
            virtual_router="payments-vr",
            route="payments-route",
            virtual_node="payments-v1",
            cloudmap_service_id="srv-1",
            cloudmap_service_arn="arn:srv-1",
            cloudmap_service_name="payments",
            cloudmap_namespace_id="ns-1",
        ),
        AppMeshCanary(
            **_CANARY,
            virtual_node="payments-abcd1234",
            cloudmap_service_id="srv-2",
            cloudmap_service_arn="arn:srv-2",
        ),
    ),
    (
        AlbStable(
            **_COMMON,
            listener_rule="arn:rule",
            listener="",
            load_balancer_arn="arn:lb",
            target_group_arn="arn:tg-1",
            target_group_name="payments-v1",
            container_name="app",
            container_port=8080,
        ),
        AlbCanary(**_CANARY, target_group_name="payments-abcd1234", target_group_arn="arn:tg-2"),
    ),
    (
        EcsStable(**_COMMON, container_name="app"),
        EcsCanary(**_CANARY, service_deployment_arn="arn:sd-1", continued_hook="hook-1"),
    ),
]


def ev(kind: str) -> Event:
    return sample_event(kind)


@pytest.fixture
def store() -> Store:
    return Store(fakeredis.FakeRedis(), "t")


def test_create_takes_the_service_lock(store: Store) -> None:
    assert store.create(make("aaaa0000"), ev("requested")) is None
    assert store.create(make("bbbb0000"), ev("requested")) == "aaaa0000"
    assert store.lock_holder("payments") == "aaaa0000"
    assert store.get("bbbb0000") is None  # the refused one left nothing behind
    assert store.create(make("cccc0000", service="search"), ev("requested")) is None
    assert store.active_ids() == ["aaaa0000", "cccc0000"]


def test_transition_is_compare_and_set(store: Store) -> None:
    store.create(make(), ev("requested"))

    def to_waiting(d: Deployment) -> list[Event]:
        d.state = State.WAITING_READY
        return [ev("provisioned")]

    updated = store.transition("abcd1234", 0, to_waiting)
    assert (updated.version, updated.state) == (1, State.WAITING_READY)
    with pytest.raises(Conflict) as err:
        store.transition("abcd1234", 0, to_waiting)  # a re-delivered job holding version 0
    assert err.value.current is not None and err.value.current.version == 1
    assert [(e.seq, e.kind, e.version) for e in store.events("abcd1234")] == [
        (0, "requested", 0),
        (1, "provisioned", 1),
    ]


def test_terminal_state_releases_lock_and_leaves_history(store: Store) -> None:
    store.create(make(), ev("requested"))

    def finish(d: Deployment) -> list[Event]:
        d.state = State.ROLLED_BACK
        return [ev("rolled_back")]

    store.transition("abcd1234", 0, finish)
    assert store.lock_holder("payments") is None
    assert store.active_ids() == []
    assert store.history_ids("payments") == ["abcd1234"]


def test_release_never_frees_another_deployments_lock(store: Store) -> None:
    store.create(make(), ev("requested"))
    store.redis.set("t:lock:payments", "someone")  # e.g. an operator forced it over

    def finish(d: Deployment) -> list[Event]:
        d.state = State.FAILED
        return []

    store.transition("abcd1234", 0, finish)
    assert store.lock_holder("payments") == "someone"


def test_history_newest_first(store: Store) -> None:
    for i, dep_id in enumerate(["aaaa0001", "aaaa0002", "aaaa0003"]):
        store.create(make(dep_id, at=1000.0 + i), ev("requested"))
        store.transition(dep_id, 0, lambda d: [setattr(d, "state", State.PROMOTED)][:0])
    assert store.history_ids("payments", 2) == ["aaaa0003", "aaaa0002"]


def test_outbox_tracks_delivery(store: Store) -> None:
    store.create(make(), ev("requested"))
    assert store.undelivered_ids() == ["abcd1234"]
    assert store.delivered_upto("abcd1234") == -1
    store.mark_delivered("abcd1234", 0)
    assert store.undelivered_ids() == []
    store.append_event("abcd1234", ev("refused"))
    assert store.undelivered_ids() == ["abcd1234"]


def test_racing_transitions_on_real_redis_apply_exactly_once(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    store = Store(client, prefix)
    store.create(make(), ev("requested"))
    winners: list[int] = []
    barrier = threading.Barrier(20)

    def approve(i: int) -> None:
        barrier.wait()
        try:
            store.transition("abcd1234", 0, lambda d: [Approved(at=1.0, actor=f"U{i}", weight=25)])
            winners.append(i)
        except Conflict:
            pass

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    requested, approved = store.events("abcd1234")
    assert isinstance(requested, Requested) and requested.seq == 0
    assert isinstance(approved, Approved) and approved.actor == f"U{winners[0]}"
    assert store.get("abcd1234").version == 1  # type: ignore[union-attr]


def test_reads_of_many_deployments_at_once(store: Store) -> None:
    store.create(make("aaaa0000", at=1.0), ev("requested"))
    store.create(make("bbbb0000", service="search", at=2.0), ev("requested"))
    store.set_notes("bbbb0000", {"thread_url": "https://slack.example/t/b"})
    assert [d.id for d in store.get_many(["bbbb0000", "gone0000", "aaaa0000"])] == [
        "bbbb0000",
        "aaaa0000",
    ]
    assert store.get_many([]) == []
    assert store.note_of_many(["aaaa0000", "bbbb0000"], "thread_url") == {
        "bbbb0000": "https://slack.example/t/b"
    }
    assert store.last_ids(["payments", "search", "web"]) == {
        "payments": "aaaa0000",
        "search": "bbbb0000",
    }


@pytest.mark.parametrize(("stable", "canary"), VERSIONS, ids=lambda v: type(v).__name__)
def test_versions_read_back_as_their_backends_records(
    store: Store, stable: StableRecord, canary: CanaryRecord
) -> None:
    store.create(make(), ev("requested"))

    def provisioned(d: Deployment) -> list[Event]:
        d.stable, d.canary, d.state = stable, canary, State.WAITING_READY
        return [ev("provisioned")]

    store.transition("abcd1234", 0, provisioned)
    dep = store.get("abcd1234")
    assert dep is not None
    # The same type and fields, not a dict: each backend reads its own record by attribute.
    assert (type(dep.stable), type(dep.canary)) == (type(stable), type(canary))
    assert (dep.stable, dep.canary) == (stable, canary)
    assert dep.recorded_stable().image == "x/payments:v1"
    assert dep.recorded_canary().name == "payments-abcd1234"


def test_a_version_of_no_known_router_is_refused() -> None:
    raw = make().model_dump()
    raw["stable"] = {**_COMMON, "router": "nginx"}
    with pytest.raises(ValidationError, match="router"):
        Deployment.model_validate(raw)
    with pytest.raises(ValueError, match="no stable version recorded"):
        make().recorded_stable()


def test_a_refusal_stored_before_codes_still_reads(store: Store) -> None:
    """Refusals of bot/permissions were once stored as the sentence shown to the person; the
    engine's as their code. Both shapes read back; new ones keep a code and ids."""
    store.create(make(), ev("requested"))
    key = f"{store.prefix}:dep:abcd1234:events"
    said = "You are not an approver of payments. Ask one of: <@U03BBBB>."
    for reason in (said, "not_at_gate", "refused"):
        old = {"kind": "refused", "at": 2.0, "actor": "U9", "action": "approve", "reason": reason}
        store.redis.rpush(key, json.dumps({**old, "seq": store.redis.llen(key)}))
    store.append_event(
        "abcd1234",
        Refused(
            at=3.0, actor="U9", action="approve", reason=Forbidden.NOT_APPROVER, ids=["U03BBBB"]
        ),
    )
    _, sentence, code, uncoded, new = store.events("abcd1234")
    assert isinstance(sentence, Refused) and sentence.reason is None and sentence.detail == said
    assert isinstance(code, Refused) and code.reason == Refusal.NOT_AT_GATE and not code.detail
    assert isinstance(uncoded, Refused) and uncoded.reason is None and uncoded.detail == "refused"
    assert isinstance(new, Refused) and new.reason == Forbidden.NOT_APPROVER
    assert new.ids == ["U03BBBB"] and new.detail is None
    raw = json.loads(store.redis.lindex(key, -1) or b"")
    assert raw["reason"] == "not_approver" and raw["ids"] == ["U03BBBB"]


def test_a_transition_given_the_record_as_read_does_not_parse_it_again(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot job reads its members' records at once; a transition given one of them (its bytes
    and parse) uses that parse while the stored bytes are the same (it parses only the change's
    own copy, where one without it parses twice), never changes it, and parses what is stored
    when it differs (another transition meanwhile: a conflict, as always)."""
    import workers.engine.store as store_module

    store.create(make(), ev("requested"))
    ((raw, dep),) = store.get_many_raw(["abcd1234"])
    parsed: list[bytes] = []
    real = store_module.read_deployment

    def counting(data: bytes | str) -> Deployment:
        parsed.append(data if isinstance(data, bytes) else data.encode())
        return real(data)

    monkeypatch.setattr(store_module, "read_deployment", counting)

    def hold(d: Deployment) -> list[Event]:
        d.attempts = 3
        return []

    updated = store.transition(dep.id, dep.version, hold, known=(raw, dep))
    assert parsed == [raw] and updated.attempts == 3 and updated.version == dep.version + 1
    assert dep.attempts == 0 and dep.version == updated.version - 1  # the caller's is untouched
    # Stored bytes differ from those known now: parsed, and the version moved: a conflict.
    parsed.clear()
    with pytest.raises(Conflict):
        store.transition(dep.id, dep.version, hold, known=(raw, dep))
    assert len(parsed) == 1 and parsed[0] != raw
    parsed.clear()
    store.transition(dep.id, updated.version, hold)
    assert len(parsed) == 2
