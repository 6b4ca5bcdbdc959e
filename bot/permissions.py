"""Who may do what, and where (design.md "Who may do what"): one pure function, the group lookup.

Every action — deploy, approve, abort, roll back, by command or by button — goes through `may`,
with the service's entry of the catalogue as it is now. The rules, in the order they are checked:

1. the request comes from the app's own Slack workspace (or Enterprise organisation): Slack
   Connect guests and users of other organisations are refused whatever the catalogue says;
2. when the service has a `channel`, only from that channel (a click in the card's thread is in
   that channel: thread replies belong to their channel). A click in the App Home tab comes from
   no channel, so it is refused for such a service: design.md's "only in the service's channel"
   is about where an action is taken, and the tab is not there (it offers no buttons for them);
   a service without `channel` sets no rule of place, and its gates may be decided from the tab;
3. deploy: a deployer (anyone when `deployers` is empty); approve: an approver (anyone when
   `approvers` is empty), never the requester when `four_eyes` is on; abort and roll back: the
   requester, a deployer or an approver (anyone when `deployers` is empty).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from workers.domain.catalogue import ServiceConfig
from workers.domain.refusals import Action, Denial, Forbidden
from workers.slack import answers

log = logging.getLogger(__name__)

#: Members of a Slack user group (`S…`); raises GroupUnavailable when they cannot be known.
GroupsResolver = Callable[[str], Collection[str]]
#: How long a user group's members are used without asking Slack again (seconds).
GROUP_TTL = 300.0
#: The oldest member list used when Slack cannot be asked (seconds); older, the group grants
#: nothing and the person is told why.
GROUP_MAX_AGE = 900.0
#: After a failed `usergroups.users.list`, how long before Slack is asked again (seconds).
GROUP_FAILURE_TTL = 30.0


class GroupUnavailable(Exception):
    """A user group's members are not known: Slack failed and no recent list is left."""


@dataclass(frozen=True)
class Workspace:
    """The app's own Slack workspace and, on Enterprise Grid, its organisation (`auth.test`)."""

    team_id: str | None = None
    enterprise_id: str | None = None

    @classmethod
    def of(cls, auth: Any) -> Workspace:
        """From an `auth.test` answer or Bolt's AuthorizeResult (both have these two fields)."""
        if auth is None:
            return cls()
        get = auth.get if isinstance(auth, Mapping) else lambda key: getattr(auth, key, None)
        return cls(team_id=get("team_id") or None, enterprise_id=get("enterprise_id") or None)


@dataclass(frozen=True)
class Actor:
    """Who asks, from where: what Slack sends with the slash command or the click."""

    user: str
    channel: str | None = None
    #: The workspace the request was made in (`team_id`, `team.id`).
    team_id: str | None = None
    #: The person's own team (`user.team_id` of a click; an `E…` id on Enterprise Grid).
    user_team_id: str | None = None
    #: The organisation (`enterprise_id`, `enterprise.id`, `team.enterprise_id`).
    enterprise_id: str | None = None

    @classmethod
    def from_command(cls, command: Mapping[str, Any]) -> Actor:
        """From a slash command's form fields."""
        return cls(
            user=str(command.get("user_id") or ""),
            channel=command.get("channel_id") or None,
            team_id=command.get("team_id") or None,
            enterprise_id=command.get("enterprise_id") or None,
        )

    @classmethod
    def from_click(cls, body: Mapping[str, Any]) -> Actor:
        """From a `block_actions` payload (docs.slack.dev/reference/interaction-payloads)."""
        user = _mapping(body.get("user"))
        team = _mapping(body.get("team"))
        enterprise = _mapping(body.get("enterprise"))
        channel = _mapping(body.get("channel")).get("id") or _mapping(body.get("container")).get(
            "channel_id"
        )
        return cls(
            user=str(user.get("id") or ""),
            channel=channel or None,
            team_id=team.get("id") or None,
            user_team_id=user.get("team_id") or None,
            enterprise_id=enterprise.get("id") or team.get("enterprise_id") or None,
        )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Permission:
    """Allowed, or refused with a typed denial (its code and ids; answers words it)."""

    allowed: bool
    denial: Denial | None = None

    @property
    def reason(self) -> str:
        """The sentence for the person who asked ("" when allowed)."""
        return answers.denied(self.denial) if self.denial else ""


ALLOWED = Permission(True)


def at_home(actor: Actor, home: Workspace) -> bool:
    """Whether the request comes from the app's own workspace or Enterprise organisation.

    On Grid (`home.enterprise_id`) any workspace of the organisation counts; elsewhere only the
    app's workspace. A click also names the person's own team (`user.team_id`), which differs
    for a Slack Connect guest even in one of our channels. Unknown home: nobody (fail closed).
    """
    if home.enterprise_id:
        if actor.enterprise_id != home.enterprise_id:
            return False
    elif not home.team_id or actor.enterprise_id or actor.team_id != home.team_id:
        return False
    own = {home.team_id, home.enterprise_id} - {None}
    return actor.user_team_id is None or actor.user_team_id in own


def may(
    action: Action,
    actor: Actor,
    settings: ServiceConfig,
    groups: GroupsResolver,
    *,
    home: Workspace,
    requester: str | None = None,
) -> Permission:
    """Whether `actor` may `action` the service `settings` (its entry as the catalogue is now).

    `requester` is who started the deployment an approve, abort or roll back is about.
    """
    name = settings.key

    def refuse(reason: Forbidden, ids: Collection[str] = ()) -> Permission:
        return Permission(False, Denial(reason, name, action, tuple(ids)))

    if not at_home(actor, home):
        return refuse(Forbidden.ELSEWHERE)
    if settings.channel and actor.channel != settings.channel:
        return refuse(Forbidden.WRONG_CHANNEL, [settings.channel])
    deployers, approvers = settings.deployers, settings.approvers
    user = actor.user

    if action == "deploy":
        return _among(user, deployers, groups, refuse, Forbidden.NOT_DEPLOYER)

    if action == "approve":
        if settings.four_eyes and user == requester:
            return refuse(Forbidden.FOUR_EYES, [a for a in approvers if a != user])
        return _among(user, approvers, groups, refuse, Forbidden.NOT_APPROVER)

    # abort, rollback: the requester, any deployer or approver.
    if requester is not None and user == requester:
        return ALLOWED
    if not deployers:
        return ALLOWED
    return _among(
        user, [*deployers, *approvers], groups, refuse, Forbidden.NOT_DEPLOYER_OR_APPROVER
    )


def _among(
    user: str,
    members: list[str],
    groups: GroupsResolver,
    refuse: Callable[[Forbidden, Collection[str]], Permission],
    reason: Forbidden,
) -> Permission:
    """Allowed when `members` is empty or names `user`, directly or through a user group."""
    if not members or user in members:
        return ALLOWED
    unknown: list[str] = []
    for group in (m for m in members if m.startswith("S")):
        try:
            if user in groups(group):
                return ALLOWED
        except GroupUnavailable:
            unknown.append(group)
    if unknown:
        return refuse(Forbidden.GROUPS_UNKNOWN, unknown)
    return refuse(reason, members)


class GroupDirectory:
    """Members of user groups from `usergroups.users.list`.

    A list is used for GROUP_TTL seconds, then asked for again. When Slack fails, a list younger
    than GROUP_MAX_AGE is still used; an older one or none raises GroupUnavailable, and Slack is
    not asked again for that group for GROUP_FAILURE_TTL seconds (failures are cached briefly).
    """

    def __init__(
        self,
        client: WebClient,
        ttl: float = GROUP_TTL,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_age: float = GROUP_MAX_AGE,
        failure_ttl: float = GROUP_FAILURE_TTL,
    ) -> None:
        self.client, self.ttl, self.clock = client, ttl, clock
        self.max_age, self.failure_ttl = max_age, failure_ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def __call__(self, group: str) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(group)
            failed = self._failed.get(group)
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        if failed and now - failed[0] < self.failure_ttl:
            return self._stale(group, cached, now, failed[1])
        try:
            answer = self.client.usergroups_users_list(usergroup=group)
            members = frozenset(answer.get("users") or [])
        except (SlackClientError, OSError) as exc:
            error = str(exc.response.get("error")) if isinstance(exc, SlackApiError) else str(exc)
            log.warning("usergroups.users.list %s failed: %s", group, error)
            with self._lock:
                self._failed[group] = (now, error)
            return self._stale(group, cached, now, error)
        with self._lock:
            self._cache[group] = (now, members)
            self._failed.pop(group, None)
        return members

    def _stale(
        self, group: str, cached: tuple[float, frozenset[str]] | None, now: float, error: str
    ) -> frozenset[str]:
        """The last list while it is younger than max_age; else the group is unknown."""
        if cached and now - cached[0] < self.max_age:
            return cached[1]
        raise GroupUnavailable(f"members of {group} unknown: {error}")
