"""Gate and Roll back buttons through the real Bolt app, and the thread as people then see it."""

from __future__ import annotations

import time

import pytest

from tests.bot_harness import (
    DANA,
    IMAGE,
    LEE,
    PAYMENTS_CHANNEL,
    SAM,
    STRANGER,
    Slack,
    advance,
    event,
    notifier,
    to_gate,
)
from tests.slack_mock import MockSlack, Posted
from workers import api
from workers.domain.deployment import Deployment
from workers.domain.events import Refused
from workers.domain.refusals import Forbidden
from workers.domain.state import State
from workers.engine.outbox import deliver_pending
from workers.runtime.context import Runtime
from workers.slack.notifier import SETTLE


def start_at_gate(slack: Slack, rt: Runtime, mock: MockSlack) -> str:
    """Dana deploys payments; the engine (stand-in) reaches the gate before step 2."""
    slack.answer(f"deploy payments {IMAGE}")
    dep = api.active_deployment("payments", rt=rt)
    to_gate(rt, dep.id)
    deliver_pending(rt, notifier(mock), dep.id)
    return dep.id


def settled(rt: Runtime, dep_id: str, state: State) -> Deployment | None:
    """The deployment once it is in `state` (clicks are handled on Bolt's listener threads)."""
    dep = api.get_deployment(dep_id, rt=rt)
    return dep if dep is not None and dep.state == state else None


def gate_message(mock: MockSlack, rt: Runtime, dep_id: str) -> Posted:
    """The gate message of step 2 as it reads now (the notifier keeps its ts in the notes)."""
    return mock.messages[(PAYMENTS_CHANNEL, rt.store.notes(dep_id)["gate:2"])]


def test_gate_buttons_carry_the_deployment_and_the_step(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    gate = gate_message(mock, rt, dep_id)
    assert gate.button("canary_approve")["value"] == f"{dep_id}:2"
    assert gate.button("canary_approve")["text"]["text"] == "Approve 25 %"
    assert gate.button("canary_abort")["value"] == f"{dep_id}:2"
    assert f"<@{SAM}>" in gate.shown() and f"<@{LEE}>" in gate.shown()


def test_approve_moves_one_step_and_the_gate_message_says_who(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    assert slack.click_and_wait("canary_approve", f"{dep_id}:2", user=SAM) is None
    dep = mock.wait_for(lambda: settled(rt, dep_id, State.SHIFTING))
    assert dep.step_number == 2
    # No shift is told within SETTLE seconds (no worker runs here): the gate closes without it.
    deliver_pending(rt, notifier(mock, clock=lambda: time.time() + SETTLE), dep_id)
    gate = gate_message(mock, rt, dep_id)
    assert gate.buttons() == []
    assert f"Step 2 (25 %) approved by <@{SAM}> at" in gate.shown()


def test_double_approve_click_moves_one_step(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    told_before = len(mock.private)
    # Both clicks race in Bolt's listener threads; the compare-and-set lets exactly one win.
    slack.click("canary_approve", f"{dep_id}:2", user=SAM)
    slack.click("canary_approve", f"{dep_id}:2", user=LEE)
    [told] = mock.wait_for(lambda: mock.private[told_before:])
    dep = api.get_deployment(dep_id, rt=rt)
    assert dep.step_number == 2 and len(dep.approvals) == 1
    winner = dep.approvals[0].actor
    assert told["user"] == ({SAM, LEE} - {winner}).pop()
    assert told["text"] == f"Step 2 was already approved by <@{winner}>."
    assert [e.kind for e in api.get_events(dep_id, rt=rt)].count("approved") == 1


def test_self_approval_is_refused_under_four_eyes(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    told = slack.click_and_wait("canary_approve", f"{dep_id}:2", user=DANA)
    assert told == (
        "You can't approve your own deployment (four-eyes is on for payments). "
        f"Ask one of: <@{SAM}>, <@{LEE}>."
    )
    assert api.get_deployment(dep_id, rt=rt).state == State.AWAITING_APPROVAL
    refused = api.get_events(dep_id, rt=rt)[-1]
    assert isinstance(refused, Refused) and refused.actor == DANA
    assert refused.action == "approve"
    # The log keeps the code and whom to ask, not the sentence (workers.slack.answers words it).
    assert refused.reason == Forbidden.FOUR_EYES and refused.ids == [SAM, LEE]
    assert refused.detail is None
    [ephemeral] = mock.ephemerals
    assert ephemeral["user"] == DANA and ephemeral["channel"] == PAYMENTS_CHANNEL


def test_stranger_may_not_approve(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    told = slack.click_and_wait("canary_approve", f"{dep_id}:2", user=STRANGER)
    assert told.startswith("You are not an approver of payments.")
    assert api.get_deployment(dep_id, rt=rt).state == State.AWAITING_APPROVAL


def test_stale_button_of_an_old_step_is_refused(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    told = slack.click_and_wait("canary_approve", f"{dep_id}:1", user=SAM)
    assert told == f"That button is for step 1, but deployment {dep_id} is waiting for step 2."
    assert api.get_deployment(dep_id, rt=rt).state == State.AWAITING_APPROVAL


def test_abort_button_rolls_back_and_closes_the_gate(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    assert slack.click_and_wait("canary_abort", f"{dep_id}:2", user=DANA) is None
    mock.wait_for(lambda: settled(rt, dep_id, State.ROLLING_BACK))
    deliver_pending(rt, notifier(mock), dep_id)
    gate = gate_message(mock, rt, dep_id)
    assert gate.buttons() == []
    assert f"not approved: aborted by <@{DANA}>" in gate.shown()


def test_click_on_a_finished_deployment_is_refused(
    slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    api.abort(dep_id, actor=DANA, rt=rt)
    advance(rt, dep_id, State.CLEANING_UP, [event("route_restored", seconds=0.4, stable=None)])
    ended = event(
        "rolled_back", by="abort", reason="aborted", kept=False, took=60, canary_existed=True
    )
    advance(
        rt,
        dep_id,
        State.ROLLED_BACK,
        [ended],
        mutate=lambda d: setattr(d, "finished_at", time.time()),
    )
    told = slack.click_and_wait("canary_approve", f"{dep_id}:2", user=SAM)
    assert told == f"Deployment {dep_id} is already over (rolled back)."


def test_roll_back_button_after_promotion(slack: Slack, rt: Runtime, mock: MockSlack) -> None:
    dep_id = start_at_gate(slack, rt, mock)

    def to_full(d: Deployment) -> None:
        d.step_index = len(d.settings.steps) - 1

    advance(
        rt,
        dep_id,
        State.POST_PROMOTION,
        [event("shifted", weight=100, route="route payments-route", post_promotion_bake=900)],
        mutate=to_full,
    )
    deliver_pending(rt, notifier(mock), dep_id)
    [card] = mock.channel(PAYMENTS_CHANNEL)
    full = mock.thread(PAYMENTS_CHANNEL, card.ts)[-1]
    assert "Old version kept running for 15m." in full.shown()
    button = full.button("canary_rollback")
    assert button["value"] == f"{dep_id}:4"
    told = slack.click_and_wait("canary_rollback", button["value"], user=STRANGER)
    assert told.startswith("Only deployers and approvers of payments may roll back it.")
    assert slack.click_and_wait("canary_rollback", button["value"], user=LEE) is None
    mock.wait_for(lambda: settled(rt, dep_id, State.ROLLING_BACK))
    deliver_pending(rt, notifier(mock), dep_id)
    [full] = [m for m in mock.thread(PAYMENTS_CHANNEL, card.ts) if "Old version kept" in m.text]
    assert full.buttons() == [] and f"Rolled back by <@{LEE}>" in full.shown()


@pytest.mark.parametrize("value", [["x"], {"a": 1}, None, 7])
def test_a_button_value_that_is_not_ours_gets_a_clear_answer(
    slack: Slack, rt: Runtime, mock: MockSlack, value: object
) -> None:
    dep_id = start_at_gate(slack, rt, mock)
    told = slack.click_and_wait("canary_approve", value, user=SAM)  # type: ignore[arg-type]
    assert told == "That button belongs to a deployment I no longer know."
    assert api.get_deployment(dep_id, rt=rt).state == State.AWAITING_APPROVAL
