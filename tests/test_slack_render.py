"""What the card and each thread message read: pure rendering, no Slack in between."""

from __future__ import annotations

import pytest

from tests.bot_harness import (
    DANA,
    IMAGE,
    OLD_IMAGE,
    PAYMENTS_CHANNEL,
    SAM,
    event,
    make_runtime,
    verdict,
)
from workers.domain.deployment import Approval, Deployment
from workers.domain.events import Event
from workers.domain.outcomes import Answer, Refusal
from workers.domain.state import State
from workers.slack import answers
from workers.slack.card import card_status, render_card
from workers.slack.client import slack_api_url
from workers.slack.format import MAX_BLOCKS, MAX_TEXT, Message
from workers.slack.thread import render_event

NOW = 1_800_000_000.0


def deployment(state: State, **fields: object) -> Deployment:
    rt = make_runtime()
    settings = rt.catalogue().service("payments")
    base = dict(
        id="4f2a9c1e",
        service="payments",
        image=IMAGE,
        requester=DANA,
        channel=PAYMENTS_CHANNEL,
        settings=settings,
        created_at=NOW - 600,
        updated_at=NOW,
        state_since=NOW - 60,
        old_image=OLD_IMAGE,
    )
    return Deployment(**{**base, "state": state, **fields})


# the card, one state at a time ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "fields", "expected"),
    [
        (State.PROVISIONING, {"old_image": None}, "Provisioning"),
        (State.WAITING_READY, {}, "Waiting for tasks"),
        (State.SHIFTING, {"step_index": 1}, "Shifting to 25 %"),
        (State.BAKING, {"step_index": 0, "step_started_at": NOW - 60}, "Baking 10 % (4:00 left"),
        (State.HOLDING, {"step_index": 0}, "Holding: not enough traffic"),
        (State.AWAITING_APPROVAL, {"step_index": 1}, "Waiting for approval"),
        (State.POST_PROMOTION, {"step_index": 3}, "Promoted, old version kept 15m"),
        (State.PROMOTED, {"step_index": 3}, "Done ✅"),
        (State.ROLLING_BACK, {"step_index": 1}, "Rolling back"),
        (State.CLEANING_UP, {"step_index": 1}, "Rolling back"),
        (
            State.ROLLED_BACK,
            {"step_index": 1, "reason": "canary 812 req, 97 × 5xx (11.9 %) > 1.0 %"},
            "Rolled back ❌ (canary 812 req, 97 × 5xx (11.9 %) > 1.0 %)",
        ),
        (
            State.FAILED,
            {"problems": ["delete ECS service payments-4f2a9c1e in prod by hand"]},
            "Failed ⚠ (needs a human: delete ECS service payments-4f2a9c1e in prod by hand)",
        ),
    ],
)
def test_card_shows_each_state(state: State, fields: dict, expected: str) -> None:
    dep = deployment(state, **fields)
    assert card_status(dep, NOW).startswith(expected)
    card = render_card(dep, now=NOW, thread_url="https://example.slack.com/archives/C/p1")
    shown = "\n".join(
        b.get("text", {}).get("text", "") or " ".join(e.get("text", "") for e in b["elements"])
        for b in card.blocks
        if b["type"] != "actions"
    )
    assert expected in shown
    assert "🐤 Canary · payments · #4f2a9c1e" in shown
    assert "Steps 10 · 25 · 50 · 100 · bake 5m · gates manual · max 5xx 1.0 %" in shown.replace(
        "*", ""
    )
    assert len(card.blocks) <= MAX_BLOCKS
    if fields.get("old_image", OLD_IMAGE):
        assert "`payments:v41 → payments:v42`" in shown


def test_card_progress_bar_follows_the_weight() -> None:
    shown = render_card(deployment(State.AWAITING_APPROVAL, step_index=1)).blocks[1]["text"]["text"]
    assert "`■■■■■□□□□□□□□□□□□□□□`  25 % → canary · step 2 of 4" in shown


def thread(dep: Deployment, *events: Event) -> list[Message | None]:
    """What each event of a log made of `events` shows in the thread (None: nothing of its own)."""
    for seq, e in enumerate(events):
        e.seq = seq
    return [render_event(dep, e, events) for e in events]


def test_long_texts_stay_within_block_kit_limits() -> None:
    dep = deployment(State.FAILED, problems=["x" * 5000] * 30)
    [failed] = thread(dep, event("failed", reason="y" * 5000, problems=dep.problems))
    for message in (render_card(dep), failed):
        assert message is not None and len(message.blocks) <= MAX_BLOCKS
        for block in message.blocks:
            text = block.get("text", {}).get("text", "")
            assert len(text) <= MAX_TEXT


def test_a_passed_step_is_told_by_the_shift_that_follows_it() -> None:
    dep = deployment(State.BAKING, step_index=1)
    v = verdict((1204, 3), (10877, 31))
    passed, refused, shifted = thread(
        dep,
        event("step_passed", step=1, weight=10, verdict=v),
        event("refused", actor=SAM, action="approve", reason="not_at_gate"),
        event("shifted", step=2, weight=25, route="route payments-route"),
    )
    assert passed is None and refused is None
    assert shifted is not None and shifted.text.split("\n") == [
        "✅ Step 1 passed · canary 1,204 req, 3 × 5xx (0.25 %) · stable 10,877 req, 31 × 5xx "
        "(0.29 %) · threshold 1.0 % · alarms OK",
        "Traffic 25 % → canary (route payments-route).",
    ]
    # After an approval the gate showed the verdict: the shift says only where traffic went.
    *_, after_gate = thread(
        dep,
        event("step_passed", step=1, weight=10, verdict=v),
        event("approved", actor=SAM, step=2, weight=25),
        event("shifted", step=2, weight=25, route="route payments-route"),
    )
    assert (
        after_gate is not None
        and after_gate.text == "Traffic 25 % → canary (route payments-route)."
    )


def test_a_gate_and_the_verdict_before_it_are_one_message() -> None:
    dep = deployment(State.AWAITING_APPROVAL, step_index=0)
    v = verdict((1204, 3), (10877, 31))
    passed, gate = thread(
        dep,
        event("step_passed", step=1, weight=10, verdict=v),
        event("gate_opened", step=1, next_step=2, next_weight=25, timeout_at=NOW + 3600),
    )
    assert passed is None and gate is not None
    line, question = gate.text.split("\n")
    assert line.startswith("✅ Step 1 passed · canary 1,204 req, 3 × 5xx (0.25 %) · stable")
    assert question.startswith("✋ Approve 25 %?")
    assert [b["type"] for b in gate.blocks] == ["section", "section", "context", "actions"]


def test_a_failed_step_says_the_rollback_began_and_the_rollback_says_nothing_more() -> None:
    dep = deployment(State.ROLLING_BACK, step_index=0)
    v = verdict((812, 97), (10877, 29), outcome="fail", reason="too many 5xx")
    failed, started = thread(
        dep,
        event("step_failed", step=1, weight=10, verdict=v),
        event("rollback_started", by="canary check", reason="too many 5xx", weight=10),
    )
    assert started is None and failed is not None
    assert failed.text.split("\n")[1:] == [
        "too many 5xx",
        "↩️ Rolling back: restoring 100 % stable first.",
    ]
    # An abort has no failed step before it: its own reply, with who aborted.
    [aborted] = thread(
        dep, event("rollback_started", by="abort", reason="aborted", actor=SAM, weight=10)
    )
    assert aborted is not None and aborted.text == (
        f"↩️ Rolling back: aborted by <@{SAM}>. Restoring 100 % stable first."
    )


def test_slack_api_url_works_with_or_without_a_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    assert slack_api_url() == "http://127.0.0.1:9/api/"
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")
    assert slack_api_url() == "http://127.0.0.1:9/api/"
    monkeypatch.delenv("SLACK_API_URL")
    assert slack_api_url() == "https://slack.com/api/"


# answers to a request the engine refused ------------------------------------------------------
@pytest.mark.parametrize("refusal", list(Refusal))
def test_every_refusal_is_worded(refusal: Refusal) -> None:
    dep = deployment(
        State.AWAITING_APPROVAL,
        step_index=1,
        approvals=[Approval(step=2, actor=SAM, at=NOW)],
    )
    text = answers.refused(
        Answer(False, dep, refusal, dep_id=dep.id, step=2, detail="steps must increase")
    )
    assert text and text != "Nothing was changed."
    if refusal == Refusal.ALREADY_APPROVED:
        assert text == f"Step 2 was already approved by <@{SAM}>."
    if refusal == Refusal.BUSY:
        assert text.startswith(f"payments is busy: deployment #{dep.id} by <@{DANA}> is at 25 %")


def test_a_busy_service_whose_holder_just_finished_still_says_so() -> None:
    answer = Answer(False, None, Refusal.BUSY, dep_id="4f2a9c1e")
    assert answers.busy("payments", None, "4f2a9c1e", None) == (
        "payments is busy: deployment #4f2a9c1e is running. "
        "Abort it first with `/canary abort payments`."
    )
    assert "#4f2a9c1e is running" in answers.refused(answer)


def test_a_promotion_says_removed_only_what_the_bot_removed() -> None:
    dep = deployment(State.PROMOTED, step_index=3)
    old = {"ecs_service": "payments-v41", "virtual_node": "payments-v41"}
    [mesh] = thread(dep, event("promoted", took=60.0, checks=4, old=old))
    assert mesh is not None and "Removed payments-v41 (service, virtual node)." in mesh.text
    # ECS's own deployment keeps the service and its target groups: nothing was removed
    [ecs] = thread(dep, event("promoted", took=60.0, checks=4, old=None))
    assert ecs is not None and "Removed" not in ecs.text, ecs.text
