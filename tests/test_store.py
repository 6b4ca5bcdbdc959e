"""The Redis store: compare-and-set transitions, the per-service lock, history, the outbox."""

from __future__ import annotations

import threading

import fakeredis
import pytest

from tests.fakes import catalogue, sample_event
from workers.domain.deployment import Deployment
from workers.domain.events import Approved, Event, Requested
from workers.domain.state import State
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
