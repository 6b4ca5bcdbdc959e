"""The outbox: events reach people in order, each once, and a failing notifier only waits."""

from __future__ import annotations

from tests.fakes import fake_runtime
from workers import api
from workers.deployment import Deployment, Event
from workers.outbox import deliver_pending
from workers.state import State
from workers.store import Store

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/payments:v2"


class FlakyNotifier:
    """Records deliveries; fails on the events whose kind is in `fail_on` while it is set."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, int]] = []
        self.fail_on: set[str] = set()
        self.refreshes = 0

    def deliver(self, store: Store, deployment: Deployment, event: Event) -> None:
        if event.kind in self.fail_on:
            raise ConnectionError("slack is down")
        self.delivered.append((event.kind, event.seq))

    def refresh(self, store: Store, deployment: Deployment) -> float | None:
        self.refreshes += 1
        return None


def add(rt, dep_id: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    rt.store.append_event(
        dep_id, Event(at=rt.clock(), kind=kind, state=State.PROVISIONING, version=0)
    )


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
