"""Who may do what and where: the pure rule, the group cache, and clicks through the Bolt app."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from bot.permissions import (
    Actor,
    GroupDirectory,
    GroupUnavailable,
    Workspace,
    at_home,
    may,
)
from tests.bot_harness import (
    CATALOGUE,
    DANA,
    DEPLOY_GROUP,
    GRACE,
    IMAGE,
    LEE,
    OTHER_CHANNEL,
    PAYMENTS_CHANNEL,
    SAM,
    STRANGER,
    Slack,
    notifier,
    to_gate,
)
from tests.slack_mock import MockSlack
from workers import api
from workers.domain.catalogue import parse_catalogue
from workers.domain.refusals import Denial, Forbidden
from workers.domain.state import State
from workers.engine.outbox import deliver_pending
from workers.runtime.context import Runtime
from workers.slack import answers

HOME = Workspace(team_id="T0001")
GRID = Workspace(team_id="T0001", enterprise_id="E0001")
SERVICES = parse_catalogue(CATALOGUE).services
PAYMENTS, SEARCH = SERVICES["payments"], SERVICES["search"]


def no_groups(group: str) -> frozenset[str]:
    return frozenset()


def actor(user: str, channel: str = PAYMENTS_CHANNEL, **where: Any) -> Actor:
    return Actor(user=user, channel=channel, **{"team_id": "T0001", **where})


# the workspace ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "home", "allowed"),
    [
        (Actor("U1", team_id="T0001"), HOME, True),
        (Actor("U1", team_id="T0001", user_team_id="T0001"), HOME, True),
        (Actor("U1", team_id="T0OTHER"), HOME, False),
        # a Slack Connect guest clicking in one of our channels: our team, their user team
        (Actor("U1", team_id="T0001", user_team_id="T0OTHER"), HOME, False),
        (Actor("U1", team_id="T0001", enterprise_id="E0OTHER"), HOME, False),
        (Actor("U1"), HOME, False),  # Slack always says where from: nothing said, nothing allowed
        (Actor("U1", team_id="T0001"), Workspace(), False),  # our own workspace unknown
        # Grid: any workspace of the organisation; user.team_id is then the E… id
        (Actor("U1", team_id="T0002", user_team_id="E0001", enterprise_id="E0001"), GRID, True),
        (Actor("U1", team_id="T0001", enterprise_id="E0001"), GRID, True),
        (Actor("U1", team_id="T0001", user_team_id="E0OTHER", enterprise_id="E0001"), GRID, False),
        (Actor("U1", team_id="T0001"), GRID, False),
    ],
)
def test_only_the_apps_own_workspace_or_organisation(
    who: Actor, home: Workspace, allowed: bool
) -> None:
    assert at_home(who, home) is allowed


@pytest.mark.parametrize("action", ["deploy", "approve", "abort", "rollback"])
def test_a_stranger_from_another_workspace_is_refused_even_when_anyone_may(action: str) -> None:
    assert not SEARCH.deployers and not SEARCH.approvers and not SEARCH.channel
    here = may(action, actor("U0ANY", "C0ANY"), SEARCH, no_groups, home=HOME)  # type: ignore[arg-type]
    assert here.allowed
    guest = actor("U0GUEST", "C0ANY", user_team_id="T0OTHER")
    refused = may(action, guest, SEARCH, no_groups, home=HOME)  # type: ignore[arg-type]
    assert not refused.allowed
    assert refused.reason.startswith("Only members of the workspace this bot belongs to")


# the channel ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "user"),
    [("deploy", DANA), ("approve", SAM), ("abort", DANA), ("rollback", LEE)],
)
def test_every_action_only_in_the_services_channel(action: str, user: str) -> None:
    ok = may(action, actor(user), PAYMENTS, no_groups, home=HOME, requester=DANA)  # type: ignore[arg-type]
    assert ok.allowed
    elsewhere = may(
        action,  # type: ignore[arg-type]
        actor(user, OTHER_CHANNEL),
        PAYMENTS,
        no_groups,
        home=HOME,
        requester=DANA,
    )
    assert not elsewhere.allowed
    assert f"<#{PAYMENTS_CHANNEL}>" in elsewhere.reason


def test_roles() -> None:
    def check(action: str, user: str) -> bool:
        groups = {DEPLOY_GROUP: frozenset({GRACE})}.__getitem__
        return may(action, actor(user), PAYMENTS, groups, home=HOME, requester=DANA).allowed  # type: ignore[arg-type]

    assert check("deploy", DANA) and check("deploy", GRACE) and not check("deploy", SAM)
    assert check("approve", SAM) and not check("approve", DANA) and not check("approve", GRACE)
    assert check("abort", DANA) and check("abort", SAM) and check("rollback", GRACE)
    assert not check("abort", STRANGER) and not check("rollback", STRANGER)


# the group cache --------------------------------------------------------------------------------
class FlakyGroups:
    """`usergroups.users.list` that answers or fails on demand, counting the calls."""

    def __init__(self) -> None:
        self.failing = False
        self.calls = 0

    def usergroups_users_list(self, usergroup: str) -> dict[str, Any]:
        self.calls += 1
        if self.failing:
            raise SlackApiError("boom", {"ok": False, "error": "internal_error"})
        return {"users": [GRACE]}


def test_group_members_have_a_maximum_age_and_failures_are_cached() -> None:
    now = [1000.0]
    slack = FlakyGroups()
    groups = GroupDirectory(
        slack,  # type: ignore[arg-type]
        ttl=300,
        clock=lambda: now[0],
        max_age=900,
        failure_ttl=30,
    )
    assert groups(DEPLOY_GROUP) == {GRACE} and slack.calls == 1
    now[0] += 100
    assert groups(DEPLOY_GROUP) == {GRACE} and slack.calls == 1  # fresh: not asked again
    slack.failing = True
    now[0] += 300  # 400 s old: asked again, fails, the list is still young enough
    assert groups(DEPLOY_GROUP) == {GRACE} and slack.calls == 2
    now[0] += 10
    assert groups(DEPLOY_GROUP) == {GRACE} and slack.calls == 2  # the failure is remembered
    now[0] += 600  # 1010 s old: too old to use
    with pytest.raises(GroupUnavailable):
        groups(DEPLOY_GROUP)
    assert slack.calls == 3
    with pytest.raises(GroupUnavailable):
        groups(DEPLOY_GROUP)
    assert slack.calls == 3
    refused = may("deploy", actor(GRACE), PAYMENTS, groups, home=HOME)
    assert not refused.allowed and "could not check the members" in refused.reason
    assert may("deploy", actor(DANA), PAYMENTS, groups, home=HOME).allowed  # named directly
    slack.failing = False
    now[0] += 31
    assert groups(DEPLOY_GROUP) == {GRACE} and slack.calls == 4


def test_an_unknown_group_without_any_list_refuses_with_a_clear_answer() -> None:
    slack = FlakyGroups()
    slack.failing = True
    groups = GroupDirectory(slack)  # type: ignore[arg-type]
    refused = may("deploy", actor(GRACE), PAYMENTS, groups, home=HOME)
    assert not refused.allowed
    assert refused.reason.startswith(f"I could not check the members of <!subteam^{DEPLOY_GROUP}>")


# through the Bolt app ---------------------------------------------------------------------------
def search_at_gate(slack: Slack, rt: Runtime, mock: MockSlack) -> str:
    """Anyone deploys search (no deployers, no approvers, no channel); it reaches a gate."""
    slack.answer(f"deploy search {IMAGE}", user=DANA, channel=OTHER_CHANNEL)
    dep = api.active_deployment("search", rt=rt)
    to_gate(rt, dep.id)
    deliver_pending(rt, notifier(mock), dep.id)
    return dep.id


@pytest.mark.parametrize("action_id", ["canary_approve", "canary_abort"])
def test_a_slack_connect_guest_may_not_click_where_anyone_may(
    slack: Slack, rt: Runtime, mock: MockSlack, action_id: str
) -> None:
    dep_id = search_at_gate(slack, rt, mock)
    told = slack.click_and_wait(
        action_id, f"{dep_id}:2", user="U0GUEST", channel=OTHER_CHANNEL, user_team="T0OTHER"
    )
    assert told is not None and told.startswith("Only members of the workspace")
    assert api.get_deployment(dep_id, rt=rt).state == State.AWAITING_APPROVAL
    refused = api.get_events(dep_id, rt=rt)[-1]
    assert refused.kind == "refused" and refused.actor == "U0GUEST"


def test_a_command_from_another_workspace_may_not_abort(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = search_at_gate(slack, rt, mock)
    told = slack.answer("abort search", user="U0OTHER", channel=OTHER_CHANNEL, team="T0OTHER")
    assert told.startswith("Only members of the workspace")
    assert api.get_deployment(dep_id, rt=rt).state == State.AWAITING_APPROVAL


def test_a_click_from_another_channel_is_refused(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    slack.answer(f"deploy payments {IMAGE}")
    dep = api.active_deployment("payments", rt=rt)
    to_gate(rt, dep.id)
    for action_id, user in (("canary_approve", SAM), ("canary_abort", DANA)):
        told = slack.click_and_wait(action_id, f"{dep.id}:2", user=user, channel=OTHER_CHANNEL)
        assert told == (
            f"payments can only be {'approved' if user == SAM else 'aborted'} from "
            f"<#{PAYMENTS_CHANNEL}> or the deployment's thread there."
        )
    assert api.get_deployment(dep.id, rt=rt).state == State.AWAITING_APPROVAL
    assert slack.answer("abort payments", channel=OTHER_CHANNEL).startswith(
        "payments can only be aborted from"
    )


# typed denials ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "who", "reason", "ids"),
    [
        ("deploy", actor(SAM), Forbidden.NOT_DEPLOYER, PAYMENTS.deployers),
        ("approve", actor(GRACE), Forbidden.NOT_APPROVER, PAYMENTS.approvers),
        ("approve", actor(DANA), Forbidden.FOUR_EYES, [SAM, LEE]),
        ("abort", actor(STRANGER), Forbidden.NOT_DEPLOYER_OR_APPROVER, None),
        ("abort", actor(DANA, OTHER_CHANNEL), Forbidden.WRONG_CHANNEL, [PAYMENTS_CHANNEL]),
        ("deploy", actor(DANA, team_id="T0OTHER"), Forbidden.ELSEWHERE, []),
    ],
)
def test_a_refusal_is_a_code_with_ids_worded_by_the_slack_side(
    action: str, who: Actor, reason: Forbidden, ids: list[str] | None
) -> None:
    groups = {DEPLOY_GROUP: frozenset({GRACE})}.__getitem__
    permission = may(action, who, PAYMENTS, groups, home=HOME, requester=DANA)  # type: ignore[arg-type]
    denial = permission.denial
    assert not permission.allowed and denial is not None
    assert denial.reason == reason and denial.service == "payments"
    expected = [*PAYMENTS.deployers, *PAYMENTS.approvers] if ids is None else ids
    assert list(denial.ids) == list(expected)
    # The words are the Slack side's, from the code and the ids alone.
    assert permission.reason == answers.denied(denial) != ""
    assert "<@" not in denial.reason.value


def test_a_refusal_of_unknown_groups_names_them() -> None:
    def unknown(group: str) -> frozenset[str]:
        raise GroupUnavailable(group)

    permission = may("deploy", actor(GRACE), PAYMENTS, unknown, home=HOME)
    assert permission.denial == Denial(
        Forbidden.GROUPS_UNKNOWN, "payments", "deploy", (DEPLOY_GROUP,)
    )
