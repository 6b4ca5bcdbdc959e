"""The deployment's chart, uploaded into its thread with files_upload_v2, at most once per occasion.

When: after the message of a verdict that changed something (a failed check, which rolls back,
and a promotion), and when someone asks `/canary status <service>`. How: a job of its own on the
notify queue (`workers.runtime.jobs.chart`), so the text verdict has gone out before the chart
is drawn, the outbox never waits behind an upload, and the web process never draws (it would
load matplotlib). The job follows the outbox's rules (workers/engine/outbox.py): `RetryLater`
(a 429 with its Retry-After, a 5xx, a broken connection) runs it again later, `Undeliverable`
(not in the channel, a missing `files:write` scope, a file Slack will not take) drops it, and
after `MAX_ATTEMPTS` failures in a row it is dropped too; nothing else waits for it.

At most once: each occasion has a key (`what`); the notes record an attempt before the upload
and its end after it, and an attempt that finds an earlier one unfinished looks in the thread for
the file (its name carries the key) before uploading again. files_upload_v2 shares the file only
in its last call (files.completeUploadExternal), which the notifier's client never repeats on
its own (workers/slack/client.py, `_POSTS`).
"""

from __future__ import annotations

import logging
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from workers.domain.deployment import Deployment
from workers.domain.events import Event, Promoted, StepFailed
from workers.domain.state import State
from workers.engine.outbox import MAX_ATTEMPTS, RETRY_BASE, RETRY_CAP, RetryLater, Undeliverable
from workers.engine.store import Store
from workers.slack.chart import chart_data, render_png
from workers.slack.errors import Kind, classify
from workers.slack.format import when

log = logging.getLogger(__name__)

#: Codes of files.getUploadURLExternal that no retry changes (its reference's "Errors").
FILE_REFUSALS = frozenset(
    {
        "file_upload_size_restricted",
        "file_uploads_disabled",
        "file_uploads_except_images_disabled",
        "file_type_not_allowed",
        "storage_limit_reached",
        "alt_txt_too_large",
        "missing_argument",
    }
)

#: Asks for a chart of deployment `dep_id` on occasion `what` (a job on the notify queue).
ChartRequest = Callable[[str, str], None]


def chart_occasion(event: Event) -> str | None:
    """The occasion key of an event that gets a chart after its message, else None."""
    if isinstance(event, StepFailed | Promoted):
        return f"{event.seq}"
    return None


def status_occasion(dep: Deployment) -> str:
    """The occasion of `/canary status`: one chart per version of the deployment, so asking
    again while nothing changed posts nothing new."""
    return f"status-v{dep.version}"


def can_chart(store: Store, dep: Deployment) -> bool:
    """True when a chart of `dep` could go to its thread: it has one, it can be posted to, and
    its log (the steps and gates) has not expired."""
    notes = store.notes(dep.id)
    if not notes.get("card_ts") or notes.get("unreachable"):
        return False
    return store.has_events(dep.id)


def chart_coming() -> str:
    """What `/canary status` adds when a chart is on its way."""
    return "📈 A chart of it is being posted in its thread."


@dataclass(frozen=True)
class Posted:
    """What one attempt did: "posted", "found" (an earlier attempt had), or why not."""

    outcome: str


def filename(dep: Deployment, what: str) -> str:
    return f"canary-{dep.service}-{dep.id}-{what}.png"


def title(dep: Deployment, what: str, now: float) -> str:
    """ "payments 4f2a9c1e: canary vs stable, rolled back" and the like."""
    why = {
        State.ROLLED_BACK: "rolled back",
        State.ROLLING_BACK: "rolling back",
        State.CLEANING_UP: "rolled back",
        State.PROMOTED: "promoted",
        State.TEARING_DOWN: "promoted",
        State.FAILED: "failed",
    }.get(dep.state, f"at {when(now)}")
    if what.startswith("status"):
        why = f"at {when(now)}"
    return f"{dep.service} {dep.id}: canary vs stable, {why}"


def post_chart(client: WebClient, store: Store, dep_id: str, what: str, *, now: float) -> Posted:
    """Draw the deployment's chart and share it in its thread, once for occasion `what`.

    Raises RetryLater (try again later) or Undeliverable (never: drop it); an exception of
    another kind is a failure the caller retries a few times.
    """
    dep = store.get(dep_id)
    if dep is None:
        return Posted("no deployment")
    notes = store.notes(dep_id)
    done = notes.get(f"chart:{what}")
    if done:
        return Posted(f"done before ({done})")
    channel, thread_ts = notes.get("card_channel"), notes.get("card_ts")
    if not channel or not thread_ts or notes.get("unreachable"):
        return Posted("no thread")
    name = filename(dep, what)
    # An earlier attempt that began and did not finish may have shared the file already.
    began = not store.set_note_once(dep_id, f"charting:{what}", "1")
    if began and _shared(client, channel, thread_ts, name):
        store.set_notes(dep_id, {f"chart:{what}": "posted"})
        return Posted("found")
    data = chart_data(dep, store.samples(dep_id), store.events(dep_id), now=now)
    png = render_png(data)
    try:
        client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            file=png,
            filename=name,
            title=title(dep, what, now),
            alt_txt=alt_text(dep),
        )
    except Exception as exc:
        _sort(exc, dep_id, what, store)
        raise
    store.set_notes(dep_id, {f"chart:{what}": "posted"})
    return Posted("posted")


def alt_text(dep: Deployment) -> str:
    """The picture in words, for screen readers (Slack allows 1,000 characters)."""
    v = dep.last_verdict
    figures = f" Last check: {v.reason}" if v and v.reason else ""
    return (
        f"Chart of deployment {dep.id} of {dep.service}: the canary's and the stable's 5xx rate "
        f"at each check, per step, with step changes, gates and the "
        f"{dep.settings.max_error_rate} % threshold marked.{figures}"
    )[:1000]


def _sort(exc: Exception, dep_id: str, what: str, store: Store) -> None:
    """Turn a failed upload into the outbox's RetryLater / Undeliverable (else: re-raised)."""
    if isinstance(exc, urllib.error.HTTPError):  # the upload URL answered (step 2 of 3)
        if exc.code == 429 or exc.code >= 500:
            raise RetryLater(f"upload URL: HTTP {exc.code}") from exc
        _refused(store, dep_id, what, f"upload URL HTTP {exc.code}")
        raise Undeliverable(f"the upload URL refused the chart: HTTP {exc.code}") from exc
    failure = classify(exc)
    if failure is None:
        return
    if failure.kind is Kind.RETRY:
        raise RetryLater(f"Slack {failure.describe()}", failure.retry_after) from exc
    if failure.permanent or (isinstance(exc, SlackApiError) and failure.code in FILE_REFUSALS):
        _refused(store, dep_id, what, failure.code)
        raise Undeliverable(f"Slack refused the chart: {failure.describe()}") from exc


def _refused(store: Store, dep_id: str, what: str, code: str) -> None:
    store.set_notes(dep_id, {f"chart:{what}": f"refused {code}"})


def _shared(client: WebClient, channel: str, thread_ts: str, name: str) -> bool:
    """True when the thread already shows a file called `name`."""
    try:
        answer = client.conversations_replies(channel=channel, ts=thread_ts, limit=200)
    except SlackApiError as exc:
        failure = classify(exc)
        if failure is not None and failure.kind is Kind.RETRY:
            raise
        return False  # nothing to look in: the upload itself will meet the refusal
    for message in answer.get("messages") or []:
        if any(f.get("name") == name for f in message.get("files") or []):
            return True
    return False


def retry_delay(attempt: int, asked: float | None) -> float:
    """Seconds before attempt `attempt` + 1: what Slack asked for, else the outbox's back-off."""
    if asked is not None:
        return asked
    return min(RETRY_CAP, RETRY_BASE ** (attempt + 1))


def gives_up(attempt: int) -> bool:
    """True when attempt `attempt` (0-based) was the last one the outbox's rules allow."""
    return attempt + 1 >= MAX_ATTEMPTS
