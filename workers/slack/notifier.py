"""The Slack side of the outbox: the card, one thread reply per event, buttons closed when decided.

Every message's ts is written to the deployment's notes right after it is posted and checked
before posting, so a delivery retried after an error never posts the same message twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from workers.domain.deployment import Deployment
from workers.domain.events import (
    Approved,
    Cause,
    Event,
    GateOpened,
    Promoted,
    RollbackStarted,
    Shifted,
)
from workers.domain.state import State
from workers.engine.store import Store
from workers.runtime.settings import SettingsError, load_settings
from workers.slack.card import render_card
from workers.slack.format import Message, mention, when, why
from workers.slack.thread import (
    Log,
    ended_by,
    gate_closed,
    gate_verdict,
    render_event,
    rolling_back,
    shifted_closed,
    traffic_sentence,
)

log = logging.getLogger(__name__)

#: Kinds after which a still-open gate message loses its buttons.
_CLOSES_GATE = frozenset({"approved", "rollback_started", "rolled_back", "promoted", "failed"})
#: States the card skips unless they last SETTLE seconds: the engine leaves them within a job.
_PASSING = frozenset({State.SHIFTING, State.ROLLING_BACK, State.CLEANING_UP})
SETTLE = 2.0
#: Kinds after which the Roll back button of the 100 % message is gone.
_CLOSES_ROLLBACK = frozenset({"rollback_started", "rolled_back", "promoted", "failed"})


def slack_api_url() -> str:
    """SLACK_API_URL (with or without a trailing "/"), else Slack's own, always ending in "/"."""
    return load_settings().slack_api_url


class _ShortRateLimitRetry(RateLimitErrorRetryHandler):
    """Waits out a short Retry-After in place; a longer one is left to the outbox's retry."""

    def __init__(self, max_retry_count: int = 1, max_wait: float = 5.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        for name, values in response.headers.items():
            if name.lower() == "retry-after" and values:
                try:
                    return float(values[0]) <= self.max_wait
                except ValueError:
                    return False
        return True


def retry_handlers(interval: float = 0.5, max_rate_limit_wait: float = 5.0) -> list[RetryHandler]:
    """Small, bounded retries: the outbox retries anything longer later without blocking."""
    return [
        ConnectionErrorRetryHandler(max_retry_count=1),
        _ShortRateLimitRetry(max_retry_count=1, max_wait=max_rate_limit_wait),
        ServerErrorRetryHandler(
            max_retry_count=1, interval_calculator=FixedValueRetryIntervalCalculator(interval)
        ),
    ]


def make_client(
    token: str,
    base_url: str | None = None,
    *,
    retry_interval: float = 0.5,
    max_rate_limit_wait: float = 5.0,
) -> WebClient:
    """A WebClient on SLACK_API_URL with the retry handlers above."""
    url = base_url or slack_api_url()
    return WebClient(
        token=token,
        base_url=url if url.endswith("/") else url + "/",
        timeout=10,
        retry_handlers=retry_handlers(retry_interval, max_rate_limit_wait),
    )


def thread_url(store: Store, dep_id: str) -> str | None:
    """The permalink of the deployment's thread, once its card was posted."""
    return store.notes(dep_id).get("thread_url") or None


def thread_urls(store: Store, dep_ids: list[str]) -> dict[str, str]:
    """The permalinks of many deployments' threads, in one round trip."""
    return store.note_of_many(dep_ids, "thread_url")


#: Slack message-metadata type marking the bot's own messages (and which event each shows).
METADATA_EVENT = "canary_event"


class SlackNotifier:
    """Implements workers.engine.outbox.Notifier with Slack messages."""

    def __init__(self, client: WebClient, *, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.clock = clock

    @classmethod
    def from_env(cls) -> SlackNotifier:
        """A notifier with the bot token of SLACK_BOT_TOKEN (which must be set)."""
        token = load_settings().slack_bot_token
        if token is None:
            raise SettingsError("SLACK_BOT_TOKEN: must be set to post to Slack")
        return cls(make_client(token.get_secret_value()))

    # Notifier protocol -----------------------------------------------------------------------
    def deliver(self, store: Store, deployment: Deployment, event: Event) -> float | None:
        """Post the event (the card for `requested`, a thread reply otherwise), at most once.

        An approval may answer "not yet": see `_approved`.
        """
        if event.kind == "requested":
            self._post_card(store, deployment)
            return None
        notes = store.notes(deployment.id)
        card_ts, channel = notes.get("card_ts"), notes.get("card_channel")
        if not card_ts or not channel:
            return None  # no card (the deployment names no channel): nothing to reply under
        log = store.events(deployment.id)
        if isinstance(event, Approved) and notes.get("gate_open"):
            return self._approved(store, deployment, event, notes, log)
        message = render_event(deployment, event, log)
        if isinstance(event, RollbackStarted) and notes.get("gate_open") and message is not None:
            # A rollback from an open gate (an abort, a timeout): the gate, closed, says it began.
            notes |= self._close_gate(store, deployment, event, notes, log, told=event)
        key = f"msg:{event.seq}"
        if message is not None and key not in notes:
            ts = self._post_once(
                store, deployment.id, f"{event.seq}", channel, message, thread_ts=card_ts
            )
            posted = {key: ts}
            if isinstance(event, GateOpened):
                step = str(event.next_step)
                posted |= {
                    "gate_open": step,
                    f"gate:{step}": ts,
                    f"gate_seq:{step}": str(event.seq),
                }
            elif isinstance(event, Shifted) and event.weight >= 100:
                posted |= {"rollback_ts": ts, "rollback_seq": str(event.seq)}
            store.set_notes(deployment.id, posted)
            notes |= posted
        if event.kind in _CLOSES_GATE and notes.get("gate_open"):
            notes |= self._close_gate(store, deployment, event, notes, log)
        if event.kind in _CLOSES_ROLLBACK and notes.get("rollback_ts"):
            self._close_rollback(store, deployment, event, notes, log)
        return None

    def refresh(self, store: Store, deployment: Deployment) -> float | None:
        """Update the card when what it shows has changed since the last post or update.

        A state the engine leaves within a job or two (shifting, rolling back) is shown only
        once it has lasted `SETTLE` seconds: most often the card goes straight to the next one,
        which saves a chat.update per step. Returns the seconds to wait before looking again.
        """
        notes = store.notes(deployment.id)
        card_ts, channel = notes.get("card_ts"), notes.get("card_channel")
        if not card_ts or not channel:
            return None
        if deployment.state in _PASSING:
            wait = SETTLE - (self.clock() - deployment.state_since)
            if wait > 0:
                return min(wait, SETTLE)
        url = notes.get("thread_url")
        digest = _digest(render_card(deployment, thread_url=url))
        if digest == notes.get("card_hash"):
            return None
        message = render_card(deployment, now=self.clock(), thread_url=url)
        self.client.chat_update(channel=channel, ts=card_ts, **message.payload())
        store.set_notes(deployment.id, {"card_hash": digest})
        return None

    # the card --------------------------------------------------------------------------------
    def _post_card(self, store: Store, dep: Deployment) -> None:
        notes = store.notes(dep.id)
        channel = notes.get("card_channel") or dep.channel or dep.settings.channel
        if not channel:
            log.warning("deployment %s names no channel: no card posted", dep.id)
            return
        card_ts = notes.get("card_ts")
        if not card_ts:
            card = render_card(dep, now=self.clock())
            card_ts = self._post_once(store, dep.id, "card", channel, card)
            store.set_notes(
                dep.id,
                {
                    "card_ts": card_ts,
                    "card_channel": channel,
                    "card_hash": _digest(render_card(dep)),
                },
            )
        if not notes.get("thread_url"):
            answer = self.client.chat_getPermalink(channel=channel, message_ts=card_ts)
            store.set_notes(dep.id, {"thread_url": str(answer["permalink"])})

    # closing buttons -------------------------------------------------------------------------
    def _approved(
        self, store: Store, dep: Deployment, event: Approved, notes: dict[str, str], log: Log
    ) -> float | None:
        """Close the gate saying who approved and, when it follows, the shift to that weight:
        one edit instead of an edit and a "Traffic N %" reply.

        The shift comes a moment after the click (another job), so an approval with nothing
        shown after it yet waits up to SETTLE seconds for it; then the gate closes anyway and
        the shift, when it comes, gets its own reply. A shift to 100 % always does: that message
        carries the Roll back button.
        """
        later = [e for e in log[event.seq + 1 :] if render_event(dep, e, log)]
        if not later:
            wait = SETTLE - (self.clock() - event.at)
            if wait > 0:
                return wait
        step = int(notes["gate_open"])
        shown = later[0] if later else None
        folds = (
            isinstance(shown, Shifted)
            and shown.weight == _gate_weight(dep, step)
            and shown.weight < 100
        )
        self._close_gate(store, dep, event, notes, log, told=shown if folds else None)
        return None

    def _close_gate(
        self,
        store: Store,
        dep: Deployment,
        event: Event,
        notes: dict[str, str],
        log: Log,
        *,
        told: Event | None = None,
    ) -> dict[str, str]:
        """Edit the open gate's message: no buttons, what decided. `told` is an event that
        this message tells as well (the shift after an approval, the rollback after an abort):
        it posts no reply of its own. Returns the notes written."""
        step = int(notes["gate_open"])
        ts = notes.get(f"gate:{step}")
        if isinstance(event, Approved) and event.step not in (None, step):
            return {}  # an approval of another gate (cannot happen in order, but be safe)
        if ts:
            at = when(event.at)
            if isinstance(event, Approved):
                outcome = f"approved by {mention(event.actor)} at {at}."
                if isinstance(told, Shifted):
                    outcome += " " + traffic_sentence(told)
            elif isinstance(event, RollbackStarted):
                by = ended_by(dep, event.by, event.actor)
                outcome = f"not approved: {by} at {at}."
                if told is not None:  # its reason, unless it only repeats who aborted
                    reason = why(event.reason, event.actor)
                    outcome += " " + rolling_back(reason if reason and reason not in by else None)
            elif isinstance(event, Promoted):
                outcome = "no longer needed: promoted."
            else:
                outcome = f"closed: the deployment {event.kind.replace('_', ' ')} at {at}."
            weight = _gate_weight(dep, step)
            seq = int(notes.get(f"gate_seq:{step}") or -1)
            opened = log[seq] if 0 <= seq < len(log) else None
            verdict = gate_verdict(opened, log) if isinstance(opened, GateOpened) else None
            self._update(notes["card_channel"], ts, gate_closed(step, weight, outcome, verdict))
        closed = {"gate_open": ""}
        if told is not None and ts:
            closed[f"msg:{told.seq}"] = ts  # told here: it posts no reply
        store.set_notes(dep.id, closed)
        return closed

    def _close_rollback(
        self, store: Store, dep: Deployment, event: Event, notes: dict[str, str], log: Log
    ) -> None:
        seq = int(notes.get("rollback_seq", "-1"))
        shifted = log[seq] if 0 <= seq < len(log) else None
        if isinstance(shifted, Shifted):
            at = when(event.at)
            if isinstance(event, RollbackStarted):
                outcome = (
                    f"Rolled back by {mention(event.actor)} at {at}."
                    if event.actor and event.by == Cause.ABORT
                    else f"Rolling back at {at}: {event.reason or 'see below'}."
                )
            elif isinstance(event, Promoted):
                outcome = f"Promoted at {at}; Roll back is no longer offered."
            else:
                outcome = f"Roll back is no longer offered ({event.kind.replace('_', ' ')})."
            message = shifted_closed(dep, shifted, log, outcome)
            self._update(notes["card_channel"], notes["rollback_ts"], message)
        store.set_notes(dep.id, {"rollback_ts": ""})

    # Slack calls -----------------------------------------------------------------------------
    def _post_once(
        self,
        store: Store,
        dep_id: str,
        what: str,
        channel: str,
        message: Message,
        *,
        thread_ts: str | None = None,
    ) -> str:
        """Post a message at most once, even if a previous attempt died after Slack took it.

        Each message carries its identity in Slack's message metadata; an attempt that finds a
        marker of an earlier one looks for that message before posting again.
        """
        key = f"{dep_id}:{what}"
        if not store.set_note_once(dep_id, f"posting:{what}", "1"):
            found = self._find_posted(channel, key, thread_ts)
            if found:
                return found
        extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
        answer = self.client.chat_postMessage(
            channel=channel,
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
            **extra,
            **message.payload(),
        )
        return str(answer["ts"])

    def _find_posted(self, channel: str, key: str, thread_ts: str | None) -> str | None:
        """The ts of the message carrying `key` in its metadata, if Slack has it."""
        if thread_ts:
            answer = self.client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=200
            )
        else:
            answer = self.client.conversations_history(
                channel=channel, include_all_metadata=True, limit=100
            )
        for message in answer.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("key") == key:
                return str(message["ts"])
        return None

    def _update(self, channel: str, ts: str, message: Message) -> None:
        self.client.chat_update(channel=channel, ts=ts, **message.payload())


def _gate_weight(dep: Deployment, step: int) -> int | None:
    if 1 <= step <= len(dep.settings.steps):
        return dep.settings.steps[step - 1]
    return None


def _digest(message: Message) -> str:
    raw = json.dumps(message.payload(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
