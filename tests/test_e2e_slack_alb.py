"""End to end through Slack on the ALB backend: the same real processes as tests/test_e2e_slack.py.

Two services sit behind one (moto) load balancer, each with its own listener rule forwarding to
its `<key>-v1` target group (sandbox.seed_alb). People type signed slash commands and click the
buttons in the thread; the tests read the thread and the weights of each rule's forward action,
by target-group name. Both deployments start at once and run side by side.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sandbox.slack_user import SlackUser
from sandbox.world import DANA, IMAGE, LEE, SAM, World
from tests.test_e2e_slack import STARTED, assert_reads, running_world
from workers.slack.buttons import APPROVE

SERVICES: dict[str, dict[str, object]] = {
    "checkout": {"router": "alb", "approvers": [SAM, LEE]},  # promoted through clicked gates
    "basket": {"router": "alb"},  # 20 % 5xx: rolled back by itself
}
TAGS = {"checkout": "v2", "basket": "v3"}
#: How the thread names an ALB rule: "listener rule <load balancer>/<rule id>".
RULE = r"\(listener rule canary-sandbox/[0-9a-f]+\)"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from running_world(tmp_path_factory, "e2e-slack-alb", SERVICES)


@pytest.fixture(scope="module")
def ids(world: World) -> dict[str, str]:
    """Both deployments, started at once by @dana typing /canary deploy."""
    dana: SlackUser = world.person(DANA)
    started: dict[str, str] = {}
    for key, tag in TAGS.items():
        answer = dana.ask(f"deploy {key} {IMAGE.format(key=key, tag=tag)}")
        found = STARTED.match(answer)
        assert found, answer
        started[key] = found.group(1)
    return started


def test_the_world_seeds_each_alb_service_behind_its_own_rule(world: World) -> None:
    assert set(world.rules) == set(SERVICES)
    assert len(set(world.rules.values())) == len(SERVICES)
    for key in SERVICES:
        assert world.is_alb(key)
        assert world.weights(key) == {f"{key}-v1": 100}


def test_healthy_canary_is_promoted_on_the_alb_through_gates_clicked_in_the_thread(
    world: World, ids: dict[str, str]
) -> None:
    dep_id, sam = ids["checkout"], world.person(SAM)
    canary = f"checkout-{dep_id}"
    card = world.wait_card(dep_id)
    previous = None
    for weight, before in ((25, 10), (50, 25), (100, 50)):
        gate = world.wait_gate(card, after=previous)
        # One message: the verdict of the step just passed, then the question.
        assert re.match(rf"✅ Step \d passed · .*\n✋ Approve {weight} %\?", gate.text)
        # While the gate waits, the rule holds the previous step's split.
        assert world.weights("checkout") == {"checkout-v1": 100 - before, canary: before}
        assert sam.click_and_hear(gate, APPROVE, timeout=0.3) is None
        previous = gate.ts
    card = world.wait_over(dep_id)

    assert "Done ✅" in card.text, world.logs()
    passed = r"✅ Step {} passed · canary [\d,]+ req, [\d,]+ × 5xx"
    approved = r"✋ Step {} \({} %\) approved by <@U0SAM> at "
    shifted = r".*\. Traffic {} % → canary " + RULE + r"\.$"
    assert_reads(
        world.thread(card),
        [
            r"Canary provisioned: task definition checkout:\d+, target group checkout-\w+, "
            r"ECS service checkout-\w+ \(2 tasks\)\.",
            r"Canary ready: 2/2 tasks running\.",
            rf"Traffic 10 % → canary {RULE}\.",
            passed.format(1) + r".*\n" + approved.format(2, 25) + shifted.format(25),
            passed.format(2) + r".*\n" + approved.format(3, 50) + shifted.format(50),
            passed.format(3) + r".*\n" + approved.format(4, 100) + r".*\.$",
            rf"Traffic 100 % → canary {RULE}\. Old version kept running for 3s\. Promoted at ",
            r"Promoted ✅ checkout:v2 is stable\. "
            r"Removed service checkout, target group checkout-v1\. "
            r"Took \d+s · approved by <@U0SAM> · \d+ checks passed\n"
            r"✅ Post-promotion bake passed · canary [\d,]+ req",
        ],
    )
    assert world.weights("checkout") == {canary: 100}
    assert "checkout-v1" not in world.target_groups()
    assert "checkout" not in world.ecs_services()
    assert canary in world.ecs_services()


def test_bad_canary_is_rolled_back_on_the_alb_by_itself(world: World, ids: dict[str, str]) -> None:
    dep_id = ids["basket"]
    card = world.wait_over(dep_id)

    assert "Rolled back ❌" in card.text, world.logs()
    assert_reads(
        world.thread(card),
        [
            r"Canary provisioned: task definition basket:\d+, ",
            r"Canary ready: 2/2 tasks running\.",
            rf"Traffic 10 % → canary {RULE}\.",
            r"❌ Step 1 failed at 10 % · canary [\d,]+ req, [\d,]+ × 5xx \(\d+\.\d %\).*\n"
            r"canary .* > 1\.0 %: .*\n"
            r"↩️ Rolling back: restoring 100 % stable first\.$",
            r"Traffic 100 % → basket-v1 in \d+\.\d s\.",
            r"Rolled back ❌ Canary scaled to 0 and removed\. Requested by <@U0DANA> · "
            r"stopped by the canary check at step 1 \(10 %\)",
        ],
    )
    # The rule forwards to the stable group alone again; the canary's group and service are gone.
    assert world.weights("basket") == {"basket-v1": 100}
    assert f"basket-{dep_id}" not in world.target_groups()
    assert f"basket-{dep_id}" not in world.ecs_services()
    assert "basket" in world.ecs_services()
