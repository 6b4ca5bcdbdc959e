"""The Slack notifier: the thread as people read it, the card kept current, Slack outages."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import pytest

from tests.bot_harness import (
    DANA,
    IMAGE,
    PAYMENTS_CHANNEL,
    SAM,
    SECRET,
    TOKEN,
    Slack,
    advance,
    event,
    make_runtime,
    notifier,
    to_gate,
    verdict,
)
from tests.slack_mock import MockSlack
from workers import api
from workers.domain.deployment import Deployment
from workers.domain.events import Cause
from workers.domain.outcomes import Refusal
from workers.domain.state import State
from workers.engine.machine import Engine
from workers.engine.outbox import deliver_pending
from workers.runtime.context import Runtime
from workers.slack.card import TEAR_DOWN_SETTLE
from workers.slack.notifier import SETTLE


# the thread ------------------------------------------------------------------------------------
def started(rt: Runtime) -> str:
    answer = api.start_deployment(
        "payments", IMAGE, requester=DANA, channel=PAYMENTS_CHANNEL, rt=rt
    )
    assert answer.ok
    return answer.deployment.id


def test_a_promoted_deployment_reads_like_the_mockup(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    deliver_pending(rt, notifier(mock), dep_id)
    assert api.decide_gate(dep_id, 2, approve=True, actor=SAM, rt=rt).ok

    def full(d: Deployment) -> None:
        d.step_index = 3

    advance(
        rt,
        dep_id,
        State.POST_PROMOTION,
        [event("shifted", weight=100, route="route payments-route", post_promotion_bake=900)],
        mutate=full,
    )
    advance(
        rt,
        dep_id,
        State.PROMOTED,
        [
            event(
                "promoted",
                took=44 * 60,
                approvers=[SAM],
                checks=3,
                old={"virtual_node": "payments-v41", "ecs_service": "payments-v41"},
            )
        ],
        mutate=lambda d: setattr(d, "finished_at", time.time()),
    )
    deliver_pending(rt, notifier(mock), dep_id)

    [card] = mock.channel(PAYMENTS_CHANNEL)
    assert "Done ✅" in card.shown() and "[Open thread]" in card.shown()
    thread = [m.shown() for m in mock.thread(PAYMENTS_CHANNEL, card.ts)]
    assert thread[0] == (
        f"Canary provisioned: task definition payments:58, virtual node payments-{dep_id}, "
        f"ECS service payments-{dep_id} (2 tasks)."
    )
    assert thread[1] == "Canary ready: 2/2 tasks running."
    assert thread[2] == "Traffic 10 % → canary (route payments-route)."
    # The step's verdict and its gate are one message: after the click it says who approved.
    passed, _, gate = thread[3].partition("\n")
    assert passed.startswith("✅ Step 1 passed · canary 1,204 req")
    assert gate.startswith(f"✋ Step 2 (25 %) approved by <@{SAM}> at <!date^")
    assert "[Approve" not in thread[3]
    assert thread[4].startswith("Traffic 100 % → canary (route payments-route). Old version kept")
    assert "Promoted at" in thread[4] and "[Roll back]" not in thread[4]
    assert thread[5] == (
        "Promoted ✅ payments:v42 is stable. Removed payments-v41 (service, virtual node). "
        f"Took 44m · approved by <@{SAM}> · 3 checks passed"
    )
    assert len(thread) == 6


def shifted_to(rt: Runtime, dep_id: str, step_index: int, weight: int, state: State) -> None:
    """The engine's shift to step `step_index` (0-based) at `weight`, as its event says."""

    def at(d: Deployment) -> None:
        d.step_index = step_index

    event_ = event("shifted", weight=weight, route="route payments-route")
    advance(rt, dep_id, state, [event_], mutate=at)


def test_an_approval_and_the_shift_it_starts_are_one_edit_of_the_gate(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    note = notifier(mock)
    deliver_pending(rt, note, dep_id)
    card_ts = rt.store.notes(dep_id)["card_ts"]
    posts, updates = len(mock.api_calls("chat.postMessage")), len(mock.api_calls("chat.update"))
    assert api.decide_gate(dep_id, 2, approve=True, actor=SAM, rt=rt).ok

    # The shift is another job, a moment later: the approval waits for it (at most SETTLE).
    rt.scheduler.jobs.clear()
    deliver_pending(rt, note, dep_id)
    assert rt.scheduler.notifies and 0 < rt.scheduler.notifies[-1].delay <= SETTLE
    assert mock.thread(PAYMENTS_CHANNEL, card_ts)[-1].buttons()  # not closed yet
    assert len(mock.api_calls("chat.update")) == updates

    shifted_to(rt, dep_id, 1, 25, State.BAKING)
    deliver_pending(rt, note, dep_id)
    thread = mock.thread(PAYMENTS_CHANNEL, card_ts)
    gate = thread[-1]
    assert gate.buttons() == []
    assert re.search(
        rf"^✋ Step 2 \(25 %\) approved by <@{SAM}> at <!date\^[^>]+>\. "
        r"Traffic 25 % → canary \(route payments-route\)\.$",
        gate.shown(),
        re.M,
    ), gate.shown()
    assert len(mock.api_calls("chat.postMessage")) == posts  # no "Traffic 25 %" reply
    # One edit of the gate and one of the card (now baking 25 %).
    assert len(mock.api_calls("chat.update")) == updates + 2
    assert "Baking 25 %" in mock.channel(PAYMENTS_CHANNEL)[0].shown()
    assert rt.store.undelivered_ids() == []
    deliver_pending(rt, note, dep_id)
    assert len(mock.thread(PAYMENTS_CHANNEL, card_ts)) == len(thread)  # and nothing later


def test_a_shift_to_100_keeps_its_own_message_with_roll_back(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)

    def last_gate(d: Deployment) -> None:
        d.step_index = 2  # at 50 %, the gate of step 4 (100 %) open

    advance(rt, dep_id, State.AWAITING_APPROVAL, mutate=last_gate)
    note = notifier(mock)
    deliver_pending(rt, note, dep_id)
    rt.store.set_notes(dep_id, {"gate_open": "4"})
    assert api.decide_gate(dep_id, 4, approve=True, actor=SAM, rt=rt).ok

    shifted_to(rt, dep_id, 3, 100, State.POST_PROMOTION)
    deliver_pending(rt, note, dep_id)
    last = mock.thread(PAYMENTS_CHANNEL, rt.store.notes(dep_id)["card_ts"])[-1]
    assert last.shown().startswith("Traffic 100 % → canary (route payments-route).")
    assert "[Roll back]" in last.shown()


def test_every_message_is_threaded_under_the_card(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    deliver_pending(rt, notifier(mock), dep_id)
    [card] = mock.channel(PAYMENTS_CHANNEL)
    posts = mock.api_calls("chat.postMessage")
    assert posts[0].params.get("thread_ts") is None
    assert all(p.params["thread_ts"] == card.ts for p in posts[1:])
    notes = rt.store.notes(dep_id)
    assert notes["card_ts"] == card.ts and notes["thread_url"].endswith(card.ts.replace(".", ""))


def test_refresh_updates_the_card_only_when_it_changed(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    note = notifier(mock)
    deliver_pending(rt, note, dep_id)
    updates = len(mock.api_calls("chat.update"))
    deliver_pending(rt, note, dep_id)
    api.record_refusal(dep_id, actor=SAM, action="approve", refusal=Refusal.NOT_AT_GATE, rt=rt)
    deliver_pending(rt, note, dep_id)
    assert len(mock.api_calls("chat.update")) == updates
    assert len(mock.thread(PAYMENTS_CHANNEL, rt.store.notes(dep_id)["card_ts"])) == 0
    advance(rt, dep_id, State.WAITING_READY, [event("provisioned", canary={}, desired=2)])
    deliver_pending(rt, note, dep_id)
    assert len(mock.api_calls("chat.update")) == updates + 1
    assert "Waiting for tasks" in mock.channel(PAYMENTS_CHANNEL)[0].shown()


def test_checks_alone_never_update_the_card(mock: MockSlack) -> None:
    """A 5-minute bake checked every minute, or a gate waiting for hours, costs no card update
    per check: the card changes with the state, step or weight only (chat.update is tier 3)."""
    rt = make_runtime()
    dep_id = started(rt)
    note = notifier(mock)

    def checked(n: int) -> Callable[[Deployment], None]:
        def mutate(d: Deployment) -> None:
            d.checks += 1
            d.last_verdict = verdict((n, 0), (n, 0), "baking", f"baking, no breach so far: {n} req")

        return mutate

    advance(rt, dep_id, State.BAKING, [event("shifted", weight=10, route="route payments-route")])
    deliver_pending(rt, note, dep_id)
    updates = len(mock.api_calls("chat.update"))
    for state in (State.BAKING, State.AWAITING_APPROVAL):
        advance(rt, dep_id, state, mutate=checked(0))
        deliver_pending(rt, note, dep_id)
        updates = len(mock.api_calls("chat.update"))
        for n in range(1, 6):
            advance(rt, dep_id, state, mutate=checked(n * 100))
            deliver_pending(rt, note, dep_id)
        assert len(mock.api_calls("chat.update")) == updates, state
    assert "Waiting for approval" in mock.channel(PAYMENTS_CHANNEL)[0].shown()


def at_full_weight(rt: Runtime, dep_id: str) -> None:
    """The shift to 100 %: the post-promotion bake."""

    def full(d: Deployment) -> None:
        d.step_index = 3

    shifted = event("shifted", weight=100, route="route payments-route", post_promotion_bake=900)
    advance(rt, dep_id, State.POST_PROMOTION, [shifted], mutate=full)


def bake_passed(rt: Runtime, dep_id: str) -> None:
    """The post-promotion bake passed: the engine tears the old version down."""
    bake = verdict((5000, 2), (50000, 30))
    advance(rt, dep_id, State.TEARING_DOWN, [event("step_passed", weight=100, verdict=bake)])


def test_a_tear_down_waiting_for_aws_to_drain_costs_no_slack_call(mock: MockSlack) -> None:
    """The post-promotion bake's verdict is told by "Promoted" (the next message), and the card
    goes from the bake straight to "Done": while AWS drains the old version's tasks (the engine
    looks again every few seconds, adding no event), nothing is posted nor edited."""
    rt = make_runtime()
    dep_id = started(rt)
    note = notifier(mock)
    deliver_pending(rt, note, dep_id)
    at_full_weight(rt, dep_id)
    deliver_pending(rt, note, dep_id)
    card_ts = rt.store.notes(dep_id)["card_ts"]
    calls = len(mock.calls)

    bake_passed(rt, dep_id)
    rt.scheduler.jobs.clear()
    deliver_pending(rt, note, dep_id)
    assert mock.calls[calls:] == []
    # The card looks again once the tear-down has lasted long enough to be worth telling.
    assert rt.scheduler.notifies and 0 < rt.scheduler.notifies[-1].delay <= TEAR_DOWN_SETTLE
    advance(rt, dep_id, State.TEARING_DOWN)  # a look at the drain: no event
    deliver_pending(rt, note, dep_id)
    assert mock.calls[calls:] == []

    promoted = event("promoted", took=600, approvers=[], checks=20, old={"ecs_service": "v41"})
    advance(rt, dep_id, State.PROMOTED, [promoted], mutate=lambda d: setattr(d, "finished_at", 1))
    deliver_pending(rt, note, dep_id)
    # "Promoted" with the bake's verdict, the 100 % message losing Roll back, the card "Done".
    assert sorted(c.method for c in mock.calls[calls:]) == [
        "chat.postMessage",
        "chat.update",
        "chat.update",
    ]
    last = mock.thread(PAYMENTS_CHANNEL, card_ts)[-1].shown()
    assert last.startswith("Promoted ✅") and "✅ Post-promotion bake passed" in last
    assert "Done ✅" in mock.channel(PAYMENTS_CHANNEL)[0].shown()


def test_a_long_tear_down_shows_on_the_card(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    deliver_pending(rt, notifier(mock), dep_id)
    at_full_weight(rt, dep_id)
    bake_passed(rt, dep_id)
    later = notifier(mock, clock=lambda: time.time() + TEAR_DOWN_SETTLE)
    deliver_pending(rt, later, dep_id)
    assert "Promoted, removing the old version" in mock.channel(PAYMENTS_CHANNEL)[0].shown()


def test_rolled_back_thread_says_why_and_by_whom(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    failed = verdict((812, 97), (10877, 29), outcome="fail")
    api.abort(dep_id, actor=DANA, rt=rt)
    advance(
        rt,
        dep_id,
        State.CLEANING_UP,
        [event("route_restored", seconds=0.4, stable="payments-v41")],
        mutate=lambda d: setattr(d, "last_verdict", failed),
    )
    advance(
        rt,
        dep_id,
        State.ROLLED_BACK,
        [
            event(
                "rolled_back",
                by="abort",
                reason="aborted",
                actor=DANA,
                kept=False,
                took=720,
                canary_existed=True,
            )
        ],
        mutate=lambda d: setattr(d, "finished_at", time.time()),
    )
    deliver_pending(rt, notifier(mock), dep_id)
    [card] = mock.channel(PAYMENTS_CHANNEL)
    assert f"Rolled back ❌ (aborted by <@{DANA}>)" in card.shown()
    thread = [m.shown() for m in mock.thread(PAYMENTS_CHANNEL, card.ts)]
    # Aborted at the gate: the gate, closed, says so and that the rollback began (no reply).
    assert re.fullmatch(
        rf"✋ Step 2 \(25 %\) not approved: aborted by <@{DANA}> at <!date\^[^>]+>\. "
        r"↩️ Rolling back: restoring 100 % stable first\.",
        thread[-3].split("\n")[-1],
    ), thread[-3]
    assert not any(t.startswith("↩️") for t in thread)
    assert thread[-2] == "Traffic 100 % → payments-v41 in 0.4 s."
    assert thread[-1] == (  # no "Why: aborted by @dana" repeating it
        f"Rolled back ❌ Canary scaled to 0 and removed. Requested by <@{DANA}> · "
        f"aborted by <@{DANA}> · took 12m"
    )


def test_a_gate_that_timed_out_says_why_the_rollback_began(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    note = notifier(mock)
    deliver_pending(rt, note, dep_id)
    why = "nobody approved step 2 within 24h"
    assert Engine(rt).request_rollback(dep_id, reason=why, actor=None, by=Cause.GATE_TIMEOUT)
    posted = len(mock.api_calls("chat.postMessage"))
    deliver_pending(rt, note, dep_id)
    assert len(mock.api_calls("chat.postMessage")) == posted
    gate = mock.thread(PAYMENTS_CHANNEL, rt.store.notes(dep_id)["card_ts"])[-1]
    assert gate.buttons() == []
    assert re.search(
        r"✋ Step 2 \(25 %\) not approved: gate timed out at <!date\^[^>]+>\. "
        rf"↩️ Rolling back: {why}\. Restoring 100 % stable first\.$",
        gate.shown(),
    ), gate.shown()


def test_a_failed_check_and_its_rollback_are_told_once(mock: MockSlack) -> None:
    """As the mockup: the failure (figures, why, rolling back), the route, the end."""
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    deliver_pending(rt, notifier(mock), dep_id)
    why = "canary 812 req, 97 × 5xx (11.9 %) > 1.0 % with 99 % confidence (lower bound 9.4 %)"
    failed = verdict((812, 97), (10877, 29), outcome="fail", reason=why)
    step_failed = event("step_failed", step=1, weight=10, verdict=failed)
    assert Engine(rt).request_rollback(
        dep_id, reason=why, actor=None, by=Cause.CANARY_CHECK, events=[step_failed], verdict=failed
    )
    advance(
        rt,
        dep_id,
        State.CLEANING_UP,
        [event("route_restored", seconds=0.4, stable="payments-v41")],
    )
    advance(
        rt,
        dep_id,
        State.ROLLED_BACK,
        [
            event(
                "rolled_back",
                by="canary check",
                reason=why,
                kept=False,
                took=720,
                canary_existed=True,
            )
        ],
        mutate=lambda d: setattr(d, "finished_at", time.time()),
    )
    posted = len(mock.api_calls("chat.postMessage"))
    deliver_pending(rt, notifier(mock), dep_id)
    assert len(mock.api_calls("chat.postMessage")) == posted + 3
    [card] = mock.channel(PAYMENTS_CHANNEL)
    thread = [m.shown() for m in mock.thread(PAYMENTS_CHANNEL, card.ts)]
    assert thread[-3].split("\n") == [
        "❌ Step 1 failed at 10 % · canary 812 req, 97 × 5xx (11.9 %) · stable 10,877 req, "
        "29 × 5xx (0.27 %) · threshold 1.0 % · alarms OK",
        why,
        "↩️ Rolling back: restoring 100 % stable first.",
    ]
    assert thread[-2] == "Traffic 100 % → payments-v41 in 0.4 s."
    assert thread[-1] == (
        f"Rolled back ❌ Canary scaled to 0 and removed. Requested by <@{DANA}> · "
        "stopped by the canary check at step 1 (10 %) · took 12m"
    )
    assert sum(why in t for t in thread) == 1  # the reason is told once in the thread


# Slack outages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 429])
def test_a_slack_outage_delays_delivery_and_posts_nothing_twice(
    mock: MockSlack, status: int
) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    to_gate(rt, dep_id)
    note = notifier(mock)
    deliver_pending(rt, note, dep_id)  # card and thread so far
    posted = len(mock.api_calls("chat.postMessage"))
    assert api.decide_gate(dep_id, 2, approve=True, actor=SAM, rt=rt).ok
    advance(rt, dep_id, State.BAKING, [event("shifted", weight=25, route="route r")])
    too_few = verdict((3, 0), (30, 0), "not_enough_data", "too few")
    holding = event("holding", weight=25, verdict=too_few, deadline=time.time() + 600, interval=60)
    advance(rt, dep_id, State.HOLDING, [holding])

    # Slack fails while the gate is closed (with the shift) and the hold is told.
    mock.fail(status, times=4, retry_after=30 if status == 429 else None)
    rt.scheduler.jobs.clear()
    delivered = deliver_pending(rt, note, dep_id)
    assert delivered < 3
    assert rt.scheduler.notifies and rt.scheduler.notifies[-1].delay > 0  # tried again later
    assert rt.store.notes(dep_id)["delivery_failures"] == "1"

    mock.heal()
    if status == 429:  # nothing is delivered before the Retry-After is over...
        assert deliver_pending(rt, note, dep_id) == 0
        assert 29 < rt.scheduler.notifies[-1].delay <= 30  # looks again when the wait ends
        later = time.time() + 31
        rt.clock = lambda: later  # ...then the scheduler runs the retry
    deliver_pending(rt, note, dep_id)
    deliver_pending(rt, note, dep_id)
    card_ts = rt.store.notes(dep_id)["card_ts"]
    texts = [m.text for m in mock.thread(PAYMENTS_CHANNEL, card_ts)]
    assert len(texts) == len(set(texts))
    assert texts[-2].endswith("Traffic 25 % → canary (route r).")  # the gate, closed
    assert texts[-1].startswith("⏳ Holding at 25 %: too few.")
    assert len(mock.api_calls("chat.postMessage")) == posted + 1
    assert rt.store.undelivered_ids() == []


def test_a_post_that_succeeded_is_not_repeated_when_a_later_call_fails(mock: MockSlack) -> None:
    rt = make_runtime()
    dep_id = started(rt)
    note = notifier(mock)
    # The card is posted, then chat.getPermalink fails: the retry must not post a second card.
    original = note.client.chat_getPermalink
    calls = {"n": 0}

    def flaky(**kwargs: object):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("network went away")
        return original(**kwargs)

    note.client.chat_getPermalink = flaky  # type: ignore[method-assign]
    assert deliver_pending(rt, note, dep_id) == 0
    assert deliver_pending(rt, note, dep_id) == 1
    assert len(mock.channel(PAYMENTS_CHANNEL)) == 1
    assert rt.store.notes(dep_id)["thread_url"]


# secrets ---------------------------------------------------------------------------------------
def test_secrets_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture, slack: Slack, rt: Runtime, mock: MockSlack
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.answer(f"deploy payments {IMAGE}")
    dep = api.active_deployment("payments", rt=rt)
    slack.command("deploy payments x", secret="forged")  # a 401, logged by Bolt
    mock.fail(500, times=2)
    deliver_pending(rt, notifier(mock), dep.id)  # a failure, logged with its exception
    mock.heal()
    deliver_pending(rt, notifier(mock), dep.id)
    to_gate(rt, dep.id)
    deliver_pending(rt, notifier(mock), dep.id)
    slack.click_and_wait("canary_approve", f"{dep.id}:2", user=DANA)
    assert TOKEN in mock.tokens_seen  # the token was used...
    assert caplog.records
    for secret in (TOKEN, SECRET):
        assert secret not in caplog.text  # ...and never logged
