"""One thread message posted at most once, and edited; a message Slack refuses for its content
(blocks, length) goes out as its plain text instead.

At most once: each message carries its identity in Slack's message metadata, and the notes mark
an attempt before the post; an attempt that finds an earlier one's mark looks for that message
(conversations.replies / .history) before posting again, so a worker that died after Slack took
a message never posts it twice (tests/test_slack_exactly_once.py).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from workers.engine.store import Store
from workers.slack.client import permanent
from workers.slack.errors import Kind
from workers.slack.format import MAX_TEXT, Message, clip

log = logging.getLogger(__name__)

#: Slack message-metadata type marking the bot's own messages (and which event each shows).
METADATA_EVENT = "canary_event"


def post_once(
    client: WebClient,
    store: Store,
    dep_id: str,
    what: str,
    channel: str,
    message: Message,
    *,
    thread_ts: str | None = None,
) -> str:
    """Post message `what` of deployment `dep_id` at most once; its ts (see the module)."""
    key = f"{dep_id}:{what}"
    if not store.set_note_once(dep_id, f"posting:{what}", "1"):
        found = find_posted(client, channel, key, thread_ts)
        if found:
            return found
    extra: dict[str, Any] = {"thread_ts": thread_ts} if thread_ts else {}
    post = dict(
        channel=channel,
        unfurl_links=False,
        unfurl_media=False,
        metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
        **extra,
    )
    try:
        answer = client.chat_postMessage(**post, **message.payload())
    except SlackApiError as exc:
        failure = permanent(exc, Kind.CONTENT)
        if failure is None:
            raise
        log.error(
            "deployment %s: Slack refused message %s (%s); posting its text alone",
            dep_id,
            what,
            failure.describe(),
        )
        answer = client.chat_postMessage(**post, text=clip(message.text, MAX_TEXT))
    return str(answer["ts"])


def find_posted(client: WebClient, channel: str, key: str, thread_ts: str | None) -> str | None:
    """The ts of the message carrying `key` in its metadata, if Slack has it."""
    try:
        if thread_ts:
            answer = client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=200
            )
        else:
            answer = client.conversations_history(
                channel=channel, include_all_metadata=True, limit=100
            )
    except SlackApiError as exc:
        if permanent(exc, Kind.GONE, Kind.UNREACHABLE, Kind.NO_ACCESS) is None:
            raise
        return None  # nothing to look in (the thread is gone): the post itself will tell
    for message in answer.get("messages") or []:
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        if payload.get("key") == key:
            return str(message["ts"])
    return None


def edit(client: WebClient, channel: str, ts: str, message: Message) -> None:
    """chat.update; a message Slack refuses for its content becomes its plain text."""
    try:
        client.chat_update(channel=channel, ts=ts, **message.payload())
    except SlackApiError as exc:
        failure = permanent(exc, Kind.CONTENT)
        if failure is None:
            raise
        log.error("Slack refused an edit of %s (%s); its text alone", ts, failure.describe())
        client.chat_update(channel=channel, ts=ts, text=clip(message.text, MAX_TEXT), blocks=[])
