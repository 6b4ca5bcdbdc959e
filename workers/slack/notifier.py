"""The Slack side of the outbox: the card, one thread reply per event, buttons closed when decided.

Every message's ts is written to the deployment's notes right after it is posted and checked
before posting, so a delivery retried after an error never posts the same message twice (and
one that died mid-post finds it: workers/slack/posting.py). The client, its retries and how its
failures are turned into the outbox's terms: workers/slack/client.py.

Slack's failures are sorted (workers.slack.errors): a rate limit, a 5xx or a timeout makes the
outbox try again (after exactly the Retry-After Slack gave); a permanent refusal never blocks the
events behind it. A deleted card or gate message is posted anew; a thread that cannot be posted
to at all (the bot is not in the channel, it is gone or archived) makes the bot tell the
requester once, in a direct message, where the deployment stands; a message Slack refuses for
its content is posted as plain text; everything else permanent is logged as an error and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

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
from workers.domain.pipelines import pipeline_of
from workers.engine.store import Store
from workers.runtime.settings import Settings, SettingsError
from workers.slack import posting
from workers.slack.answers import thread_unreachable
from workers.slack.card import PASSING, SETTLE, render_card
from workers.slack.chart_upload import ChartRequest, chart_occasion
from workers.slack.client import make_client, permanent, sorted_failures
from workers.slack.errors import Kind, SlackFailure, classify
from workers.slack.format import Message, context, mention, when, why
from workers.slack.home_publisher import note_change
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
#: Kinds after which the Roll back button of the 100 % message is gone.
_CLOSES_ROLLBACK = frozenset({"rollback_started", "rolled_back", "promoted", "failed"})


def thread_url(store: Store, dep_id: str) -> str | None:
    """The permalink of the deployment's thread, once its card was posted."""
    return store.notes(dep_id).get("thread_url") or None


def thread_urls(store: Store, dep_ids: list[str]) -> dict[str, str]:
    """The permalinks of many deployments' threads, in one round trip."""
    return store.note_of_many(dep_ids, "thread_url")


#: Under a thread message posted anew because someone deleted it.
POSTED_AGAIN = "↻ Posted again: the original message was deleted."


def card_reposted() -> Message:
    """The first reply under a card posted anew."""
    text = (
        "↻ This deployment's card was deleted, so it was posted again here; the rollout's "
        "earlier messages stay in the first thread, its next ones follow here."
    )
    return Message(text, [context(text)])


class SlackNotifier:
    """Implements workers.engine.outbox.Notifier with Slack messages."""

    def __init__(
        self,
        client: WebClient,
        *,
        clock: Callable[[], float] = time.time,
        charts: ChartRequest | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        #: Asks for the deployment's chart after a verdict that changed something (None: no
        #: charts); the chart is a job of its own (workers/slack/chart_upload.py).
        self.charts = charts

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackNotifier:
        """A notifier with the settings' bot token (which must be set), on their SLACK_API_URL."""
        token = settings.slack_bot_token
        if token is None:
            raise SettingsError("SLACK_BOT_TOKEN: must be set to post to Slack")
        client = make_client(token.get_secret_value(), settings.slack_api_url)
        return cls(client, charts=_request_chart)

    # Notifier protocol -----------------------------------------------------------------------
    def deliver(self, store: Store, deployment: Deployment, event: Event) -> float | None:
        """Post the event (the card for `requested`, a thread reply otherwise), at most once.

        An approval may answer "not yet": see `_approved`. Slack's failures: see the module.
        """
        with sorted_failures(deployment.id):
            wait = self._deliver(store, deployment, event)
        occasion = chart_occasion(event)
        if self.charts and occasion and f"msg:{event.seq}" in store.notes(deployment.id):
            self.charts(deployment.id, occasion)  # after its message, which went out
        return wait

    def refresh(self, store: Store, deployment: Deployment) -> float | None:
        """Update the card when what it shows has changed since the last post or update.

        A state the engine leaves within a job or two (shifting, rolling back) is shown only
        once it has lasted `SETTLE` seconds, a promotion's tear-down once it has lasted
        `TEAR_DOWN_SETTLE` (`PASSING`, workers.slack.card): most often the card goes straight
        to the next one, which saves a chat.update per step. Returns the seconds to wait before
        looking again.
        """
        with sorted_failures(deployment.id):
            again = self._refresh(store, deployment)
        # The App Home: its own job, asked for only when the state changed (never raises).
        note_change(store, deployment, self.clock())
        return again

    def _deliver(self, store: Store, deployment: Deployment, event: Event) -> float | None:
        if event.kind == "requested":
            self._post_card(store, deployment)
            return None
        notes = store.notes(deployment.id)
        card_ts, channel = notes.get("card_ts"), notes.get("card_channel")
        if not card_ts or not channel or notes.get("unreachable"):
            # no card (the deployment names no channel, or its channel cannot be posted to and
            # the requester was told so): nothing to reply under
            return None
        log = store.events(deployment.id)
        if isinstance(event, Approved) and notes.get("gate_open"):
            return self._approved(store, deployment, event, notes, log)
        message = render_event(deployment, event, log)
        if isinstance(event, RollbackStarted) and notes.get("gate_open") and message is not None:
            # A rollback from an open gate (an abort, a timeout): the gate, closed, says it began.
            notes |= self._close_gate(store, deployment, event, notes, log, told=event)
        key = f"msg:{event.seq}"
        if message is not None and key not in notes:
            ts = self._reply(store, deployment, f"{event.seq}", message)
            if ts is None:
                return None  # the thread is unreachable: the requester was told
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

    def _refresh(self, store: Store, deployment: Deployment) -> float | None:
        notes = store.notes(deployment.id)
        card_ts, channel = notes.get("card_ts"), notes.get("card_channel")
        if not card_ts or not channel or notes.get("unreachable"):
            return None
        settle = PASSING.get(deployment.state)
        if settle is not None:
            wait = settle - (self.clock() - deployment.state_since)
            if wait > 0:
                return min(wait, settle)
        url = notes.get("thread_url")
        digest = _digest(render_card(deployment, thread_url=url))
        if digest == notes.get("card_hash"):
            return None
        message = render_card(deployment, now=self.clock(), thread_url=url)
        try:
            posting.edit(self.client, channel, card_ts, message)
        except SlackApiError as exc:
            failure = permanent(exc, Kind.GONE, Kind.UNREACHABLE)
            if failure is None:
                raise
            if failure.kind is Kind.UNREACHABLE:
                self._unreachable(store, deployment, channel, failure)
            else:
                self._repost_card(store, deployment, failure)
            return None
        store.set_notes(deployment.id, {"card_hash": digest})
        return None

    # the card --------------------------------------------------------------------------------
    def _post_card(self, store: Store, dep: Deployment) -> None:
        notes = store.notes(dep.id)
        channel = notes.get("card_channel") or dep.channel or dep.settings.channel
        if not channel:
            log.warning("deployment %s names no channel: no card posted", dep.id)
            return
        if notes.get("unreachable"):
            return
        card_ts = notes.get("card_ts")
        if not card_ts:
            card = render_card(dep, now=self.clock())
            try:
                card_ts = posting.post_once(self.client, store, dep.id, "card", channel, card)
            except SlackApiError as exc:
                failure = permanent(exc, Kind.UNREACHABLE)
                if failure is None:
                    raise
                store.set_notes(dep.id, {"card_channel": channel})
                self._unreachable(store, dep, channel, failure)
                return
            store.set_notes(
                dep.id,
                {
                    "card_ts": card_ts,
                    "card_channel": channel,
                    "card_hash": _digest(render_card(dep)),
                },
            )
        if not notes.get("thread_url"):
            self._note_permalink(store, dep.id, channel, card_ts)

    def _note_permalink(self, store: Store, dep_id: str, channel: str, ts: str) -> None:
        try:
            answer = self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as exc:
            failure = permanent(exc, Kind.GONE, Kind.UNREACHABLE, Kind.NO_ACCESS)
            if failure is None:
                raise
            log.error("deployment %s: no link to its thread: %s", dep_id, failure.describe())
            return
        store.set_notes(dep_id, {"thread_url": str(answer["permalink"])})

    def _repost_card(self, store: Store, dep: Deployment, failure: SlackFailure) -> str | None:
        """The card was deleted: post it again (a new thread), and say so there, once."""
        notes = store.notes(dep.id)
        channel = notes["card_channel"]
        n = int(notes.get("card_posts") or "1") + 1
        log.error(
            "deployment %s: its card %s is gone (%s); posting it again",
            dep.id,
            notes.get("card_ts"),
            failure.describe(),
        )
        store.set_notes(dep.id, {"thread_url": ""})
        card = render_card(dep, now=self.clock())
        try:
            card_ts = posting.post_once(self.client, store, dep.id, f"card@{n}", channel, card)
        except SlackApiError as exc:
            unreachable = permanent(exc, Kind.UNREACHABLE)
            if unreachable is None:
                raise
            self._unreachable(store, dep, channel, unreachable)
            return None
        store.set_notes(
            dep.id,
            {"card_ts": card_ts, "card_posts": str(n), "card_hash": _digest(render_card(dep))},
        )
        self._note_permalink(store, dep.id, channel, card_ts)
        self._tell_reposted(store, dep.id)
        return card_ts

    def _tell_reposted(self, store: Store, dep_id: str) -> None:
        """Say once, first in the new thread, that the card was posted again. A delivery that
        fails here (a 429) is retried, and every later reply waits behind this one."""
        notes = store.notes(dep_id)
        n = int(notes.get("card_posts") or "1")
        if n < 2 or notes.get(f"card@{n}:told"):
            return
        try:
            told = posting.post_once(
                self.client,
                store,
                dep_id,
                f"card@{n}:told",
                notes["card_channel"],
                card_reposted(),
                thread_ts=notes["card_ts"],
            )
        except SlackApiError as exc:
            if permanent(exc, Kind.GONE, Kind.UNREACHABLE) is None:
                raise  # retried by the outbox, before anything else of this deployment
            told = "-"  # the reply that follows meets the same refusal and deals with it
        store.set_notes(dep_id, {f"card@{n}:told": told})

    def _reply(self, store: Store, dep: Deployment, what: str, message: Message) -> str | None:
        """Post a reply in the deployment's thread, once; None when the thread is unreachable.

        A reply refused because the card is gone re-posts the card and goes under it.
        """
        self._tell_reposted(store, dep.id)
        notes = store.notes(dep.id)
        channel, card_ts = notes["card_channel"], notes["card_ts"]
        try:
            return posting.post_once(
                self.client, store, dep.id, what, channel, message, thread_ts=card_ts
            )
        except SlackApiError as exc:
            failure = permanent(exc, Kind.GONE, Kind.UNREACHABLE)
            if failure is None:
                raise
            if failure.kind is Kind.UNREACHABLE:
                self._unreachable(store, dep, channel, failure)
                return None
            new_card = self._repost_card(store, dep, failure)
            if new_card is None:
                return None
            return posting.post_once(
                self.client,
                store,
                dep.id,
                f"{what}@{new_card}",
                channel,
                message,
                thread_ts=new_card,
            )

    def _unreachable(
        self, store: Store, dep: Deployment, channel: str, failure: SlackFailure
    ) -> None:
        """The thread cannot be posted to: stop trying, and tell the requester once, directly."""
        store.set_notes(dep.id, {"unreachable": failure.code})
        log.error(
            "deployment %s: cannot post in %s (%s): its thread is unreachable; telling %s "
            "in a direct message",
            dep.id,
            channel,
            failure.describe(),
            dep.requester,
        )
        if not dep.requester or pipeline_of(dep.requester) or store.notes(dep.id).get("dm"):
            # told already (or being told by an attempt that died mid-call: at most once); a
            # pipeline has no direct messages (it sees the state through GET /api/deployments)
            return
        store.set_notes(dep.id, {"dm": "sending"})
        current = store.get(dep.id) or dep
        text = thread_unreachable(current, channel, failure.code)
        try:
            # A user id as the channel posts in the app's direct messages with that person
            # (chat.postMessage, "channel": https://docs.slack.dev/reference/methods/chat.postMessage).
            self.client.chat_postMessage(channel=dep.requester, text=text, unfurl_links=False)
        except SlackApiError as exc:
            failure = classify(exc) or failure
            if failure.kind is Kind.RETRY:  # Slack answered: nothing was posted; try again
                store.set_notes(dep.id, {"dm": ""})
                raise
            log.error(
                "deployment %s: could not tell %s directly either: %s",
                dep.id,
                dep.requester,
                failure.describe(),
            )
            store.set_notes(dep.id, {"dm": "refused"})
            return
        store.set_notes(dep.id, {"dm": "sent"})

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
            ts = self._update(store, dep, ts, gate_closed(step, weight, outcome, verdict))
        closed = {"gate_open": ""}
        if ts and ts != notes.get(f"gate:{step}"):
            closed[f"gate:{step}"] = ts  # posted anew: the original was deleted
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
            self._update(store, dep, notes["rollback_ts"], message)
        store.set_notes(dep.id, {"rollback_ts": ""})

    # Slack calls -----------------------------------------------------------------------------
    def _update(self, store: Store, dep: Deployment, ts: str, message: Message) -> str | None:
        """Edit a thread message; one someone deleted is posted anew (saying so), once.

        Returns the ts the message now has (a new one when posted anew; None: unreachable).
        """
        notes = store.notes(dep.id)
        channel = notes["card_channel"]
        try:
            posting.edit(self.client, channel, ts, message)
            return ts
        except SlackApiError as exc:
            failure = permanent(exc, Kind.GONE, Kind.UNREACHABLE)
            if failure is None:
                raise
            if failure.kind is Kind.UNREACHABLE:
                self._unreachable(store, dep, channel, failure)
                return None
            log.error(
                "deployment %s: message %s is gone (%s); posting it again",
                dep.id,
                ts,
                failure.describe(),
            )
        again = Message(message.text, [*message.blocks, context(POSTED_AGAIN)])
        return self._reply(store, dep, f"again:{ts}", again)


def _request_chart(dep_id: str, what: str) -> None:
    """A chart job on this process's notify queue."""
    from workers.runtime.context import get_runtime  # the process's queues (worker only)

    get_runtime().scheduler.chart(dep_id, what)


def _gate_weight(dep: Deployment, step: int) -> int | None:
    if 1 <= step <= len(dep.settings.steps):
        return dep.settings.steps[step - 1]
    return None


def _digest(message: Message) -> str:
    raw = json.dumps(message.payload(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
