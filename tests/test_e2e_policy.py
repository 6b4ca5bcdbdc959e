"""The catalogue is the law, end to end: `python -m bot` over HTTP, `python -m workers`, moto.

People type signed slash commands; the tests read the answers, the channel and what AWS holds.
Options that loosen the catalogue's plan and oversized durations are refused with nothing
created; a foreign image is refused (by the bot when the service lists its `images`, else by the
worker right after discovering the stable) with nothing created in AWS; an override the
catalogue allows waits for an approver to accept the plan before any traffic moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.slack_user import SlackUser
from sandbox.world import CHANNEL, DANA, IMAGE, SAM, World
from tests.test_e2e_slack import STARTED, running_world
from workers.slack.buttons import APPROVE

ECR = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
SERVICES: dict[str, dict[str, object]] = {
    "payments": {},  # the defaults: manual gates after 10, 25, 50; images from the stable's repo
    "web": {"images": ["123456789012.dkr.ecr.*.amazonaws.com/web"]},
    "orders": {"allow_overrides": ["steps", "gates"], "approvers": [SAM]},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running_world(tmp_path_factory, "e2e-policy", SERVICES)


@pytest.fixture(scope="module")
def dana(world: World) -> SlackUser:
    return world.person(DANA)


def aws_now(world: World) -> dict[str, Any]:
    """What AWS holds that a deployment would create: task definitions, services, targets."""
    return {
        "task definitions": world.clients.ecs.list_task_definitions()["taskDefinitionArns"],
        "services": world.ecs_services(),
        "targets": world.traffic_targets(),
    }


def test_loosening_options_and_huge_durations_are_refused_with_nothing_created(
    world: World, dana: SlackUser
) -> None:
    before = aws_now(world)
    image = IMAGE.format(key="payments", tag="v2")
    for text, answer in [
        (
            "steps=100",
            "steps=100 would skip the gates payments requires (manual after 10, 25, 50). "
            "Allowed: more steps, a longer bake, stricter gates.",
        ),
        (
            "gates=auto bake=1s",
            "gates=auto would skip the gates payments requires (manual after 10, 25, 50); "
            "bake=1s would shorten the bake payments requires (3s). "
            "Allowed: more steps, a longer bake, stricter gates.",
        ),
        ("bake=3000000d", '"bake=3000000d": 3000000d is too long: at most 30d'),
        ("bake=6m", '"bake=6m": bake must be at most the gate_timeout of payments (5m)'),
    ]:
        assert dana.ask(f"deploy payments {image} {text}") == answer
    assert world.rt.store.active_ids() == [] and world.rt.store.history_ids("payments", 5) == []
    assert world.slack.channel(CHANNEL) == []
    assert aws_now(world) == before
    assert dana.ask("status") == "Nothing is deploying right now."


def test_a_listed_repository_pattern_refuses_others_at_command_time(
    world: World, dana: SlackUser
) -> None:
    before = aws_now(world)
    assert dana.ask("deploy web docker.io/someone/web:1") == (
        "docker.io/someone/web:1 is not an image web deploys. "
        "Allowed: 123456789012.dkr.ecr.*.amazonaws.com/web (tag or digest)."
    )
    assert world.rt.store.history_ids("web", 5) == [] and aws_now(world) == before


def test_a_foreign_image_ends_after_discovery_with_nothing_created(
    world: World, dana: SlackUser
) -> None:
    before = aws_now(world)
    foreign = "docker.io/someone/payments:1"
    # Without `images`, only the worker knows the stable's repository: the command is accepted.
    started = STARTED.match(dana.ask(f"deploy payments {foreign}"))
    assert started, "the deploy was not started"
    dep_id = started.group(1)
    card = world.wait_over(dep_id)
    assert "Rolled back ❌" in card.text
    thread = [m.text for m in world.thread(card)]
    why = f"{foreign} is not an image payments deploys. Allowed: {ECR}/payments (tag or digest)"
    assert thread[0] == f"↩️ Stopping: {why}. No traffic had moved to the canary."
    assert thread[-1].startswith("Rolled back ❌ Nothing had been created in AWS.")
    assert world.dep(dep_id).ended_by == "image policy"
    assert aws_now(world) == before
    assert world.weights("payments") == {"payments-v1": 100}


def test_an_allowed_loosening_waits_for_an_approver_to_accept_the_plan(
    world: World, dana: SlackUser
) -> None:
    answer = dana.ask(
        f"deploy orders {IMAGE.format(key='orders', tag='v2')} steps=50,100 gates=auto"
    )
    started = STARTED.match(answer)
    assert started, answer
    assert (
        "Plan: steps 50, 100 · bake 3s · gates auto. Looser than the catalogue's (steps, gates): "
        "an approver accepts it before any traffic moves."
    ) in answer
    dep_id = started.group(1)
    card = world.wait_card(dep_id)
    gate = world.wait_gate(card)
    shown = gate.shown()
    assert "✋ Approve 50 %?  <@U0SAM>" in shown
    assert (
        "Plan in force, looser than the catalogue's (steps, gates): "
        "steps 50, 100 · bake 3s · gates auto. Step 1 of 2: 50 % of traffic to the canary."
    ) in shown
    assert "Steps 50 · 100 · bake 3s · gates auto" in world.card(dep_id).shown()  # type: ignore[union-attr]
    assert world.weights("orders") == {"orders-v1": 100}  # nothing moved yet

    # the requester may not accept their own plan; the approver does, and it runs as planned
    assert dana.click_and_hear(gate, APPROVE) is not None
    assert world.weights("orders") == {"orders-v1": 100}
    assert world.person(SAM).click_and_hear(gate, APPROVE, timeout=0.3) is None
    card = world.wait_over(dep_id)
    assert "Done ✅" in card.text
    assert world.weights("orders") == {f"orders-{dep_id}": 100}
    assert [a.step for a in world.dep(dep_id).approvals] == [1]
