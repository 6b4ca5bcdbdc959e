"""The outbox: a deployment's events delivered to people in order, each once.

A notifier that fails says how: `RetryLater` (the service was busy or unreachable: the same
event is tried again, after exactly the wait the service asked for when it gave one) or
`Undeliverable` (it can never be shown: it is logged as an error and skipped, so it never blocks
the events behind it). A wait the service asked for is a hold: no delivery of that deployment
runs before it ends, however many notify jobs new events enqueue meanwhile. Any other exception
is retried with a growing back-off, and skipped after `MAX_ATTEMPTS` failures in a row: a
failure nobody sorted must not block a deployment forever.
"""

from __future__ import annotations

import logging
from typing import Protocol

from workers.domain.deployment import Deployment
from workers.domain.events import Event
from workers.engine.store import Store
from workers.runtime import logs
from workers.runtime.context import Runtime
from workers.runtime.run_lock import RunLock

log = logging.getLogger(__name__)

#: Seconds before a failed delivery is tried again: doubled each time, capped.
RETRY_BASE, RETRY_CAP = 2.0, 120.0
#: Failures in a row of an unsorted error after which the event is skipped (about 10 minutes).
MAX_ATTEMPTS = 10


class RetryLater(Exception):  # noqa: N818 - a request, not an error
    """The event could not be shown now; try it again in `seconds` (None: the back-off)."""

    def __init__(
        self, reason: str, seconds: float | None = None, *, summary_ok: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason, self.seconds = reason, seconds
        #: True when the summary (the card) may still be refreshed meanwhile: what failed
        #: has limits of its own (posting a reply, not editing the card).
        self.summary_ok = summary_ok


class Undeliverable(Exception):  # noqa: N818 - a verdict on the event, not a crash
    """The event can never be shown (retrying cannot help): skip it and go on."""


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
    with logs.deployment_context(dep_id):  # every line logged meanwhile names it
        return _deliver_pending(rt, notifier, dep_id)


def _deliver_pending(rt: Runtime, notifier: Notifier, dep_id: str) -> int:
    store = rt.store
    held = float(store.notes(dep_id).get("hold_until") or 0) - rt.clock()
    if held > 0:
        # The service asked to be left alone until then: look again at that moment (RQ's
        # scheduler keeps whole seconds, so the job planned for it may come a little early).
        rt.scheduler.notify(dep_id, delay=held)
        return 0
    lock = RunLock(rt.redis, f"{store.prefix}:deliver:{dep_id}")
    if not lock.acquire():
        rt.scheduler.notify(dep_id, delay=1)
        return 0
    delivered = 0
    try:
        deployment = store.get(dep_id)
        if deployment is None:
            return 0
        logs.note(service=deployment.service, state=deployment.state.value)
        for event in store.events(dep_id, store.delivered_upto(dep_id) + 1):
            try:
                wait = notifier.deliver(store, deployment, event)
            except Undeliverable as exc:
                log.error(
                    "deployment %s: event %s (%s) cannot be shown, skipped: %s",
                    dep_id,
                    event.seq,
                    event.kind,
                    exc,
                )
                wait = None
            except RetryLater as exc:
                # The summary has limits of its own (Slack: chat.update is not limited per
                # channel like chat.postMessage): keep it current while the thread waits.
                if exc.summary_ok:
                    _refresh_quietly(notifier, store, dep_id, deployment)
                _retry_later(rt, dep_id, exc, exc.seconds)
                return delivered
            except Exception as exc:  # a notifier failure must never stop the rollout
                if not _gives_up(rt, dep_id):
                    _retry_later(rt, dep_id, exc)
                    return delivered
                log.error(
                    "deployment %s: event %s (%s) failed %d times in a row, skipped: %s: %s",
                    dep_id,
                    event.seq,
                    event.kind,
                    MAX_ATTEMPTS,
                    type(exc).__name__,
                    exc,
                )
                wait = None
            if wait is not None:
                rt.scheduler.notify(dep_id, delay=wait)
                break
            store.mark_delivered(dep_id, event.seq)
            if delivered == 0:  # a delivery went through: the failures in a row are over
                store.set_notes(dep_id, {"delivery_failures": "0"})
            delivered += 1
        try:
            again_in = notifier.refresh(store, store.get(dep_id) or deployment)
        except Undeliverable as exc:
            log.error("deployment %s: its summary cannot be updated: %s", dep_id, exc)
            again_in = None
        except RetryLater as exc:
            _retry_later(rt, dep_id, exc, exc.seconds)
            return delivered
        except Exception as exc:
            _retry_later(rt, dep_id, exc)
            return delivered
        if again_in is not None:
            rt.scheduler.notify(dep_id, delay=again_in)
        store.set_notes(dep_id, {"delivery_failures": "0"})
        return delivered
    finally:
        lock.release()


def _refresh_quietly(notifier: Notifier, store: Store, dep_id: str, fallback: Deployment) -> None:
    """Refresh the summary, whatever happens: the caller retries the delivery anyway.

    Not once the deployment is over: its final summary comes after the whole story, so a card
    that says "Done" or "Rolled back" always sits above a thread that is complete.
    """
    deployment = store.get(dep_id) or fallback
    if not deployment.active:
        return
    try:
        notifier.refresh(store, deployment)
    except Exception as exc:
        log.info("deployment %s: summary not refreshed either (%s)", dep_id, exc)


def _gives_up(rt: Runtime, dep_id: str) -> bool:
    """True when an unsorted failure has now happened MAX_ATTEMPTS times in a row."""
    failures = int(rt.store.notes(dep_id).get("delivery_failures", "0")) + 1
    return failures >= MAX_ATTEMPTS


def _retry_later(rt: Runtime, dep_id: str, exc: Exception, seconds: float | None = None) -> None:
    """Deliver again later: after `seconds` when the service said how long, else the back-off."""
    failures = int(rt.store.notes(dep_id).get("delivery_failures", "0")) + 1
    notes = {"delivery_failures": str(failures)}
    if seconds is not None:  # honoured exactly: no delivery of this deployment before then
        notes["hold_until"] = str(rt.clock() + seconds)
    rt.store.set_notes(dep_id, notes)
    delay = seconds if seconds is not None else min(RETRY_CAP, RETRY_BASE**failures)
    log.warning(
        "deployment %s: delivery failed (%s: %s); retrying in %gs",
        dep_id,
        type(exc).__name__,
        exc,
        delay,
    )
    rt.scheduler.notify(dep_id, delay=delay)
