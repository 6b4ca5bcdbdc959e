"""Check samples over a real Redis: written with the check's move (one MULTI), bounded while the
deployment runs, expiring with its event log once it ends and deleted with it by the history."""

from __future__ import annotations

import pytest

from tests.fakes import sample_event
from tests.test_retention import finish, keys_of, make
from workers.analysis.judge import Counts, Verdict, judge
from workers.analysis.latency import LatencyLimits, LatencyPeriod, LatencySeries
from workers.domain.deployment import Deployment
from workers.domain.events import Event
from workers.domain.samples import CheckSample, sample_of
from workers.engine.store import Conflict, Retention, Store


def verdict(requests: int, errors: int) -> Verdict:
    return judge(
        Counts(requests, errors),
        Counts(requests * 9, errors),
        max_error_rate_pct=1.0,
        min_requests=100,
        bake_complete=False,
    )


def check(store: Store, dep_id: str, at: float, requests: int = 100, errors: int = 1) -> None:
    """A check as workers.engine.checks makes one: the deployment sees a verdict."""
    dep = store.get(dep_id)
    assert dep is not None

    def seen(d: Deployment) -> list[Event]:
        d.step_index = 0
        d.saw(verdict(requests, errors), at)
        return []

    store.transition(dep_id, dep.version, seen)


def test_a_sample_is_compact_and_reads_back() -> None:
    sample = sample_of(verdict(200, 3), at=12.5, step=2, weight=25)
    raw = sample.model_dump_json()
    assert '"cr":200' in raw and '"ce":3' in raw and '"cl":null' in raw
    back = CheckSample.model_validate_json(raw)
    assert back == sample
    assert back.canary_rate_pct == 1.5 and back.stable_rate_pct == 3 / 1800 * 100
    assert back.canary_latency_ms is None and back.outcome == "baking"


def test_a_sample_carries_the_verdicts_judged_latency() -> None:
    # Three minutes of 600 canary and 1,000 stable requests: p99 200 ms vs 100 ms.
    series = LatencySeries(
        99.0, tuple(LatencyPeriod(60.0 * i, 600, 1000, 200.0, 100.0) for i in range(3))
    )
    judged = judge(
        Counts(1800, 0),
        Counts(3000, 0),
        max_error_rate_pct=1.0,
        min_requests=100,
        bake_complete=False,
        latency=series,
        latency_limits=LatencyLimits(max_increase_pct=25.0),
    )
    sample = sample_of(judged, at=12.5, step=1, weight=10)
    assert (sample.canary_latency_ms, sample.stable_latency_ms) == (200.0, 100.0)
    raw = sample.model_dump_json()
    assert '"cl":200.0' in raw and '"sl":100.0' in raw


def test_samples_are_written_with_the_check_and_bounded(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    store = Store(client, prefix, Retention(max_samples=3))
    store.create(make("aaaa0000", 1000.0), sample_event("requested"))
    for i in range(5):
        check(store, "aaaa0000", 1000.0 + i, requests=100 + i)
    samples = store.samples("aaaa0000")
    assert [s.at for s in samples] == [1002.0, 1003.0, 1004.0]  # the newest three
    assert [s.canary_requests for s in samples] == [102, 103, 104]
    assert {(s.step, s.weight) for s in samples} == {(1, 10)}
    assert store.get("aaaa0000").checks == 5  # type: ignore[union-attr]
    assert client.ttl(f"{prefix}:dep:aaaa0000:samples") == -1  # running: no expiry


def test_a_check_that_loses_its_compare_and_set_writes_no_sample(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    store = Store(client, prefix)
    store.create(make("aaaa0000", 1000.0), sample_event("requested"))
    check(store, "aaaa0000", 1000.0)

    def seen(d: Deployment) -> list[Event]:
        d.saw(verdict(100, 0), 2000.0)
        return []

    with pytest.raises(Conflict):
        store.transition("aaaa0000", 0, seen)  # read at version 0, now at 1
    assert [s.at for s in store.samples("aaaa0000")] == [1000.0]


def test_samples_expire_with_the_log_and_go_with_the_history(real_redis) -> None:  # type: ignore[no-untyped-def]
    client, prefix = real_redis
    store = Store(client, prefix, Retention(history_keep=1, events_ttl=3600))
    store.create(make("aaaa0000", 1000.0), sample_event("requested"))
    check(store, "aaaa0000", 1001.0)
    finish(store, "aaaa0000")
    key = f"{prefix}:dep:aaaa0000:samples"
    assert 3590 <= client.ttl(key) <= 3600
    assert len(store.samples("aaaa0000")) == 1

    store.create(make("bbbb0000", 2000.0), sample_event("requested"))
    check(store, "bbbb0000", 2001.0)
    finish(store, "bbbb0000")  # the older one falls out of the history: all its keys go
    assert keys_of(client, prefix, "aaaa0000") == []
    assert store.samples("aaaa0000") == []
    assert len(store.samples("bbbb0000")) == 1
