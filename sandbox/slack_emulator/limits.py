"""What is refused before a Web API method runs, each as Slack would answer it:

- an injected fault (`SlackEmulator.fail`): the next calls (of some methods, or "upload", the
  upload URL) answer an HTTP status and an error code, with `Retry-After` if asked;
- the bot is a member only of the channels it was given (`channels`, `invite`): elsewhere
  chat.postMessage, chat.update, chat.delete, chat.postEphemeral and conversations.* answer
  `not_in_channel`; an archived channel answers `is_archived` (direct messages always reach);
- a method needing a scope the app lacks (`revoke_scope("files:write")`) answers `missing_scope`;
- chat.postMessage is limited per channel to `post_rate` messages a second with bursts of
  `post_burst` ("chat.postMessage generally allows posting one message per second per channel",
  https://docs.slack.dev/apis/web-api/rate-limits), answering HTTP 429 with `Retry-After`
  (whole seconds, as Slack sends it); `post_rate=None` turns it off.

Pure: the state they read is given.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

#: Methods that need the bot to be a member of the channel they name.
IN_CHANNEL = frozenset(
    {
        "chat.postMessage",
        "chat.update",
        "chat.delete",
        "chat.postEphemeral",
        "chat.getPermalink",
        "conversations.history",
        "conversations.replies",
        "files.completeUploadExternal",
    }
)
#: Methods that need a scope the app may be made to lack (`revoke_scope`).
SCOPES = {
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}


@dataclass
class Fault:
    status: int
    until: float
    remaining: int
    retry_after: int | None
    #: Slack's error code in the answer (default: by status, "ratelimited" or "internal_error").
    error: str | None = None
    #: Only these methods fail ("upload" is the upload URL); None: every call.
    methods: frozenset[str] | None = None


def faulty(fault: Fault | None, method: str) -> bool:
    """True when the injected fault applies to this call of `method`."""
    if not fault or fault.remaining <= 0 or time.monotonic() >= fault.until:
        return False
    return fault.methods is None or method in fault.methods


def access(
    method: str, params: dict[str, Any], members: Collection[str], archived: Collection[str]
) -> str | None:
    """`not_in_channel` / `is_archived` where the bot may not act, else None."""
    if method not in IN_CHANNEL:
        return None
    channel = str(params.get("channel") or params.get("channel_id") or "")
    if channel[:1] in ("U", "W", "D"):  # a person: the app's direct messages
        return None
    if channel in archived:
        return "is_archived"
    if channel not in members:
        return "not_in_channel"
    return None


def post_wait(
    buckets: dict[str, tuple[float, float]], channel: str, rate: float | None, burst: int
) -> int | None:
    """Seconds to wait before the next chat.postMessage in `channel`, or None: go ahead (the
    channel's token bucket in `buckets` is taken from)."""
    if not rate:
        return None
    now = time.monotonic()
    tokens, last = buckets.get(channel, (float(burst), now))
    tokens = min(float(burst), tokens + (now - last) * rate)
    if tokens < 1.0:
        buckets[channel] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / rate))
    buckets[channel] = (tokens - 1.0, now)
    return None
