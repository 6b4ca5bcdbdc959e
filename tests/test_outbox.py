"""The outbox: events reach people in order, each once, and a failing notifier only waits."""

from __future__ import annotations

import logging

import pytest

from tests.fakes import fake_runtime, sample_event
from workers import api
from workers.domain.deployment import Deployment
from workers.domain.events import Event
from workers.engine.outbox import MAX_ATTEMPTS, RetryLater, Undeliverable, deliver_pending
from workers.engine.store import Store

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v2"


class FlakyNotifier:
    """Records deliveries; fails on the events whose kind is in `fail_on` while it is set."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, int]] = []
        self.fail_on: set[str] = set()
        #: Kinds whose delivery answers "not yet, look again in 1.5 s" while set.
        self.wait_on: set[str] = set()
        self.refreshes = 0

    def deliver(self, store: Store, deployment: Deployment, event: Event) -> float | None:
        if event.kind in self.fail_on:
            raise ConnectionError("slack is down")
        if event.kind in self.wait_on:
            return 1.5
        self.delivered.append((event.kind, event.seq))
        return None

    def refresh(self, store: Store, deployment: Deployment) -> float | None:
        self.refreshes += 1
        return None


def add(rt, dep_id: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    rt.store.append_event(dep_id, sample_event(kind, at=rt.clock()))


def test_delivers_in_order_once_and_retries_later_on_failure() -> None:
    rt = fake_runtime()
    dep_id = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment.id  # type: ignore[union-attr]
    for kind in ("provisioned", "ready", "shifted"):
        add(rt, dep_id, kind)
    notifier = FlakyNotifier()
    notifier.fail_on = {"ready"}
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
    assert deliver_pending(rt, notifier, dep_id) == 2
    assert notifier.delivered == [("requested", 0), ("provisioned", 1)]
    retry = [j for j in rt.scheduler.jobs if j.kind == "notify"]  # type: ignore[attr-defined]
    assert len(retry) == 1 and retry[0].due > rt.clock()  # later, with a back-off
    assert rt.store.undelivered_ids() == [dep_id]

    notifier.fail_on.clear()
    assert deliver_pending(rt, notifier, dep_id) == 2
    assert notifier.delivered == [
        ("requested", 0),
        ("provisioned", 1),
        ("ready", 2),
        ("shifted", 3),
    ]
    assert rt.store.undelivered_ids() == []
    assert deliver_pending(rt, notifier, dep_id) == 0  # nothing is delivered twice
    assert len(notifier.delivered) == 4


def test_back_off_grows_with_each_failure() -> None:
    rt = fake_runtime()
    dep_id = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment.id  # type: ignore[union-attr]
    notifier = FlakyNotifier()
    notifier.fail_on = {"requested"}
    delays = []
    for _ in range(4):
        rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
        deliver_pending(rt, notifier, dep_id)
        (job,) = rt.scheduler.jobs  # type: ignore[attr-defined]
        delays.append(job.due - rt.clock())
    assert delays == sorted(delays) and delays[0] < delays[-1]


def test_an_event_that_waits_holds_the_later_ones_back_without_a_failure() -> None:
    rt = fake_runtime()
    dep_id = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment.id  # type: ignore[union-attr]
    for kind in ("approved", "shifted"):
        add(rt, dep_id, kind)
    notifier = FlakyNotifier()
    notifier.wait_on = {"approved"}
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
    assert deliver_pending(rt, notifier, dep_id) == 1
    assert notifier.delivered == [("requested", 0)]  # the shift waits behind the approval
    (again,) = rt.scheduler.jobs  # type: ignore[attr-defined]
    assert again.kind == "notify" and again.due == rt.clock() + 1.5
    assert notifier.refreshes == 1  # the card is still brought up to date
    assert rt.store.notes(dep_id).get("delivery_failures", "0") == "0"  # not a failure

    notifier.wait_on.clear()
    assert deliver_pending(rt, notifier, dep_id) == 2
    assert [kind for kind, _ in notifier.delivered] == ["requested", "approved", "shifted"]


class SortingNotifier(FlakyNotifier):
    """Fails on some kinds the way the Slack notifier sorts Slack's failures."""

    def __init__(self) -> None:
        super().__init__()
        self.later_on: dict[str, float] = {}
        self.never_on: set[str] = set()

    def deliver(self, store: Store, deployment: Deployment, event: Event) -> float | None:
        if event.kind in self.later_on:
            raise RetryLater("busy", self.later_on[event.kind], summary_ok=True)
        if event.kind in self.never_on:
            raise Undeliverable("refused for good")
        return super().deliver(store, deployment, event)


def test_a_retry_later_is_retried_after_exactly_the_wait_asked_for() -> None:
    rt = fake_runtime()
    dep_id = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment.id  # type: ignore[union-attr]
    add(rt, dep_id, "provisioned")
    notifier = SortingNotifier()
    notifier.later_on = {"provisioned": 7.0}
    rt.scheduler.jobs.clear()  # type: ignore[attr-defined]
    assert deliver_pending(rt, notifier, dep_id) == 1
    assert [j.due - rt.clock() for j in rt.scheduler.notifies] == [7.0]  # type: ignore[attr-defined]
    assert notifier.refreshes == 1  # the summary is kept current while the event waits


def test_an_undeliverable_event_is_skipped_and_never_blocks_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rt = fake_runtime()
    dep_id = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment.id  # type: ignore[union-attr]
    for kind in ("provisioned", "ready"):
        add(rt, dep_id, kind)
    notifier = SortingNotifier()
    notifier.never_on = {"provisioned"}
    assert deliver_pending(rt, notifier, dep_id) == 3
    assert notifier.delivered == [("requested", 0), ("ready", 2)]
    assert rt.store.undelivered_ids() == []
    assert any(
        r.levelno == logging.ERROR and "refused for good" in r.message for r in caplog.records
    )


def test_an_unsorted_failure_is_skipped_after_max_attempts() -> None:
    rt = fake_runtime()
    dep_id = api.start_deployment("payments", IMAGE, requester="U1", rt=rt).deployment.id  # type: ignore[union-attr]
    add(rt, dep_id, "provisioned")
    notifier = FlakyNotifier()
    notifier.fail_on = {"provisioned"}
    for _ in range(MAX_ATTEMPTS - 1):
        deliver_pending(rt, notifier, dep_id)
    assert rt.store.undelivered_ids() == [dep_id]  # still tried, with the back-off
    deliver_pending(rt, notifier, dep_id)
    assert rt.store.undelivered_ids() == []  # then given up, so it blocks nothing behind it
