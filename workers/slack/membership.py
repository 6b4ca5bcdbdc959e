"""Whether the bot can post in a channel: `conversations.info`'s `is_member`, read before a
deployment is created (by the bot) and by the doctor (by the worker).

`conversations.info` needs `channels:read` for a public channel and `groups:read` for a private
one (Slack's Conversations API: "to retrieve details about a public channel, you'll need
channels:read. For details about a private channel, you'll need groups:read"). A private channel
the bot is not in answers `channel_not_found`: to the bot it does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

#: Answers that mean the bot cannot see the channel at all (private and not invited, or deleted).
_NOT_VISIBLE = frozenset({"channel_not_found"})


@dataclass(frozen=True)
class Membership:
    """What Slack said about the bot and one channel."""

    channel: str
    #: True: the bot is in it; False: it is not (or cannot see it); None: Slack did not say.
    member: bool | None
    #: The channel's name when Slack gave it ("deploys"), else None.
    name: str | None = None
    archived: bool = False
    #: Slack's error code when the question could not be answered (missing_scope, ratelimited).
    error: str | None = None

    @property
    def label(self) -> str:
        """How a person reads the channel: "#deploys", else its id as a mention."""
        return f"#{self.name}" if self.name else f"<#{self.channel}>"

    @property
    def can_post(self) -> bool:
        return bool(self.member) and not self.archived


def channel_membership(client: WebClient, channel: str) -> Membership:
    """Ask Slack whether the bot is a member of `channel` (one conversations.info call)."""
    try:
        info = client.conversations_info(channel=channel)
    except SlackApiError as exc:
        code = str(exc.response.get("error", "") if exc.response is not None else "") or "error"
        if code in _NOT_VISIBLE:
            return Membership(channel, member=False, error=code)
        return Membership(channel, member=None, error=code)
    found = info.get("channel") or {}
    return Membership(
        channel,
        member=bool(found.get("is_member")),
        name=found.get("name") or None,
        archived=bool(found.get("is_archived")),
    )


def cannot_post(membership: Membership, then: str = "deploy again") -> str:
    """The answer to a person when the bot cannot post where they asked."""
    if membership.archived:
        return f"I can't post in {membership.label}: it is archived."
    return f"I can't post in {membership.label}: invite me with `/invite @canary`, then {then}."
