"""The outbox: a deployment's events delivered to people in order, each once."""

from __future__ import annotations

import logging
from typing import Protocol

from workers.domain.deployment import Deployment
from workers.domain.events import Event
from workers.engine.store import Store
from workers.runtime.context import Runtime
from workers.runtime.run_lock import RunLock

log = logging.getLogger(__name__)

#: Seconds before a failed delivery is tried again: doubled each time, capped.
RETRY_BASE, RETRY_CAP = 2.0, 120.0


class Notifier(Protocol):
    """Shows a deployment's events to people (Slack, a log)."""

    def deliver(self, store: Store, deployment: Deployment, event: Event) -> float | None:
        """Show one event. Called again for the same event only if a previous call failed, or
        if it returned a number: "not yet, look again in that many seconds" (it waits for the
        event that usually follows, to tell both in one message); later events wait behind it.
        """

    def refresh(self, store: Store, deployment: Deployment) -> float | None:
        """Bring any summary (the Slack card) up to date after a batch of events.

        Returns None, or the seconds after which to call again: the card may wait out a state
        the deployment is about to leave rather than show it for a moment.
        """


class LoggingNotifier:
    """A notifier that writes each event as a log line (no Slack configured)."""

    def deliver(self, store: Store, deployment: Deployment, event: Event) -> float | None:
        # What the event says, without what every event has.
        said = event.model_dump(
            mode="json", exclude={"seq", "at", "state", "version", "kind"}, exclude_none=True
        )
        log.info("[%s %s] %s %s", deployment.service, deployment.id, event.kind, said)
        return None

    def refresh(self, store: Store, deployment: Deployment) -> float | None:
        return None


def deliver_pending(rt: Runtime, notifier: Notifier, dep_id: str) -> int:
    """Deliver the deployment's undelivered events in order; return how many were delivered."""
    store = rt.store
    lock = RunLock(rt.redis, f"{store.prefix}:deliver:{dep_id}")
    if not lock.acquire():
        rt.scheduler.notify(dep_id, delay=1)
        return 0
    delivered = 0
    try:
        deployment = store.get(dep_id)
        if deployment is None:
            return 0
        for event in store.events(dep_id, store.delivered_upto(dep_id) + 1):
            try:
                wait = notifier.deliver(store, deployment, event)
            except Exception as exc:  # a notifier failure must never stop the rollout
                _retry_later(rt, dep_id, exc)
                return delivered
            if wait is not None:
                rt.scheduler.notify(dep_id, delay=wait)
                break
            store.mark_delivered(dep_id, event.seq)
            delivered += 1
        try:
            again_in = notifier.refresh(store, store.get(dep_id) or deployment)
        except Exception as exc:
            _retry_later(rt, dep_id, exc)
            return delivered
        if again_in is not None:
            rt.scheduler.notify(dep_id, delay=again_in)
        store.set_notes(dep_id, {"delivery_failures": "0"})
        return delivered
    finally:
        lock.release()


def _retry_later(rt: Runtime, dep_id: str, exc: Exception) -> None:
    failures = int(rt.store.notes(dep_id).get("delivery_failures", "0")) + 1
    rt.store.set_notes(dep_id, {"delivery_failures": str(failures)})
    delay = min(RETRY_CAP, RETRY_BASE**failures)
    log.warning(
        "deployment %s: delivery failed (%s: %s); retrying in %.0fs",
        dep_id,
        type(exc).__name__,
        exc,
        delay,
    )
    rt.scheduler.notify(dep_id, delay=delay)
