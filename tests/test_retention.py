"""Retention over a real Redis: old deployments go with their log and notes, active ones stay,
a finished log expires, refusals are capped, and the settings reach the store."""

from __future__ import annotations

import redis

from tests.fakes import catalogue, sample_event
from workers.domain.deployment import Deployment
from workers.domain.events import Event, Refused
from workers.domain.state import State
from workers.engine.store import Retention, Store
from workers.runtime.context import retention_from
from workers.runtime.settings import Settings


def make(dep_id: str, at: float, service: str = "payments") -> Deployment:
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


def finish(store: Store, dep_id: str) -> None:
    version = store.get(dep_id).version  # type: ignore[union-attr]

    def promoted(d: Deployment) -> list[Event]:
        d.state = State.ROLLED_BACK
        return [sample_event("rolled_back")]

    store.transition(dep_id, version, promoted)


def keys_of(client: redis.Redis, prefix: str, dep_id: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(f"{prefix}:dep:{dep_id}*"))


def refusal(actor: str = "U9") -> Refused:
    return Refused(at=1.0, actor=actor, action="approve", reason="not an approver")


def test_history_keeps_the_newest_per_service_and_deletes_the_rest(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    store = Store(client, prefix, Retention(history_keep=2))
    ids = [f"aaaa000{i}" for i in range(5)]
    for i, dep_id in enumerate(ids):
        store.create(make(dep_id, 1000.0 + i), sample_event("requested"))
        store.set_notes(dep_id, {"card_ts": "1.2"})
        finish(store, dep_id)
    store.create(make("bbbb0000", 1.0, service="search"), sample_event("requested"))
    finish(store, "bbbb0000")  # another service's history is its own

    assert store.history_ids("payments", 50) == [ids[4], ids[3]]
    for gone in ids[:3]:
        assert keys_of(client, prefix, gone) == [], gone  # record, event log and notes
    for kept in ids[3:]:
        assert keys_of(client, prefix, kept) == [
            f"{prefix}:dep:{kept}",
            f"{prefix}:dep:{kept}:events",
            f"{prefix}:dep:{kept}:notes",
        ]
    assert store.history_ids("search") == ["bbbb0000"]
    assert not set(store.undelivered_ids()) & set(ids[:3])


def test_an_active_deployment_is_never_deleted(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    store = Store(client, prefix, Retention(history_keep=1))
    store.create(make("aaaa0000", 1000.0), sample_event("requested"))  # still running
    client.delete(f"{prefix}:lock:payments")  # an operator forced the lock over
    store.create(make("bbbb0000", 2000.0), sample_event("requested"))
    finish(store, "bbbb0000")

    assert store.get("aaaa0000") is not None
    assert len(store.events("aaaa0000")) == 1
    assert store.history_ids("payments", 10) == ["bbbb0000", "aaaa0000"]
    assert client.ttl(f"{prefix}:dep:aaaa0000:events") == -1  # a running log never expires


def test_a_finished_event_log_expires_and_is_not_brought_back(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    store = Store(client, prefix, Retention(events_ttl=3600))
    store.create(make("aaaa0000", 1000.0), sample_event("requested"))
    log = f"{prefix}:dep:aaaa0000:events"
    assert client.ttl(log) == -1
    finish(store, "aaaa0000")
    assert 3590 <= client.ttl(log) <= 3600
    assert client.ttl(f"{prefix}:dep:aaaa0000") == -1  # the record stays for /canary history

    # A click on the finished deployment keeps the expiry (RPUSH keeps a key's TTL) ...
    assert store.append_event("aaaa0000", refusal()) is not None
    assert 3590 <= client.ttl(log) <= 3600
    # ... and once the log has expired, nothing makes a new one without expiry.
    client.delete(log)
    assert store.append_event("aaaa0000", refusal()) is None
    assert client.exists(log) == 0


def test_refusals_are_capped_per_deployment(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    store = Store(client, prefix, Retention(max_refusals=3))
    store.create(make("aaaa0000", 1000.0), sample_event("requested"))
    recorded = [store.append_event("aaaa0000", refusal(f"U{i}")) for i in range(10)]
    assert [r is not None for r in recorded] == [True] * 3 + [False] * 7
    assert store.append_event("aaaa0000", sample_event("provisioned")) is not None
    kinds = [e.kind for e in store.events("aaaa0000")]
    assert kinds == ["requested", "refused", "refused", "refused", "provisioned"]


def test_the_settings_reach_the_store() -> None:
    settings = Settings(canary_history_keep=7, canary_events_ttl=120, canary_max_refusals=4)  # type: ignore[call-arg]
    assert retention_from(settings) == Retention(history_keep=7, events_ttl=120, max_refusals=4)
    defaults = retention_from(Settings())  # type: ignore[call-arg]
    assert defaults == Retention()
