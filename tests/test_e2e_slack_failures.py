"""Slack refusing for good, over the real processes (tests.stack: Redis, moto, `python -m workers`,
the strict Slack emulator): a deleted card is posted anew and the rollout's later messages follow
in order; a channel the bot was never in, or was removed from, makes it tell the requester once
in a direct message and blocks nothing. The rollouts run side by side, with `gates: auto`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.slack_emulator import Posted
from sandbox.world import CHANNEL, DANA, IMAGE
from tests.stack import World, start_stack
from tests.test_e2e_slack import _redis_url
from workers import api
from workers.domain.state import State

NEVER_INVITED, KICKED = "C0NEVERIN", "C0KICKED"
SERVICES: dict[str, dict[str, object]] = {
    "deleted": {"gates": "auto"},  # its card is deleted by a person mid-rollout
    # Started through the engine's API into a channel the bot was never invited to: `/canary
    # deploy` refuses that up front (tests/test_e2e_slack.py), so this stands for a channel the
    # bot leaves between the bot's check and the card -- the outbox must still cope.
    "uninvited": {"gates": "auto"},
    "kicked": {"gates": "auto"},  # the bot is removed from its channel mid-rollout
}
#: What an auto-gated promotion shows, in order (a passed step rides on what follows it).
PROMOTION = [
    r"Canary provisioned",
    r"Canary ready",
    r"Traffic 10 %",
    r"✅ Step 1 passed.*\nTraffic 25 %",
    r"✅ Step 2 passed.*\nTraffic 50 %",
    r"✅ Step 3 passed.*\nTraffic 100 %",
    r"Promoted ✅",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = start_stack(Path(tmp_path_factory.mktemp("e2e-slack-failures")), _redis_url(), SERVICES)
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def ids(world: World) -> dict[str, str]:
    world.slack.invite(KICKED)
    channels = {"deleted": CHANNEL, "uninvited": NEVER_INVITED, "kicked": KICKED}
    started: dict[str, str] = {}
    for key, channel in channels.items():
        answer = api.start_deployment(
            key, IMAGE.format(key=key, tag="v2"), requester=DANA, channel=channel, rt=world.rt
        )
        assert answer.ok and answer.deployment is not None, answer
        started[key] = answer.deployment.id
    # Mid-rollout (each bakes 3 steps of 3 s yet): a person deletes one card, and someone
    # removes the bot from the other channel.
    deleted = world.wait_card(started["deleted"])
    kicked = _card(world, started["kicked"], KICKED)
    for card in (deleted, kicked):
        world.wait_reply(card, lambda m: m.text.startswith("Traffic 10 %"))
    world.slack.delete_as_user(CHANNEL, deleted.ts)
    world.slack.remove_bot(KICKED)
    return started


def texts(messages: list[Posted]) -> list[str]:
    return [m.text for m in messages]


def wait_delivered(world: World, dep_id: str, timeout: float = 60.0) -> None:
    """Until the deployment is over and every event of its log went through the outbox."""
    world.wait(dep_id, lambda d: not d.active, timeout)
    deadline = time.monotonic() + timeout
    while dep_id in world.rt.store.undelivered_ids():
        assert time.monotonic() < deadline, f"{dep_id}'s outbox is stuck\n{world.logs(3000)}"
        time.sleep(0.1)


def test_a_deleted_card_is_posted_anew_and_later_messages_follow_in_order(
    world: World, ids: dict[str, str]
) -> None:
    dep_id = ids["deleted"]
    [first] = [m for m in world.slack.deleted.values() if f"#{dep_id}:" in m.text]
    wait_delivered(world, dep_id)
    assert world.dep(dep_id).state == State.PROMOTED
    again = world.wait_over(dep_id)
    assert again.ts != first.ts and [m.ts for m in world.slack.channel(CHANNEL)] == [again.ts]
    old, new = texts(world.thread(first)), texts(world.thread(again))
    assert new[0].startswith("↻ This deployment's card was deleted")
    assert sum("card was deleted" in t for t in old + new) == 1  # said once
    shown = old + new[1:]
    assert len(shown) == len(PROMOTION), "\n".join(shown)  # every message, once, in order
    for text, pattern in zip(shown, PROMOTION, strict=True):
        assert re.match(pattern, text), (text, pattern)
    assert re.match(PROMOTION[-1], new[-1])  # the end is told under the card people now see


def test_a_channel_the_bot_was_never_in_gets_one_dm_and_blocks_nothing(
    world: World, ids: dict[str, str]
) -> None:
    dep_id = ids["uninvited"]
    wait_delivered(world, dep_id)
    assert world.dep(dep_id).state == State.PROMOTED  # unseen, but never held up
    assert world.slack.channel(NEVER_INVITED) == []
    dms = [m for m in world.slack.dms(DANA) if f"#{dep_id}" in m.text]
    assert len(dms) == 1, texts(dms)
    assert f"I can't post in <#{NEVER_INVITED}> (not_in_channel)" in dms[0].text
    assert "/canary status uninvited" in dms[0].text


def test_a_bot_removed_from_its_channel_mid_rollout_tells_the_requester_once(
    world: World, ids: dict[str, str]
) -> None:
    dep_id = ids["kicked"]
    [card] = world.slack.channel(KICKED)
    wait_delivered(world, dep_id)
    assert world.dep(dep_id).state == State.PROMOTED
    dms = [m for m in world.slack.dms(DANA) if f"#{dep_id}" in m.text]
    assert len(dms) == 1, texts(dms)
    assert "(not_in_channel)" in dms[0].text
    shown = texts(world.thread(card))
    assert not any(t.startswith("Promoted") for t in shown)  # it could not be told there
    # the whole of every log: under load moto's request lines push a tail past the error
    errors = "\n".join(p.output() for p in world.processes)
    assert "its thread is unreachable" in errors


def _card(world: World, dep_id: str, channel: str) -> Posted:
    return world.slack.wait_for(lambda: world.card(dep_id, channel), 15.0)
