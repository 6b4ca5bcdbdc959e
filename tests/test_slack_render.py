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
from workers.domain.deployment import Deployment
from workers.domain.state import State
from workers.slack.card import card_status, render_card
from workers.slack.format import MAX_BLOCKS, MAX_TEXT
from workers.slack.notifier import slack_api_url
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


def test_long_texts_stay_within_block_kit_limits() -> None:
    dep = deployment(State.FAILED, problems=["x" * 5000] * 30)
    for message in (
        render_card(dep),
        render_event(dep, event("failed", reason="y" * 5000, data={"problems": dep.problems})),
    ):
        assert message is not None and len(message.blocks) <= MAX_BLOCKS
        for block in message.blocks:
            text = block.get("text", {}).get("text", "")
            assert len(text) <= MAX_TEXT


def test_step_passed_reads_like_the_mockup() -> None:
    dep = deployment(State.AWAITING_APPROVAL, step_index=0)
    message = render_event(
        dep,
        event("step_passed", step=1, weight=10, data={"verdict": verdict((1204, 3), (10877, 31))}),
    )
    assert message.text == (
        "✅ Step 1 passed · canary 1,204 req, 3 × 5xx (0.25 %) · stable 10,877 req, 31 × 5xx "
        "(0.29 %) · threshold 1.0 % · alarms OK"
    )
    assert render_event(dep, event("refused", actor=SAM, reason="no")) is None


def test_a_gate_and_the_verdict_before_it_are_one_message() -> None:
    dep = deployment(State.AWAITING_APPROVAL, step_index=0)
    v = verdict((1204, 3), (10877, 31))
    assert (
        render_event(
            dep,
            event(
                "step_passed", step=1, weight=10, data={"verdict": v, "shown_with": "gate_opened"}
            ),
        )
        is None
    )
    gate = render_event(
        dep,
        event(
            "gate_opened",
            step=1,
            weight=25,
            data={"next_step": 2, "next_weight": 25, "verdict": v, "passed_weight": 10},
        ),
    )
    assert gate is not None
    passed, question = gate.text.split("\n")
    assert passed.startswith("✅ Step 1 passed · canary 1,204 req, 3 × 5xx (0.25 %) · stable")
    assert question.startswith("✋ Approve 25 %?")
    assert [b["type"] for b in gate.blocks] == ["section", "section", "context", "actions"]
    # A gate recorded before the verdict was part of it (an upgrade mid-deployment) still reads.
    older = render_event(dep, event("gate_opened", step=1, weight=25, data={"next_step": 2}))
    assert older is not None and older.text.startswith("✋ Approve 25 %?")


def test_slack_api_url_works_with_or_without_a_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    assert slack_api_url() == "http://127.0.0.1:9/api/"
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")
    assert slack_api_url() == "http://127.0.0.1:9/api/"
    monkeypatch.delenv("SLACK_API_URL")
    assert slack_api_url() == "https://slack.com/api/"
