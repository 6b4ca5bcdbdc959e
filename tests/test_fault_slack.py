"""Slack retries, racing clicks and a Slack outage, over the real processes (sandbox.world)."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Iterator

import pytest

from sandbox.slack_user import command_body, signed_headers
from sandbox.world import CHANNEL, DANA, IMAGE, LEE, SAM, SECRET, TOKEN, World
from tests.test_e2e_slack import STARTED, running_world
from workers.domain.state import State
from workers.slack.buttons import ABORT, APPROVE

CROWD = [f"U0C{i:03d}" for i in range(50)]
SERVICES: dict[str, dict[str, object]] = {
    "retried": {},  # one slash command delivered three times
    "crowd": {},  # 50 people approve the same gate at once
    "race": {"approvers": [SAM, LEE]},  # approve and abort at the same moment
    "outage": {"gates": "auto"},  # Slack answers errors while it deploys
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running_world(tmp_path_factory, "fault-slack", SERVICES)


def start(world: World, key: str, tag: str = "v2") -> str:
    answer = world.person(DANA).ask(f"deploy {key} {IMAGE.format(key=key, tag=tag)}")
    found = STARTED.match(answer)
    assert found, answer
    return found.group(1)


def test_a_slash_command_retried_by_slack_starts_one_deployment(world: World) -> None:
    body = command_body(
        f"deploy retried {IMAGE.format(key='retried', tag='v2')}",
        user=DANA,
        channel=CHANNEL,
        response_url=world.slack.response_url(),
    )
    statuses: list[int] = []
    go = threading.Barrier(3)

    def deliver(retry: int) -> None:
        headers = signed_headers(body, secret=SECRET)
        if retry:
            headers |= {"x-slack-retry-num": [str(retry)], "x-slack-retry-reason": ["http_timeout"]}
        go.wait()
        statuses.append(world.person(DANA).post(body, headers))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200, 200, 200]
    time.sleep(1.0)
    history = world.rt.store.history_ids("retried")
    assert len(history) == 1
    card = world.wait_card(history[0])
    assert len([m for m in world.slack.channel(CHANNEL) if "retried" in m.text]) == 1
    assert world.deployment(history[0]) is not None and card is not None


def test_fifty_approvals_at_once_move_one_step(world: World) -> None:
    dep_id = start(world, "crowd")
    card = world.wait_card(dep_id)
    # Everyone clicks the message as their screen showed it: the emulator edits the live message
    # (its buttons go) as soon as the first approval is delivered.
    gate = copy.deepcopy(world.wait_gate(card))
    told: dict[str, str | None] = {}
    go = threading.Barrier(len(CROWD))

    def approve(user: str) -> None:
        go.wait()
        told[user] = world.person(user).click_and_hear(gate, APPROVE, timeout=5.0)

    threads = [threading.Thread(target=approve, args=(u,)) for u in CROWD]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(told) == len(CROWD)  # every click was answered
    winners = [u for u, said in told.items() if said is None]
    assert len(winners) == 1, told
    for user, said in told.items():
        if user not in winners:  # every loser is told why
            assert said == f"Step 2 was already approved by <@{winners[0]}>.", said
    dep = world.deployment(dep_id)
    assert dep is not None and [a.actor for a in dep.approvals] == winners
    world.wait_reply(card, lambda m: "Traffic 25 %" in m.text)  # its own reply, or the gate
    time.sleep(1.0)
    shown = [m.text for m in world.thread(card)]
    assert sum(t.count("Traffic 25 %") for t in shown) == 1
    assert not any("Traffic 50 %" in t for t in shown)
    assert world.person(DANA).ask("abort crowd") == f"Rolling back deployment {dep_id}."
    world.wait_over(dep_id)


def test_approve_and_abort_racing(world: World) -> None:
    dep_id = start(world, "race")
    card = world.wait_card(dep_id)
    gate = copy.deepcopy(world.wait_gate(card))  # as both screens showed it
    told: dict[str, str | None] = {}
    go = threading.Barrier(2)

    def click(user: str, action: str) -> None:
        go.wait()
        told[user] = world.person(user).click_and_hear(gate, action, timeout=3.0)

    threads = [
        threading.Thread(target=click, args=(SAM, APPROVE)),
        threading.Thread(target=click, args=(LEE, ABORT)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    over = world.wait_over(dep_id)
    dep = world.deployment(dep_id)
    assert dep is not None and dep.state == State.ROLLED_BACK and "Rolled back ❌" in over.text
    assert dep.ended_by == "abort" and told[LEE] is None  # an abort always goes through
    if dep.approvals:  # the approval came first: one step moved, then the abort undid it
        assert told[SAM] is None and [a.actor for a in dep.approvals] == [SAM]
    else:  # the abort came first: the approver is told why nothing happened
        heard = (told[SAM] or "").lower()
        assert "rolling back" in heard or "rolled back" in heard, told[SAM]
    assert world.weights("race") == {"race-v1": 100}


def test_slack_down_delays_messages_never_the_rollback(world: World) -> None:
    dep_id = start(world, "outage", tag="v3")  # 20 % 5xx: rolls back by itself
    card = world.wait_card(dep_id)
    world.slack.fail(500, seconds=6)  # Slack answers 500s for a while
    began = time.monotonic()
    while (dep := world.deployment(dep_id)) is not None and dep.active:
        assert time.monotonic() - began < 30, "the rollback waited for Slack"
        time.sleep(0.05)
    rolled_back_after = time.monotonic() - began
    if rolled_back_after < 5.5:  # Slack was still down: the thread cannot know yet
        assert not any("Rolled back" in m.text for m in world.thread(card))
    assert dep is not None and dep.state == State.ROLLED_BACK
    assert world.weights("outage") == {"outage-v1": 100}
    world.slack.fail(429, seconds=3, retry_after=1)  # then rate-limits for a while
    time.sleep(3.5)
    world.slack.heal()
    over = world.wait_over(dep_id, timeout=90)
    shown = [m.text for m in world.thread(over)]
    expected = [
        r"Canary provisioned",
        r"Canary ready",
        r"Traffic 10 %",
        r"❌ Step 1 failed.*\n.*\n↩️ Rolling back",
        r"Traffic 100 % → outage-v1",
        r"Rolled back ❌",
    ]
    assert len(shown) == len(expected), shown  # all arrived, once each
    for text, pattern in zip(shown, expected, strict=True):
        assert re.match(pattern, text), (text, pattern)
    assert rolled_back_after < 20 and card is not None


def test_no_secret_reaches_a_log_or_slack(world: World) -> None:
    logs = "".join(p.output() for p in world.processes)
    assert logs, "no logs captured"
    assert TOKEN not in logs and SECRET not in logs
    posted = " ".join(str(c.params) for c in world.slack.calls)
    assert SECRET not in posted
