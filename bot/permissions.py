"""Who may do what (design.md "Who may do what"): one pure function, plus the group lookup."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from workers.domain.catalogue import ServiceConfig
from workers.domain.deployment import Deployment
from workers.slack.format import mentions

log = logging.getLogger(__name__)

Action = Literal["deploy", "approve", "abort", "rollback"]
#: Members of a Slack user group (`S…`).
GroupsResolver = Callable[[str], Collection[str]]
#: How long a user group's members are cached (seconds).
GROUP_TTL = 300.0


@dataclass(frozen=True)
class Permission:
    """Allowed, or refused with a sentence for the person who asked."""

    allowed: bool
    reason: str = ""


ALLOWED = Permission(True)


def may(
    action: Action,
    user: str,
    target: Deployment | ServiceConfig,
    groups: GroupsResolver,
    *,
    channel: str | None = None,
) -> Permission:
    """Whether `user` may `action` the service or deployment `target` (from `channel`)."""
    dep = target if isinstance(target, Deployment) else None
    settings = dep.settings if dep else target
    assert isinstance(settings, ServiceConfig)
    name = settings.key
    deployers, approvers = settings.deployers, settings.approvers

    if action == "deploy":
        if settings.channel and channel != settings.channel:
            return Permission(False, f"{name} can only be deployed from <#{settings.channel}>.")
        if deployers and not _member(user, deployers, groups):
            return Permission(
                False, f"You are not a deployer of {name}. Ask one of: {mentions(deployers)}."
            )
        return ALLOWED

    if action == "approve":
        requester = dep.requester if dep else None
        if settings.four_eyes and user == requester:
            others = [a for a in approvers if a != user]
            ask = f"Ask one of: {mentions(others)}." if others else "Ask someone else."
            return Permission(
                False,
                f"You can't approve your own deployment (four-eyes is on for {name}). {ask}",
            )
        if approvers and not _member(user, approvers, groups):
            return Permission(
                False, f"You are not an approver of {name}. Ask one of: {mentions(approvers)}."
            )
        return ALLOWED

    # abort, rollback: any deployer or approver, the requester included.
    if dep is not None and user == dep.requester:
        return ALLOWED
    if not deployers or _member(user, [*deployers, *approvers], groups):
        return ALLOWED
    verb = "abort" if action == "abort" else "roll back"
    return Permission(
        False,
        f"Only deployers and approvers of {name} may {verb} it. "
        f"Ask one of: {mentions([*deployers, *approvers])}.",
    )


def _member(user: str, members: Collection[str], groups: GroupsResolver) -> bool:
    if user in members:
        return True
    return any(user in groups(m) for m in members if m.startswith("S"))


class GroupDirectory:
    """Members of user groups from `usergroups.users.list`, cached for GROUP_TTL seconds."""

    def __init__(
        self,
        client: WebClient,
        ttl: float = GROUP_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.ttl, self.clock = client, ttl, clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def __call__(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._cache.get(group)
        if cached and self.clock() - cached[0] < self.ttl:
            return cached[1]
        try:
            answer = self.client.usergroups_users_list(usergroup=group)
            members = frozenset(answer.get("users") or [])
        except (SlackClientError, OSError) as exc:
            # Failing closed: an unknown group grants nothing; a stale list beats none.
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else exc
            log.warning("usergroups.users.list %s failed: %s", group, error)
            return cached[1] if cached else frozenset()
        with self._lock:
            self._cache[group] = (self.clock(), members)
        return members
